"""The fake ASR/LLM/TTS test doubles: deterministic output, settings validation, failure modes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pydantic import ValidationError

from voiceplat.audio.pcm import Pcm
from voiceplat.providers import base
from voiceplat.providers.asr.fake import FakeASR
from voiceplat.providers.base import Message, ProviderError
from voiceplat.providers.llm import fake as fake_llm
from voiceplat.providers.llm.fake import FakeLLM
from voiceplat.providers.tts.fake import FakeTTS

SPEECH = Pcm.silence(1230)  # 1.23 s at 8 kHz


def make(cls, **settings):
    return cls(cls.Settings(provider="fake", **settings), env={})


async def collect(iterator) -> list:
    return [item async for item in iterator]


async def assert_hangs(awaitable) -> None:
    task = asyncio.ensure_future(awaitable)
    for _ in range(20):  # give it every chance to finish on its own
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_registered_under_fake():
    assert base.provider_class("asr", "fake") is FakeASR
    assert base.provider_class("llm", "fake") is FakeLLM
    assert base.provider_class("tts", "fake") is FakeTTS


@pytest.mark.parametrize("cls", [FakeASR, FakeLLM, FakeTTS])
def test_settings_reject_typos_and_negative_delays(cls):
    with pytest.raises(ValidationError, match="delay_msec"):
        cls.Settings(provider="fake", delay_msec=10)
    with pytest.raises(ValidationError, match="delay_ms"):
        cls.Settings(provider="fake", delay_ms=-1)
    with pytest.raises(ValidationError, match="fail"):
        cls.Settings(provider="fake", fail="sometimes")


# ASR


async def test_asr_returns_texts_in_order_then_describes_audio():
    asr = make(FakeASR, texts=["привет", "@dur", "пока"])
    texts = [(await asr.transcribe(SPEECH, "ru-RU")).text for _ in range(4)]
    assert texts == ["привет", "<speech 1.23 s>", "пока", "<speech 1.23 s>"]


async def test_asr_without_texts_describes_audio_and_keeps_language():
    asr = make(FakeASR, language="en-US")
    transcript = await asr.transcribe(Pcm.silence(500, rate=16000), None)
    assert transcript.text == "<speech 0.50 s>"
    assert transcript.language == "en-US"
    assert (await asr.transcribe(SPEECH, "ru-RU")).language == "ru-RU"


async def test_asr_cycles_when_asked():
    asr = make(FakeASR, texts=["a", "b"], cycle=True)
    assert [(await asr.transcribe(SPEECH, None)).text for _ in range(5)] == list("ababa")


async def test_asr_directives_empty_raise_hang():
    asr = make(FakeASR, texts=["@empty", "@raise", "@hang", "after"])
    assert (await asr.transcribe(SPEECH, None)).text == ""
    with pytest.raises(ProviderError):
        await asr.transcribe(SPEECH, None)
    await assert_hangs(asr.transcribe(SPEECH, None))
    assert (await asr.transcribe(SPEECH, None)).text == "after"


async def test_asr_fail_modes():
    with pytest.raises(ProviderError):
        await make(FakeASR, texts=["x"], fail="raise").transcribe(SPEECH, None)
    await assert_hangs(make(FakeASR, fail="hang").transcribe(SPEECH, None))


# LLM


def history(*user_texts: str) -> list[Message]:
    messages = [Message("system", "Ты робот.")]
    for text in user_texts:
        messages += [Message("user", text), Message("assistant", "ок")]
    return messages[:-1]


async def test_llm_echoes_last_user_text_token_by_token():
    llm = make(FakeLLM)
    chunks = await collect(llm.stream(history("раз", "два три")))
    assert chunks == ["Вы ", "сказали: ", "два ", "три."]
    assert "".join(chunks) == "Вы сказали: два три."


async def test_llm_template_is_not_format_string():
    llm = make(FakeLLM, reply="{text}! {other}")
    assert "".join(await collect(llm.stream(history("a {b}")))) == "a {b}! {other}"


async def test_llm_end_call_on_appends_marker():
    llm = make(FakeLLM, end_call_on=["До свидания"])
    reply = "".join(await collect(llm.stream(history("ну всё, до свидания"))))
    assert reply == "Вы сказали: ну всё, до свидания. [END]"
    assert not "".join(await collect(llm.stream(history("привет")))).endswith("[END]")


async def test_llm_applies_configured_delays(monkeypatch):
    slept: list[float] = []

    async def fake_sleep(ms: float) -> None:
        slept.append(ms)

    monkeypatch.setattr(fake_llm, "_sleep_ms", fake_sleep)
    llm = make(FakeLLM, reply="a b c", delay_ms=300, token_delay_ms=50)
    assert await collect(llm.stream(history("x"))) == ["a ", "b ", "c"]
    assert slept == [300, 50, 50]


async def test_llm_fail_raise_before_first_token():
    stream = make(FakeLLM, fail="raise").stream(history("x"))
    with pytest.raises(ProviderError):
        await anext(stream)


async def test_llm_fail_mid_stream_after_some_tokens():
    got: list[str] = []
    with pytest.raises(ProviderError):
        async for chunk in make(FakeLLM, reply="one two three four", fail="mid").stream([]):
            got.append(chunk)
    assert got == ["one ", "two "]


async def test_llm_fail_hang():
    await assert_hangs(anext(make(FakeLLM, fail="hang").stream(history("x"))))


# TTS


async def test_tts_tone_length_rate_chunks_and_level():
    tts = make(FakeTTS)  # 16 kHz, 60 ms per char, 100 ms chunks
    chunks = await collect(tts.synthesize("Привет, мир"))  # 11 chars -> 660 ms
    assert all(chunk.rate == 16000 for chunk in chunks)
    assert [chunk.samples for chunk in chunks] == [1600] * 6 + [960]
    samples = np.concatenate([chunk.to_numpy() for chunk in chunks]).astype(np.float64)
    assert np.max(np.abs(samples)) == pytest.approx(0.3 * 32767, rel=0.01)
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 16000 / len(samples)
    assert peak_hz == pytest.approx(440, abs=5)


async def test_tts_minimum_length_rate_and_empty_text():
    tts = make(FakeTTS, sample_rate=8000, chunk_ms=20)
    chunks = await collect(tts.synthesize("Да"))  # 120 ms < 200 ms minimum
    assert sum(chunk.duration_s for chunk in chunks) == pytest.approx(0.2)
    assert {chunk.samples for chunk in chunks} == {160}
    assert await collect(tts.synthesize("  ")) == []


async def test_tts_noise_is_deterministic_and_not_a_tone():
    tts = make(FakeTTS, noise=True)
    first = b"".join(chunk.data for chunk in await collect(tts.synthesize("шум")))
    again = b"".join(chunk.data for chunk in await collect(tts.synthesize("шум")))
    assert first == again
    samples = np.frombuffer(first, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    assert spectrum.max() < 10 * spectrum.mean()  # flat, no dominant frequency


async def test_tts_fail_modes():
    with pytest.raises(ProviderError):
        await anext(make(FakeTTS, fail="raise").synthesize("текст"))
    got = []
    with pytest.raises(ProviderError):
        async for chunk in make(FakeTTS, fail="mid").synthesize("x" * 10):  # 6 chunks
            got.append(chunk)
    assert len(got) == 3
    await assert_hangs(anext(make(FakeTTS, fail="hang").synthesize("текст")))


async def test_asr_entries_carry_confidence_details():
    asr = make(
        FakeASR,
        texts=[
            "Блан.|avg_logprob=-1.4|no_speech_prob=0.7",
            "@empty|no_speech_prob=0.9",
            "a|b",
            "left|right|no_speech_prob=.25",
            "plain",
        ],
    )
    results = [await asr.transcribe(SPEECH, None) for _ in range(5)]
    assert results[0].text == "Блан."
    assert results[0].details == {"duration_s": 1.23, "avg_logprob": -1.4, "no_speech_prob": 0.7}
    assert (results[1].text, results[1].details["no_speech_prob"]) == ("", 0.9)
    assert (results[2].text, results[2].details) == ("a|b", {"duration_s": 1.23})
    assert (results[3].text, results[3].details["no_speech_prob"]) == ("left|right", 0.25)
    assert (results[4].text, results[4].details) == ("plain", {"duration_s": 1.23})
