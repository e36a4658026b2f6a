"""The `openai` ASR against a fake of OpenAI's /v1/audio/transcriptions (tests/doubles)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.doubles.fake_openai_audio import FakeOpenAIAudio, Segment
from tests.integration.fake_http import body, error
from voiceplat.audio.pcm import Pcm
from voiceplat.providers.asr.openai import OpenAIASR
from voiceplat.providers.base import ProviderError, create
from voiceplat.turns.utterance_filter import UtteranceFilterSettings, classify

KEY = "sk-test-0123456789abcdefghij"


def speech(seconds: float = 1.0, rate: int = 8000) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm.from_numpy((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


def make_asr(server: FakeOpenAIAudio, env: dict[str, str] | None = None, **settings: Any):
    options = {"provider": "openai", "base_url": server.url, "retry_backoff_s": 0}
    env = {"OPENAI_API_KEY": KEY} if env is None else env
    return OpenAIASR(OpenAIASR.Settings(**(options | settings)), env)


async def test_verbose_json_request_and_confidence_mapped():
    segments = [
        Segment(" Запишите меня", -0.2, 0.1, tokens=9, start=0.0, end=1.0),
        Segment(" на завтра.", -0.8, 0.3, tokens=4, start=1.0, end=4.0),
    ]
    async with FakeOpenAIAudio(api_key=KEY, segments=segments) as server:
        asr = make_asr(server, language="ru-RU", model="Systran/faster-whisper-small")
        transcript = await asr.transcribe(speech(1.5), None)
        await asr.aclose()
    assert transcript.text == "Запишите меня на завтра."
    assert transcript.language == "ru"
    # Pooled as faster_whisper pools its windows: logprob over tokens (+1 each), no-speech over
    # duration: (-0.2*10 - 0.8*5) / 15 and (0.1*1 + 0.3*3) / 4.
    assert transcript.details["avg_logprob"] == -0.4
    assert transcript.details["no_speech_prob"] == 0.25
    assert transcript.details["path"] == "remote"
    (upload,) = server.uploads
    assert upload.fields == {
        "model": "Systran/faster-whisper-small",
        "response_format": "verbose_json",
        "temperature": "0",
        "language": "ru",
    }
    assert (upload.filename, upload.content_type) == ("utterance.wav", "audio/wav")
    assert (upload.rate, upload.channels, upload.samples) == (8000, 1, 12000)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_confidence_reaches_the_utterance_filter():
    """Noise transcribed with low confidence is dropped as the local Whisper's would be."""
    noise = [Segment(" Продолжение следует", -1.6, 0.8, tokens=5, start=0.0, end=0.6)]
    async with FakeOpenAIAudio(text="Спасибо.", segments=noise) as server:
        transcript = await make_asr(server).transcribe(speech(0.6), "ru")
    verdict = classify(transcript.text, transcript.details, 600, UtteranceFilterSettings())
    assert (verdict.kind, verdict.reason) == ("ignore", "no_speech")


async def test_json_format_16k_upload_prompt_and_extra_fields():
    async with FakeOpenAIAudio() as server:
        asr = make_asr(
            server,
            env={},
            response_format="json",
            upload_rate=16000,
            prompt="Клиника «Здоровье»",
            extra_form={"chunking_strategy": "auto"},
        )
        transcript = await asr.transcribe(speech(1.0), "auto")
    assert transcript.text == "Запишите меня на завтра."
    assert transcript.language is None
    assert "avg_logprob" not in transcript.details and "no_speech_prob" not in transcript.details
    (upload,) = server.uploads
    assert (upload.rate, upload.samples) == (16000, 16000)
    assert upload.fields["prompt"] == "Клиника «Здоровье»"
    assert upload.fields["chunking_strategy"] == "auto"
    assert "language" not in upload.fields
    assert "authorization" not in server.requests[0].headers


async def test_errors_are_clean_and_only_5xx_is_retried():
    async with FakeOpenAIAudio(api_key=KEY) as server:
        asr = make_asr(server, env={"OPENAI_API_KEY": "sk-wrong-key-987654321"})
        with pytest.raises(ProviderError) as caught:
            await asr.transcribe(speech(), "ru")
    message = str(caught.value)
    assert "HTTP 401: Incorrect API key provided" in message
    assert "sk-wrong-key-987654321" not in message  # the server echoed it; masked
    assert message.startswith("OpenAI-compatible ASR at ")
    assert len(server.requests) == 1

    limited = error(429, {"error": {"message": "Rate limit reached", "type": "requests"}})
    async with FakeOpenAIAudio(script=[limited]) as server:
        with pytest.raises(ProviderError, match="HTTP 429: Rate limit reached"):
            await make_asr(server).transcribe(speech(), "ru")
    assert len(server.requests) == 1

    async with FakeOpenAIAudio(script=[error(500, {"error": {"message": "busy"}})]) as server:
        transcript = await make_asr(server).transcribe(speech(), "ru")
    assert transcript.text == "Запишите меня на завтра." and len(server.requests) == 2

    async with FakeOpenAIAudio(script=[body(200, "<html>gateway</html>", "text/html")]) as server:
        with pytest.raises(ProviderError, match="malformed answer"):
            await make_asr(server).transcribe(speech(), "ru")
    async with FakeOpenAIAudio(script=[body(200, {"result": "x"})]) as server:
        with pytest.raises(ProviderError, match="answer without a text"):
            await make_asr(server).transcribe(speech(), "ru")


def test_registered_settings_and_problems():
    settings = OpenAIASR.Settings(provider="openai")
    assert (settings.model, settings.response_format, settings.upload_rate) == (
        "whisper-1",
        "verbose_json",
        8000,
    )
    assert isinstance(create("asr", settings, {}), OpenAIASR)
    assert OpenAIASR(settings, {}).problems() == [
        "OPENAI_API_KEY (transcription API key) is not set: put OPENAI_API_KEY=... in "
        "robots/<robot>/.env or the root .env"
    ]
    local = OpenAIASR.Settings(provider="openai", base_url="http://10.0.0.5:8000/v1")
    assert OpenAIASR(local, {}).problems() == []
    with pytest.raises(ValueError, match="upload_rate"):
        OpenAIASR.Settings(provider="openai", upload_rate=44100)
