"""Helpers of the local TTS engines: run-ahead streaming, output rate, speech checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
import pytest

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import ProviderError
from voiceplat.providers.tts.local_audio import ahead, at_rate, check_speech


def tone(seconds: float, rate: int = 16000, level: float = 0.3) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm.from_numpy((np.sin(2 * np.pi * 220 * t) * level).astype(np.float32), rate)


async def chunks_of(*pcms: Pcm) -> AsyncGenerator[Pcm, None]:
    for pcm in pcms:
        yield pcm


async def test_ahead_produces_everything_before_the_consumer_asks() -> None:
    produced: list[int] = []
    all_produced = asyncio.Event()

    async def engine() -> AsyncIterator[Pcm]:
        for index in range(3):
            produced.append(index)
            yield tone(0.1)
        all_produced.set()

    stream = ahead(engine())
    first = await anext(stream)
    await all_produced.wait()  # the engine finished while the consumer held only one chunk
    rest = [pcm async for pcm in stream]
    assert first.samples and len(rest) == 2 and produced == [0, 1, 2]


async def test_ahead_passes_errors_on() -> None:
    async def engine() -> AsyncIterator[Pcm]:
        yield tone(0.1)
        raise ProviderError("boom")

    with pytest.raises(ProviderError, match="boom"):
        async for _ in ahead(engine()):
            pass


async def test_closing_ahead_runs_the_engine_cleanup() -> None:
    cleaned = asyncio.Event()
    blocked = asyncio.Event()

    async def engine() -> AsyncIterator[Pcm]:
        try:
            yield tone(0.1)
            blocked.set()
            await asyncio.Event().wait()  # a synthesis that never ends
            yield tone(0.1)
        finally:
            cleaned.set()

    stream = ahead(engine())
    await anext(stream)
    await blocked.wait()
    await stream.aclose()
    assert cleaned.is_set()


async def test_at_rate_none_keeps_the_engine_rate() -> None:
    out = [pcm async for pcm in at_rate(chunks_of(tone(0.2), tone(0.3)), None)]
    assert [pcm.rate for pcm in out] == [16000, 16000]


async def test_at_rate_resamples_the_whole_stream() -> None:
    out = [pcm async for pcm in at_rate(chunks_of(tone(0.2), tone(0.3)), 8000)]
    assert {pcm.rate for pcm in out} == {8000}
    total = sum(pcm.samples for pcm in out)
    assert abs(total - 4000) <= 2


def test_check_speech_accepts_speech_like_audio() -> None:
    check_speech(tone(1.0), "Привет, мир", "engine")


@pytest.mark.parametrize(
    ("pcm", "problem"),
    [
        (Pcm(b"", 16000), "no audio"),
        (Pcm.silence(1000, 16000), "silence"),
        (tone(0.05), "expected"),
        (tone(30.0), "expected"),
    ],
)
def test_check_speech_rejects_broken_audio(pcm: Pcm, problem: str) -> None:
    with pytest.raises(ProviderError, match=problem):
        check_speech(pcm, "Привет, как дела", "engine")
