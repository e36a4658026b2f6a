"""`festival` TTS: Festival with a Russian clunits voice (`msu_ru_nsh_clunits`, 16 kHz), the
default local voice for Russian.

Why a server: starting `text2wave` costs ~0.8 s per sentence (the voice loads each time). One
`festival --server` per provider loads the voice once; for every connection it forks a copy that
already has the voice in memory, so a sentence's first audio arrives in 0.05-0.4 s. Each sentence
gets its own connection, hence its own forked child:

- concurrency is bounded by a semaphore (`workers`, sized to the cores) held only while a
  sentence is synthesised, so calls queue instead of thrashing;
- a cancelled synthesis (barge-in) SIGKILLs its child through a pidfd (the child tells its pid
  first) and drops the connection; the server and other calls are untouched;
- a dead or wedged server is restarted on the next sentence.

Festival binds its port on all interfaces (it has no option to do otherwise), so the server only
accepts 127.0.0.1 and a random password that never leaves this process.

Text is normalised first (`normalize_ru`): Festival's Russian voice fails on digits, Latin letters,
quotes, dashes and spaces before punctuation. The audio of every sentence is checked (non-empty,
audible, plausible length) before it is yielded. `Duration_Stretch` is not offered: this clunits
voice ignores it (measured: identical output at 0.7, 1.0 and 1.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import TTS, ProviderError, TTSSettings, register
from voiceplat.providers.tts import normalize_ru
from voiceplat.providers.tts.festival_protocol import (
    ProtocolError,
    Reply,
    ReplyParser,
    parse_wave,
    synth_command,
)
from voiceplat.providers.tts.local_audio import ahead, at_rate, check_speech

log = logging.getLogger(__name__)

VOICES_DIR = Path("/usr/share/festival/voices")
READY_MARK = "Festival server started on port"
START_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 3
WARM_TEXT = "Проверка связи."
_READ_SIZE = 1 << 16


class FestivalSettings(TTSSettings):
    """Settings of the `festival` TTS."""

    voice: str = Field(
        "msu_ru_nsh_clunits",
        pattern=r"^[A-Za-z0-9_]+$",
        description="Festival voice name (a directory under /usr/share/festival/voices/*/).",
    )
    workers: int = Field(
        2, ge=1, le=8, description="Sentences synthesised at once per process; others wait."
    )
    normalize: bool = Field(
        True,
        description="Russian normalisation (numbers to words, Latin to Cyrillic, only the "
        "characters the Russian voice reads). Turn off only for a non-Russian voice.",
    )


def installed_voices() -> list[str]:
    return sorted(path.name for path in VOICES_DIR.glob("*/*") if path.is_dir())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Child:
    """One connection to the server, i.e. one forked festival child that serves it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = ReplyParser()
        self._pending: list[Reply] = []
        self._pidfd: int | None = None

    async def call(self, command: bytes) -> list[Reply]:
        """Sends one expression; returns its replies up to and including OK or ER."""
        self._writer.write(command)
        await self._writer.drain()
        replies: list[Reply] = []
        while True:
            while self._pending:
                reply = self._pending.pop(0)
                replies.append(reply)
                if reply.final:
                    return replies
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise ProviderError("festival closed the connection mid-reply (child died)")
            self._pending.extend(self._parser.feed(data))

    async def identify(self) -> None:
        """Asks the child for its pid and holds a pidfd on it, so `kill` hits exactly it."""
        replies = await self.call(b"(getpid)\n")
        values = [reply.data for reply in replies if reply.kind == "LP"]
        if replies[-1].kind != "OK" or not values:
            raise ProviderError("festival did not answer (getpid)")
        try:
            pid = int(values[0].strip())
        except ValueError:
            raise ProviderError(f"festival answered (getpid) with {values[0]!r}") from None
        # The child cannot exit while this connection is open, so the pid is still its own.
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(pid)

    def kill(self) -> None:
        """Stops the child now (mid-synthesis) and drops the connection."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        self._writer.transport.abort()
        self._release()

    async def close(self) -> None:
        """Ends the conversation; the child exits on end of input."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        self._release()

    def _release(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class FestivalServer:
    """A `festival --server` process on a free local port, started and restarted on demand."""

    def __init__(self, voice: str) -> None:
        self.voice = voice
        self._password = secrets.token_hex(16)
        self._process: asyncio.subprocess.Process | None = None
        self._port = 0
        self._lock = asyncio.Lock()
        self._drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def _argv(self, port: int) -> list[str]:
        setup = [
            f"(set! server_port {port})",
            f'(set! server_passwd "{self._password}")',
            '(set! server_access_list \'("127\\.0\\.0\\.1" "localhost"))',
            # Killed children are reaped only at the next accept; leave room for them.
            "(set! server_max_clients 256)",
            "(set! server_log_file t)",
            f"(voice_{self.voice})",
            "(Parameter.set 'Wavefiletype 'riff)",
            # Synthesising once here pages the voice's data into the parent, so forks share it.
            f'(utt.synth (Utterance Text "{WARM_TEXT}"))',
        ]
        argv = ["festival", "--server", *setup]
        setpriv = shutil.which("setpriv")
        # The server must not outlive this process (a crash would leave it holding a port).
        return [setpriv, "--pdeathsig", "KILL", *argv] if setpriv else argv

    async def ensure_running(self) -> int:
        """Returns the port of a live server, starting one if there is none."""
        async with self._lock:
            if not self._alive():
                await self._start()
            return self._port

    async def _start(self) -> None:
        await self._stop()
        if shutil.which("festival") is None:
            raise ProviderError("festival is not installed: apt-get install festival festvox-ru")
        problem = ""
        for _ in range(PORT_ATTEMPTS):
            port = _free_port()
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._argv(port),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
            except OSError as exc:
                raise ProviderError(f"cannot run festival: {exc}") from None
            assert process.stdout is not None
            try:
                output = await asyncio.wait_for(_read_until_ready(process.stdout), START_TIMEOUT_S)
            except TimeoutError:
                output = [f"no '{READY_MARK}' within {START_TIMEOUT_S:.0f} s"]
            if output and READY_MARK in output[-1]:
                self._process, self._port = process, port
                self._drain = asyncio.create_task(_log_output(process.stdout))
                log.info("festival server %d started on port %d", process.pid, port)
                return
            await _kill(process, grace_s=2.0)  # it usually exited already, after an error
            problem = " | ".join(line for line in output if line)[-500:]
            if "bind failed" not in problem:  # only a lost port race is worth another try
                break
        raise ProviderError(f"festival server did not start (voice {self.voice}): {problem}")

    async def open(self) -> _Child:
        """A connected, authenticated child that knows its pid."""
        port = await self.ensure_running()
        pid = self.pid
        try:
            return await self._connect(port)
        except (OSError, TimeoutError, ProviderError, ProtocolError) as exc:
            # The server died or hangs: replace it and try once more.
            log.warning("festival server %s failed (%r); restarting it", pid, exc)
            await self.restart(pid)
            return await self._connect(await self.ensure_running())

    async def _connect(self, port: int) -> _Child:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            child = _Child(reader, writer)
            try:
                writer.write(f"{self._password}\n".encode())
                await child.identify()
            except BaseException:
                child.kill()
                raise
            return child

    async def restart(self, pid: int | None) -> None:
        """Kills server `pid` (dead or wedged) unless a concurrent call already replaced it."""
        async with self._lock:
            if self.pid == pid:
                await self._stop()

    async def close(self) -> None:
        async with self._lock:
            await self._stop()

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await _kill(process)
            log.info("festival server %d stopped", process.pid)
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None


async def _read_until_ready(stream: asyncio.StreamReader) -> list[str]:
    """The server's output up to its ready line (last) or up to its exit."""
    lines: list[str] = []
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").strip())
        if READY_MARK in lines[-1]:
            break
    return lines


async def _log_output(stream: asyncio.StreamReader) -> None:
    """Drains the server's log (a full pipe would block it); SIOD errors become warnings."""
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        log.log(logging.WARNING if "ERROR" in text else logging.DEBUG, "festival: %s", text)


async def _kill(process: asyncio.subprocess.Process, grace_s: float = 0.0) -> None:
    """Kills `process` unless it exits by itself within `grace_s`, and reaps it."""
    # Killing a process that has just exited would reap it behind asyncio's child watcher.
    if grace_s:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace_s)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()


