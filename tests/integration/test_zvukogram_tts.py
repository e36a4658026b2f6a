"""The `zvukogram` TTS against a local fake of its API: synthesis request, then the file download."""

from __future__ import annotations

import importlib.util
import io
import wave
from typing import Any

import numpy as np
import pytest

from tests.integration.fake_http import FakeServer, body, drop, error, hang
from voiceplat.audio.pcm import Pcm, rms
from voiceplat.providers.base import ProviderError
from voiceplat.providers.tts.zvukogram import ZvukogramTTS

TOKEN = "zvukogram-secret-token-0123456789"
EMAIL = "robot@example.com"
ENV = {"ZVUKOGRAM_TOKEN": TOKEN, "ZVUKOGRAM_EMAIL": EMAIL}


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def wav_file(seconds: float = 0.5, rate: int = 22050) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(Pcm.from_numpy(tone(seconds, rate), rate).data)
    return buffer.getvalue()


def done(server: FakeServer, name: str = "/files/123.wav", **extra: Any) -> Any:
    answer = {"id": 123, "status": 1, "file": f"{server.url}{name}", "format": "wav"}
    return body(200, answer | {"duration": 0.5, "balans": "99.5", "cost": 0.5} | extra)


def make_tts(server: FakeServer, env: dict[str, str] = ENV, **settings: Any) -> ZvukogramTTS:
    options = {
        "provider": "zvukogram",
        "api_url": f"{server.url}/index.php?r=api/text",
        "retry_backoff_s": 0,
    }
    return ZvukogramTTS(ZvukogramTTS.Settings(**(options | settings)), env)


async def synthesize(tts: ZvukogramTTS, text: str = "Здравствуйте!") -> list[Pcm]:
    return [pcm async for pcm in tts.synthesize(text)]


async def test_synthesis_request_then_the_file_converted_to_8k():
    server = FakeServer()
    async with server:
        server.script += [done(server), body(200, wav_file(0.5, 22050), "audio/wav")]
        tts = make_tts(server, voice="Алёна", speed=1.1, pitch=2, emotion="neutral")
        (pcm,) = await synthesize(tts)
        await tts.aclose()
    assert pcm.rate == 8000
    assert abs(pcm.duration_s - 0.5) < 0.01
    assert rms(pcm.data) > 5000  # the tone survived the conversion
    synthesis, download = server.requests
    assert (synthesis.method, synthesis.path, synthesis.query) == (
        "POST",
        "/index.php",
        {"r": "api/text"},
    )
    assert synthesis.form == {
        "token": TOKEN,
        "email": EMAIL,
        "voice": "Алёна",
        "text": "Здравствуйте!",
        "format": "wav",
        "speed": "1.1",
        "pitch": "2",
        "emotion": "neutral",
    }
    assert (download.method, download.path) == ("GET", "/files/123.wav")
    assert "token" not in download.target


async def test_relative_links_and_another_output_rate():
    server = FakeServer()
    async with server:
        answer = body(200, {"status": 1, "file": "/files/rel.wav"})
        server.script += [answer, body(200, wav_file(0.2, 48000))]
        (pcm,) = await synthesize(make_tts(server, sample_rate=16000))
    assert server.requests[1].path == "/files/rel.wav"
    assert pcm.rate == 16000 and abs(pcm.duration_s - 0.2) < 0.01


@pytest.mark.skipif(importlib.util.find_spec("soundfile") is None, reason="needs soundfile")
async def test_mp3_files_are_decoded_with_soundfile():
    import soundfile

    mp3 = io.BytesIO()
    soundfile.write(mp3, tone(1.0, 24000), 24000, format="MP3")
    server = FakeServer()
    async with server:
        server.script += [done(server, "/files/1.mp3"), body(200, mp3.getvalue(), "audio/mpeg")]
        tts = make_tts(server, format="mp3")
        assert tts.problems() == []
        (pcm,) = await synthesize(tts)
    assert server.requests[0].form["format"] == "mp3"
    assert pcm.rate == 8000
    assert 0.95 < pcm.duration_s < 1.2  # MP3 adds encoder padding
    assert rms(pcm.data) > 5000


async def test_service_errors_are_reported_without_the_token():
    async with FakeServer(body(200, {"status": -1, "error": f"Bad token {TOKEN}"})) as server:
        with pytest.raises(ProviderError, match="synthesis failed: Bad token") as caught:
            await synthesize(make_tts(server))
    assert TOKEN not in str(caught.value)
    assert len(server.requests) == 1  # a refusal is not retried

    async with FakeServer(body(200, "<html>maintenance</html>", "text/html")) as server:
        with pytest.raises(ProviderError, match="malformed answer"):
            await synthesize(make_tts(server))
    async with FakeServer(body(200, {"status": 0, "id": 5})) as server:
        with pytest.raises(ProviderError, match=r"no file in the answer \(status 0\)"):
            await synthesize(make_tts(server))

    server = FakeServer()
    async with server:
        server.script += [done(server), body(200, b"<html>not audio</html>", "text/html")]
        with pytest.raises(ProviderError, match=r"bad audio file .*not a WAV or MP3 file"):
            await synthesize(make_tts(server))


async def test_network_errors_and_5xx_are_retried_timeouts_reported():
    server = FakeServer()
    async with server:
        server.script += [
            error(502, "bad gateway"),
            done(server),
            drop(),  # the download broke: the whole synthesis is tried again
            done(server),
            body(200, wav_file(0.1)),
        ]
        (pcm,) = await synthesize(make_tts(server, retries=2))
    assert abs(pcm.duration_s - 0.1) < 0.01
    assert len(server.requests) == 5

    async with FakeServer(hang()) as server:
        with pytest.raises(ProviderError, match=r"no audio within 0\.2 s"):
            await synthesize(make_tts(server, timeout_s=0.2))


async def test_long_and_empty_texts():
    async with FakeServer() as server:
        tts = make_tts(server)
        assert await synthesize(tts, "...") == []
        with pytest.raises(ProviderError, match="1001 characters; the API takes 1000"):
            await synthesize(tts, "а" * 1001)
    assert server.requests == []


def test_problems_name_the_env_variables(monkeypatch: pytest.MonkeyPatch):
    settings = ZvukogramTTS.Settings(provider="zvukogram")
    assert ZvukogramTTS(settings, {}).problems() == [
        "ZVUKOGRAM_TOKEN (Zvukogram API token) is not set: put ZVUKOGRAM_TOKEN=... in "
        "robots/<robot>/.env or the root .env",
        "ZVUKOGRAM_EMAIL (Zvukogram account email) is not set: put ZVUKOGRAM_EMAIL=... in "
        "robots/<robot>/.env or the root .env",
    ]
    with pytest.raises(ValueError, match="token"):
        ZvukogramTTS.Settings(provider="zvukogram", token=TOKEN)  # type: ignore[call-arg]
    mp3 = ZvukogramTTS.Settings(provider="zvukogram", format="mp3")
    original = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "soundfile" else original(name, *a),
    )
    assert ZvukogramTTS(mp3, ENV).problems() == [
        "format mp3 needs the soundfile package: pip install 'voiceplat[cloud]' "
        '(or use "format": "wav")'
    ]
