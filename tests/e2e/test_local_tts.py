"""Local TTS engines for real: festival (Russian), piper (English), espeak (both).

Each engine must turn a sentence into audible speech of plausible length, serve calls that come
at once, and stay usable after a synthesis is cancelled mid-way (barge-in). Engines that are not
installed here are skipped with the reason their `problems()` gives.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from voiceplat.audio.pcm import Pcm, rms
from voiceplat.providers.base import TTS, ProviderError
from voiceplat.providers.tts.espeak import EspeakSettings, EspeakTTS
from voiceplat.providers.tts.festival import FestivalSettings, FestivalTTS
from voiceplat.providers.tts.piper import PiperTTS

pytestmark = pytest.mark.e2e

RU = "Здравствуйте! Чем могу помочь?"
EN = "Hello! How can I help you today?"
LONG_RU = " ".join(f"Это предложение номер {n}, оно довольно длинное." for n in range(1, 7))
LONG_EN = " ".join(f"This is sentence number {n}, and it is fairly long." for n in range(1, 7))


@dataclass(frozen=True)
class Engine:
    id: str
    cls: type[TTS]
    settings: dict[str, Any]
    sentence: str
    long_text: str
    rate: int


ENGINES = [
    Engine("festival", FestivalTTS, {}, RU, LONG_RU, 16000),
    Engine("piper", PiperTTS, {}, EN, LONG_EN, 22050),
    Engine("espeak-ru", EspeakTTS, {"voice": "ru"}, RU, LONG_RU, 22050),
    Engine("espeak-en", EspeakTTS, {"voice": "en-us"}, EN, LONG_EN, 22050),
]


async def started(cls: type[TTS], **settings: Any) -> AsyncIterator[TTS]:
    provider = cls(cls.Settings(provider=cls.name, **settings), {})
    problems = provider.problems()
    if problems:
        pytest.skip("; ".join(problems))
    await provider.start()
    try:
        yield provider
    finally:
        await provider.aclose()


@pytest.fixture(params=ENGINES, ids=[engine.id for engine in ENGINES])
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.param


@pytest.fixture
async def tts(engine: Engine) -> AsyncIterator[TTS]:
    async for provider in started(engine.cls, **engine.settings):
        yield provider


@pytest.fixture
async def festival() -> AsyncIterator[FestivalTTS]:
    async for provider in started(FestivalTTS):
        assert isinstance(provider, FestivalTTS)
        yield provider


async def speak(tts: TTS, text: str) -> Pcm:
    chunks = [pcm async for pcm in tts.synthesize(text)]
    assert chunks, f"no audio for {text!r}"
    assert len({pcm.rate for pcm in chunks}) == 1
    return Pcm(b"".join(pcm.data for pcm in chunks), chunks[0].rate)


def assert_speech(pcm: Pcm, text: str) -> None:
    letters = sum(char.isalpha() for char in text)
    assert rms(pcm.data) > 300, "audio is (nearly) silent"
    # Between 30 and 3 letters a second: fast, slow and pausing voices all fit.
    assert letters / 30 <= pcm.duration_s <= letters / 3, f"{pcm.duration_s:.2f} s for {text!r}"


async def test_speaks_a_sentence(tts: TTS, engine: Engine) -> None:
    pcm = await speak(tts, engine.sentence)
    assert pcm.rate == engine.rate
    assert_speech(pcm, engine.sentence)


async def test_three_calls_at_once(tts: TTS, engine: Engine) -> None:
    texts = [engine.sentence, engine.long_text.split(". ")[0] + ".", engine.sentence.upper()]
    results = await asyncio.gather(*(speak(tts, text) for text in texts))
    for text, pcm in zip(texts, results, strict=True):
        assert_speech(pcm, text)


async def test_cancelled_midway_leaves_engine_usable(tts: TTS, engine: Engine) -> None:
    first_audio = asyncio.Event()

    async def listen() -> None:
        async for _ in tts.synthesize(engine.long_text):
            first_audio.set()
            await asyncio.Event().wait()  # a caller who barges in before the rest is played

    task = asyncio.create_task(listen())
    await first_audio.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_speech(await speak(tts, engine.sentence), engine.sentence)


async def test_consumer_stopping_early_leaves_engine_usable(tts: TTS, engine: Engine) -> None:
    stream = tts.synthesize(engine.long_text)
    assert isinstance(stream, AsyncGenerator)  # the local engines' streams can be closed early
    await anext(stream)
    await stream.aclose()
    assert_speech(await speak(tts, engine.sentence), engine.sentence)


async def test_nothing_to_say_gives_no_audio(tts: TTS) -> None:
    assert [pcm async for pcm in tts.synthesize(" ... !!! ")] == []


async def test_a_bare_number_is_spoken(tts: TTS) -> None:
    pcm = await speak(tts, "4512")
    assert rms(pcm.data) > 300
    assert 0.5 <= pcm.duration_s <= 8


async def test_output_rate_can_be_chosen(engine: Engine) -> None:
    async for tts in started(engine.cls, **engine.settings, sample_rate=8000):
        pcm = await speak(tts, engine.sentence)
        assert pcm.rate == 8000
        assert_speech(pcm, engine.sentence)


async def test_festival_survives_digits_latin_and_punctuation(festival: FestivalTTS) -> None:
    text = "Заказ №123 для iPhone «Pro» — готов , 15 марта в 10:30 !"
    assert_speech(await speak(festival, text), "Заказ номер сто двадцать три для айфоун про готов")


async def test_festival_streams_sentence_by_sentence(festival: FestivalTTS) -> None:
    chunks = [pcm async for pcm in festival.synthesize("Первая фраза. Вторая фраза! Третья?")]
    assert len(chunks) == 3


async def test_festival_restarts_a_dead_server(festival: FestivalTTS) -> None:
    old_pid = festival.server_pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    assert_speech(await speak(festival, RU), RU)
    assert festival.server_pid not in (None, old_pid)


async def test_festival_unknown_voice_is_reported() -> None:
    tts = FestivalTTS(FestivalSettings(provider="festival", voice="no_such_voice"), {})
    assert any("no_such_voice" in problem for problem in tts.problems())
    with pytest.raises(ProviderError, match="no_such_voice"):
        await tts.start()
    await tts.aclose()


async def test_espeak_unknown_voice_is_reported() -> None:
    tts = EspeakTTS(EspeakSettings(provider="espeak", voice="xx-nope"), {})
    if tts.problems():
        pytest.skip("; ".join(tts.problems()))
    with pytest.raises(ProviderError, match="xx-nope"):
        await tts.start()


async def test_piper_speed_changes_duration() -> None:
    durations = []
    for speed in (0.8, 1.25):
        async for tts in started(PiperTTS, speed=speed):
            durations.append((await speak(tts, EN)).duration_s)
    assert durations[0] > durations[1] * 1.2