@register("tts", "festival")
class FestivalTTS(TTS):
    Settings = FestivalSettings
    settings: FestivalSettings

    def __init__(self, settings: FestivalSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._server = FestivalServer(settings.voice)
        self._slots = asyncio.Semaphore(settings.workers)

    @property
    def server_pid(self) -> int | None:
        """The Festival server's pid (diagnostics and tests)."""
        return self._server.pid

    def problems(self) -> list[str]:
        found: list[str] = []
        if shutil.which("festival") is None:
            found.append("festival is not installed: apt-get install festival festvox-ru")
        elif self.settings.voice not in installed_voices():
            hint = (
                " (apt-get install festvox-ru)" if self.settings.voice.startswith("msu_ru") else ""
            )
            known = ", ".join(installed_voices()) or "none"
            found.append(
                f'festival voice "{self.settings.voice}" is not installed{hint}; installed: {known}'
            )
        if self.settings.normalize and importlib.util.find_spec("ru_normalizr") is None:
            found.append("ru-normalizr is not installed: pip install ru-normalizr==1.3.0")
        return found

    async def start(self) -> None:
        """Starts the server and checks that the voice really speaks."""
        await self._server.ensure_running()
        async for _ in self.synthesize(WARM_TEXT):
            pass

    async def aclose(self) -> None:
        await self._server.close()

    async def synthesize(self, text: str) -> AsyncIterator[Pcm]:
        stream = ahead(self._sentences_audio(text))
        async for pcm in at_rate(stream, self.settings.sample_rate):
            yield pcm

    def _sentences(self, text: str) -> list[str]:
        if not self.settings.normalize:
            text = " ".join(text.split())
            return [text] if text else []
        return normalize_ru.split_sentences(normalize_ru.normalize(text))

    async def _sentences_audio(self, text: str) -> AsyncIterator[Pcm]:
        # ru-normalizr takes up to tens of ms: not on the event loop.
        sentences = await asyncio.to_thread(self._sentences, text)
        if not sentences:
            log.debug("festival: nothing to say in %r", text)
        for sentence in sentences:
            async with self._slots:
                pcm = await self._synthesize_one(sentence)
            yield pcm

    async def _synthesize_one(self, sentence: str) -> Pcm:
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                replies = await self._ask(sentence)
        except TimeoutError:
            raise ProviderError(
                f"festival took over {self.settings.timeout_s:.0f} s on {sentence!r}"
            ) from None
        except ProtocolError as exc:
            raise ProviderError(f"festival: {exc}") from None
        except OSError as exc:
            raise ProviderError(f"festival server unreachable: {exc}") from None
        return self._audio(replies, sentence)

    async def _ask(self, sentence: str) -> list[Reply]:
        child = await self._server.open()
        try:
            replies = await child.call(synth_command(sentence))
        except BaseException:
            child.kill()  # cancelled (barge-in), timed out or broken: stop it mid-synthesis
            raise
        await child.close()
        return replies

    def _audio(self, replies: list[Reply], sentence: str) -> Pcm:
        if replies[-1].kind == "ER":
            raise ProviderError(
                f"festival could not synthesise {sentence!r} with voice {self.settings.voice} "
                "(its SIOD error is in the log)"
            )
        waves = [reply.data for reply in replies if reply.kind == "WV"]
        if not waves:
            raise ProviderError(f"festival sent no waveform for {sentence!r}")
        try:
            pcm = parse_wave(waves[0])
            for extra in waves[1:]:
                pcm = pcm + parse_wave(extra)
        except (ProtocolError, ValueError) as exc:
            raise ProviderError(f"festival: {exc} for {sentence!r}") from None
        check_speech(pcm, sentence, "festival")
        return pcm
