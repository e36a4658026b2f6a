"""`fake` TTS: a tone (or noise) whose length follows the text, streamed in chunks.

Its default rate is 16 kHz, not the call's 8 kHz, so the session's resampler is exercised just as
with a real engine. The tone's phase runs continuously across chunks, and 5 ms fades at both ends
keep it free of clicks.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import AsyncIterator
from typing import Literal

import numpy as np
from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import TTS, ProviderError, TTSSettings, register

Failure = Literal["none", "raise", "mid", "hang"]
FADE_MS = 5.0


class FakeTTSSettings(TTSSettings):
    """Settings of the `fake` TTS."""

    sample_rate: int = Field(16000, ge=8000, le=48000, description="Output sample rate, Hz.")
    frequency: float = Field(440.0, gt=0, le=4000, description="Tone frequency, Hz.")
    amplitude: float = Field(0.3, gt=0, le=1, description="Peak level, fraction of full scale.")
    noise: bool = Field(False, description="White noise instead of a tone.")
    ms_per_char: float = Field(60.0, ge=0, description="Audio length per character of text.")
    min_ms: float = Field(200.0, ge=0, description="Shortest audio for a non-empty text.")
    chunk_ms: int = Field(100, gt=0, le=5000, description="Length of each yielded chunk.")
    delay_ms: float = Field(0.0, ge=0, description="Delay before the first chunk.")
    chunk_delay_ms: float = Field(0.0, ge=0, description="Delay between chunks.")
    fail: Failure = Field(
        "none",
        description="'raise': fail before the first chunk; 'mid': fail after half the chunks; "
        "'hang': never produce audio.",
    )


def audio_ms(text: str, ms_per_char: float, min_ms: float) -> float:
    """How long the fake speaks `text`: nothing for blank text, else proportional, at least min."""
    text = text.strip()
    if not text:
        return 0.0
    return max(min_ms, len(text) * ms_per_char)


def render(settings: FakeTTSSettings, text: str) -> np.ndarray:
    """The whole utterance as int16 samples (read-only: the same sentence is rendered once)."""
    return _render(
        text,
        settings.sample_rate,
        settings.ms_per_char,
        settings.min_ms,
        settings.noise,
        settings.frequency,
        settings.amplitude,
    )


@functools.lru_cache(maxsize=64)
def _render(
    text: str,
    rate: int,
    ms_per_char: float,
    min_ms: float,
    noise: bool,
    frequency: float,
    amplitude: float,
) -> np.ndarray:
    # Cached: load tests speak the same few sentences thousands of times, and this fake must
    # cost next to nothing so that what a benchmark measures is the platform.
    count = round(audio_ms(text, ms_per_char, min_ms) * rate / 1000)
    if noise:
        # Seeded by the text, so the same sentence always sounds the same (deterministic tests).
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        wave = rng.uniform(-1.0, 1.0, count)
    else:
        wave = np.sin(2 * np.pi * frequency * np.arange(count) / rate)
    fade = min(count // 2, round(FADE_MS * rate / 1000))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
        wave[:fade] *= ramp
        wave[count - fade :] *= ramp[::-1]
    samples = np.round(wave * amplitude * 32767).astype("<i2")
    samples.flags.writeable = False
    return samples


async def _sleep_ms(ms: float) -> None:
    if ms:
        await asyncio.sleep(ms / 1000)


@register("tts", "fake")
class FakeTTS(TTS):
    Settings = FakeTTSSettings
    settings: FakeTTSSettings

    async def synthesize(self, text: str) -> AsyncIterator[Pcm]:
        settings = self.settings
        samples = render(settings, text)
        step = settings.sample_rate * settings.chunk_ms // 1000
        starts = list(range(0, len(samples), step))
        await _sleep_ms(settings.delay_ms)
        if settings.fail == "hang":
            await asyncio.get_running_loop().create_future()
        if settings.fail == "raise":
            raise ProviderError("fake TTS failed on purpose before the first chunk")
        fail_at = max(1, len(starts) // 2) if settings.fail == "mid" else None
        for index, start in enumerate(starts):
            if index == fail_at:
                raise ProviderError("fake TTS failed on purpose mid-stream")
            if index:
                await _sleep_ms(settings.chunk_delay_ms)
            yield Pcm(samples[start : start + step].tobytes(), settings.sample_rate)
        if fail_at is not None:
            raise ProviderError("fake TTS failed on purpose mid-stream")
