"""The `openai` TTS against a fake of OpenAI's streamed /v1/audio/speech (tests/doubles)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

import numpy as np
import pytest

from tests.doubles.fake_openai_audio import FakeOpenAIAudio, speech_samples, wav_header
from tests.integration.fake_http import body, chunked, error
from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import ProviderError, create
from voiceplat.providers.tts.openai import OpenAITTS
from voiceplat.providers.tts.wav_stream import WavStream, WavStreamError

KEY = "sk-test-0123456789abcdefghij"
TEXT = "Добрый день! Клиника «Здоровье»."


def make_tts(server: FakeOpenAIAudio, env: dict[str, str] | None = None, **settings: Any):
    options = {"provider": "openai", "base_url": server.url, "retry_backoff_s": 0}
    env = {"OPENAI_API_KEY": KEY} if env is None else env
    return OpenAITTS(OpenAITTS.Settings(**(options | settings)), env)


async def synthesize(tts: OpenAITTS, text: str = TEXT) -> list[Pcm]:
    return [pcm async for pcm in tts.synthesize(text)]


async def test_pcm_chunks_arrive_while_the_body_is_still_streaming():
    hold = asyncio.Event()
    async with FakeOpenAIAudio(api_key=KEY, hold=hold) as server:
        tts = make_tts(server, speed=1.2, instructions="Говори спокойно.")
        async with contextlib.aclosing(tts.synthesize(TEXT)) as audio:
            first = await anext(audio)
            assert not server.speech_done.is_set()  # the server is holding the rest back
            hold.set()
            rest = [pcm async for pcm in audio]
        await tts.aclose()
    assert server.speech_done.is_set()
    assert first.rate == 24000 and first.samples == 2400  # the fake's first 4800-byte chunk
    assert b"".join(c.data for c in [first, *rest]) == speech_samples(TEXT).tobytes()
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "gpt-4o-mini-tts",
        "input": TEXT,
        "voice": "alloy",
        "response_format": "pcm",
        "speed": 1.2,
        "instructions": "Говори спокойно.",
    }


async def test_wav_header_and_odd_pieces_and_resampling():
    async with FakeOpenAIAudio(chunk_bytes=1001) as server:  # header and samples split oddly
        tts = make_tts(server, response_format="wav", model="kokoro", voice="af_heart")
        chunks = await synthesize(tts)
    assert {c.rate for c in chunks} == {24000}
    assert len(chunks) > 10  # one per piece that completed a sample, as they came
    assert b"".join(c.data for c in chunks) == speech_samples(TEXT).tobytes()
    assert server.requests[0].json()["response_format"] == "wav"

    async with FakeOpenAIAudio() as server:
        chunks = await synthesize(make_tts(server, env={}, sample_rate=8000, extra_body={"x": 1}))
    assert {c.rate for c in chunks} == {8000}
    assert abs(sum(c.samples for c in chunks) - len(speech_samples(TEXT)) // 3) <= 3
    assert server.requests[0].json()["x"] == 1
    assert "authorization" not in server.requests[0].headers


async def test_errors_are_clean_and_retried_only_before_audio():
    async with FakeOpenAIAudio(api_key=KEY) as server:
        with pytest.raises(ProviderError) as caught:
            await synthesize(make_tts(server, env={"OPENAI_API_KEY": "sk-wrong-key-987654321"}))
    assert "HTTP 401: Incorrect API key provided" in str(caught.value)
    assert "sk-wrong-key-987654321" not in str(caught.value)
    assert len(server.requests) == 1

    limited = error(429, {"error": {"message": "Rate limit reached for tts-1"}})
    async with FakeOpenAIAudio(script=[limited]) as server:
        with pytest.raises(ProviderError, match="HTTP 429: Rate limit reached"):
            await synthesize(make_tts(server))
    assert len(server.requests) == 1

    async with FakeOpenAIAudio(script=[error(500, {"error": {"message": "busy"}})]) as server:
        chunks = await synthesize(make_tts(server))
    assert sum(c.samples for c in chunks) == len(speech_samples(TEXT)) and len(server.requests) == 2

    pcm = speech_samples(TEXT).tobytes()
    broken = chunked([pcm[:4800]], "audio/pcm", end="drop")
    async with FakeOpenAIAudio(script=[broken]) as server:
        with pytest.raises(ProviderError, match="stream broken mid-answer"):
            await synthesize(make_tts(server))
    assert len(server.requests) == 1  # half a sentence is never spoken twice

    bad_answers = [
        (body(200, {"error": {"message": "voice not found"}}), "pcm", "expected audio"),
        (chunked([], "audio/pcm"), "pcm", "the answer held no audio"),
        (chunked([b"ID3\x04\x00" + bytes(200)], "audio/mpeg"), "wav", "bad WAV answer"),
    ]
    for answer, response_format, problem in bad_answers:
        async with FakeOpenAIAudio(script=[answer]) as server:
            with pytest.raises(ProviderError, match=problem):
                await synthesize(make_tts(server, response_format=response_format))


async def test_nothing_to_say_sends_nothing():
    async with FakeOpenAIAudio() as server:
        assert await synthesize(make_tts(server), " … ") == []
    assert server.requests == []


def test_wav_stream_mixes_channels_and_refuses_other_formats():
    stereo = np.array([[100, 300], [-200, -400]], dtype="<i2").tobytes()
    stream = WavStream()
    assert stream.feed(wav_header(16000, channels=2)[:30]) is None
    pcm = stream.feed(wav_header(16000, channels=2)[30:] + stereo + b"\x01")
    assert pcm is not None and pcm.rate == 16000 and pcm.to_numpy().tolist() == [200, -300]
    float_fmt = struct.pack("<HHIIHH", 3, 1, 24000, 96000, 4, 32)
    header = b"RIFF\0\0\0\0WAVEfmt " + struct.pack("<I", 16) + float_fmt + b"data\0\0\0\0"
    with pytest.raises(WavStreamError, match="expected 16-bit PCM"):
        WavStream().feed(header)
    with pytest.raises(WavStreamError, match="not a WAV stream"):
        WavStream().feed(b"OggS" + bytes(20))
    with pytest.raises(WavStreamError, match="before the fmt chunk"):
        WavStream().feed(b"RIFF\0\0\0\0WAVEdata\0\0\0\0")


def test_registered_settings_and_problems():
    settings = OpenAITTS.Settings(provider="openai")
    assert (settings.model, settings.voice, settings.response_format, settings.pcm_rate) == (
        "gpt-4o-mini-tts",
        "alloy",
        "pcm",
        24000,
    )
    assert isinstance(create("tts", settings, {}), OpenAITTS)
    assert OpenAITTS(settings, {}).problems() == [
        "OPENAI_API_KEY (speech API key) is not set: put OPENAI_API_KEY=... in "
        "robots/<robot>/.env or the root .env"
    ]
    local = OpenAITTS.Settings(provider="openai", base_url="http://127.0.0.1:8880/v1")
    assert OpenAITTS(local, {}).problems() == []
    with pytest.raises(ValueError, match="response_format"):
        OpenAITTS.Settings(provider="openai", response_format="mp3")
