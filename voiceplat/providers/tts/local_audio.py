"""Audio helpers shared by the local TTS engines (festival, piper, espeak).

`ahead` runs an engine's stream in its own task, so synthesis never waits for a slow consumer
(a session that plays each chunk before asking for the next would otherwise hold an engine slot
for the whole playback, and hear a gap before every sentence after the first).
`at_rate` converts an engine's stream to the rate a robot asked for (`tts.sample_rate`); `None`
keeps the engine's own rate, which is cheapest because the session resamples to 8 kHz anyway.
`check_speech` rejects what a broken synthesis looks like: no samples, silence, or a length far
from what the text needs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from voiceplat.audio.pcm import Pcm, rms
from voiceplat.audio.resample import StreamResampler
from voiceplat.providers.base import ProviderError

SILENCE_RMS = 30.0
"""Below this level (int16 RMS) a clip counts as silence; speech measures 1500-4000 here."""
MIN_S_PER_LETTER = 0.02
"""Fastest plausible speech: 50 letters a second (normal Russian is 12-15)."""
MAX_S_PER_LETTER = 0.5
MAX_EXTRA_S = 2.0
"""Slack for leading/trailing silence on top of `MAX_S_PER_LETTER`."""


async def ahead(chunks: AsyncIterator[Pcm]) -> AsyncGenerator[Pcm, None]:
    """Yields what `chunks` produces, running it to the end in a task of its own.

    Closing or cancelling this generator cancels that task and waits for it, so the engine's
    clean-up (killing a process, freeing a slot) has run when this returns.
    """
    queue: asyncio.Queue[Pcm | Exception | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for pcm in chunks:
                queue.put_nowait(pcm)
        except Exception as exc:
            queue.put_nowait(exc)
        else:
            queue.put_nowait(None)

    task = asyncio.create_task(pump())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        task.cancel()
        await asyncio.wait([task])


async def at_rate(chunks: AsyncGenerator[Pcm, None], rate: int | None) -> AsyncGenerator[Pcm, None]:
    """Yields `chunks` resampled to `rate` with one streaming resampler (no seams between them)."""
    async with contextlib.aclosing(chunks):
        if rate is None:
            async for pcm in chunks:
                yield pcm
            return
        resampler: StreamResampler | None = None
        async for pcm in chunks:
            if resampler is None or resampler.in_rate != pcm.rate:
                if resampler is not None:
                    yield Pcm(resampler.flush(), rate)
                resampler = StreamResampler(pcm.rate, rate)
            data = resampler.process(pcm.data)
            if data:
                yield Pcm(data, rate)
        if resampler is not None:
            tail = resampler.flush()
            if tail:
                yield Pcm(tail, rate)


def letters(text: str) -> int:
    return sum(char.isalpha() for char in text)


def speakable(text: str) -> bool:
    """Whether `text` has anything to say (a letter or a digit), not just punctuation."""
    return any(char.isalnum() for char in text)


def check_speech(pcm: Pcm, text: str, engine: str) -> None:
    """Raises ProviderError unless `pcm` is plausibly `text` spoken (non-empty, audible, length)."""
    count = letters(text)
    if pcm.samples == 0:
        raise ProviderError(f"{engine} returned no audio for {text!r}")
    level = rms(pcm.data)
    if level < SILENCE_RMS:
        raise ProviderError(f"{engine} returned silence (RMS {level:.0f}) for {text!r}")
    shortest = count * MIN_S_PER_LETTER
    longest = count * MAX_S_PER_LETTER + MAX_EXTRA_S
    if not shortest <= pcm.duration_s <= longest:
        raise ProviderError(
            f"{engine} returned {pcm.duration_s:.2f} s of audio for {count} letters "
            f"({text!r}); expected {shortest:.2f}-{longest:.2f} s"
        )
