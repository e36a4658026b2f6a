"""`festival` TTS: Festival with a Russian clunits voice (`msu_ru_nsh_clunits`, 16 kHz), the
default local voice for Russian.

One `festival --server` per provider (`festival_server.py`) has the voice loaded; every sentence
gets its own connection, hence its own forked child with the voice already in memory, so a
sentence's first audio arrives in 0.05-0.4 s:

- concurrency is bounded by a semaphore (`workers`, sized to the cores) held only while a
  sentence is synthesised, so calls queue instead of thrashing;
- a cancelled synthesis (barge-in) SIGKILLs its child and drops the connection; the server and
  other calls are untouched;
- a dead or wedged server is restarted on the next sentence;
- the server runs in a network namespace of its own (`network_namespace`), since a client of a
  Festival server may run any Scheme, `system` included.

Text is normalised first (`normalize_ru`): Festival's Russian voice fails on digits, Latin letters,
quotes, dashes and spaces before punctuation. The audio of every sentence is checked (non-empty,
audible, plausible length) before it is yielded. `Duration_Stretch` is not offered: this clunits
voice ignores it (measured: identical output at 0.7, 1.0 and 1.5).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import TTS, ProviderError, TTSSettings, register
from voiceplat.providers.tts import normalize_ru
from voiceplat.providers.tts.festival_protocol import (
    FestivalProtocolError,
    Reply,
    parse_wave,
    synth_command,
)
from voiceplat.providers.tts.festival_server import WARM_TEXT, FestivalServer, NetworkNamespace
from voiceplat.providers.tts.local_audio import ahead, at_rate, check_speech

log = logging.getLogger(__name__)

VOICES_DIR = Path("/usr/share/festival/voices")


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
    network_namespace: NetworkNamespace = Field(
        "auto",
        description="Run the server in a network namespace of its own, unreachable by anyone "
        "else: auto (where the kernel allows it; else all interfaces with a password, and a "
        "warning), required (fail to start without one), off.",
    )


def installed_voices() -> list[str]:
    return sorted(path.name for path in VOICES_DIR.glob("*/*") if path.is_dir())


@register("tts", "festival")
class FestivalTTS(TTS):
    Settings = FestivalSettings
    settings: FestivalSettings
    bounds_own_time = True  # timeout_s from when the model starts the request

    def __init__(self, settings: FestivalSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._server = FestivalServer(settings.voice, settings.network_namespace)
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
        except FestivalProtocolError as exc:
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
        except (FestivalProtocolError, ValueError) as exc:
            raise ProviderError(f"festival: {exc} for {sentence!r}") from None
        check_speech(pcm, sentence, "festival")
        return pcm
