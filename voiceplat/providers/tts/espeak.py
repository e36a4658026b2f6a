"""`espeak` TTS: espeak-ng, a formant synthesiser for almost any language; fast, robotic, always
there. The fallback voice.

Each synthesis is one `espeak-ng --stdout` process (it starts in ~10 ms and speaks 50-100 times
faster than real time), reading the text from stdin; its WAV stream (22.05 kHz) is yielded as it
arrives. Processes are bounded by `workers`; a cancelled synthesis kills its process and reaps it.
For Russian voices the text first goes through ru-normalizr (numbers, abbreviations and Latin
words said the Russian way), since espeak's own rules decline numbers poorly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import TTS, ProviderError, TTSSettings, register
from voiceplat.providers.tts import normalize_ru
from voiceplat.providers.tts.local_audio import ahead, at_rate, speakable

WAV_HEADER = 44
_READ_SIZE = 1 << 14


class EspeakSettings(TTSSettings):
    """Settings of the `espeak` TTS."""

    voice: str = Field(
        "ru",
        pattern=r"^[A-Za-z0-9_+\-]+$",
        description="espeak-ng voice, e.g. ru, en-us, de, ru+f3 (espeak-ng --voices lists them).",
    )
    speed: int = Field(175, ge=80, le=450, description="Words per minute.")
    pitch: int = Field(50, ge=0, le=99, description="Pitch, 0-99.")
    normalize: bool | None = Field(
        None,
        description="Russian normalisation with ru-normalizr; None: on for Russian voices.",
    )
    workers: int = Field(2, ge=1, le=8, description="espeak-ng processes at once; others wait.")


def parse_header(header: bytes) -> int:
    """The sample rate of espeak-ng's WAV header (mono 16-bit PCM, sizes left open)."""
    if len(header) < WAV_HEADER or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise ProviderError("espeak-ng did not write a WAV stream")
    channels, rate = struct.unpack_from("<HI", header, 22)
    width = struct.unpack_from("<H", header, 34)[0]
    if channels != 1 or width != 16:
        raise ProviderError(f"espeak-ng wrote {channels}-channel {width}-bit audio")
    return rate


@register("tts", "espeak")
class EspeakTTS(TTS):
    Settings = EspeakSettings
    settings: EspeakSettings

    def __init__(self, settings: EspeakSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._slots = asyncio.Semaphore(settings.workers)

    @property
    def normalizes(self) -> bool:
        if self.settings.normalize is not None:
            return self.settings.normalize
        return self.settings.voice.lower().split("+")[0] in ("ru", "ru-lv")

    def problems(self) -> list[str]:
        found = []
        if shutil.which("espeak-ng") is None:
            found.append("espeak-ng is not installed: apt-get install espeak-ng")
        if self.normalizes and importlib.util.find_spec("ru_normalizr") is None:
            found.append("ru-normalizr is not installed: pip install ru-normalizr==1.3.0")
        return found

    async def start(self) -> None:
        """Checks the voice exists (espeak-ng fails on an unknown one) and warms the normaliser."""
        async for _ in self.synthesize("проверка" if self.normalizes else "check"):
            pass

    def _argv(self) -> list[str]:
        settings = self.settings
        return [
            "espeak-ng",
            *("-v", settings.voice, "-s", str(settings.speed), "-p", str(settings.pitch)),
            *("-b", "1", "--stdout", "--stdin"),  # -b 1: the input is UTF-8
        ]

    async def synthesize(self, text: str) -> AsyncIterator[Pcm]:
        async for pcm in at_rate(ahead(self._stream(text)), self.settings.sample_rate):
            yield pcm

    async def _stream(self, text: str) -> AsyncIterator[Pcm]:
        if self.normalizes:
            text = await asyncio.to_thread(normalize_ru.expand, text)
        if not speakable(text):
            return
        async with self._slots:
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._argv(),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            except OSError as exc:
                raise ProviderError(f"cannot run espeak-ng: {exc}") from None
            finished = False
            try:
                async with contextlib.aclosing(self._read(process, text)) as chunks:
                    async for pcm in chunks:
                        yield pcm
                finished = True
            finally:
                # Only an interrupted espeak needs killing; killing one that has just exited
                # would reap it behind asyncio's child watcher.
                if not finished and process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                await process.wait()

    async def _read(
        self, process: asyncio.subprocess.Process, text: str
    ) -> AsyncGenerator[Pcm, None]:
        assert process.stdin and process.stdout and process.stderr
        stdout = process.stdout
        process.stdin.write(text.encode() + b"\n")
        process.stdin.close()
        try:
            header = await self._timed(stdout.readexactly(WAV_HEADER))
        except asyncio.IncompleteReadError as short:
            header = short.partial
        if len(header) < WAV_HEADER:
            problem = (await self._timed(process.stderr.read())).decode(errors="replace").strip()
            await process.wait()
            raise ProviderError(
                f'espeak-ng (voice "{self.settings.voice}") produced no audio: '
                f"{problem or f'exit code {process.returncode}'}"
            )
        rate = parse_header(header)
        carry = b""
        while data := await self._timed(stdout.read(_READ_SIZE)):
            data = carry + data
            cut = len(data) - len(data) % 2  # an odd byte waits for its partner
            carry = data[cut:]
            if cut:
                yield Pcm(data[:cut], rate)

    async def _timed(self, read: Awaitable[bytes]) -> bytes:
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                return await read
        except TimeoutError:
            raise ProviderError(
                f"espeak-ng gave nothing for {self.settings.timeout_s:.0f} s"
            ) from None
