"""The seed services (/api/v1/stt, /tts, /voice/process) on fake providers, through the whole app
(auth, validation, routing) in process: audio in and out, and every refusal a client can meet."""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from voiceplat.robot import Robot, load_robot
from voiceplat.web.app import create_app
from voiceplat.web.calls.store import call_store_for
from voiceplat.web.context import WebContext
from voiceplat.web.live_source import live_source_for
from voiceplat.web.rate_limit import RateLimiter
from voiceplat.web.routes_seed import STATE_KEY, SeedState, close_started
from voiceplat.web.settings import WebSettings

MAX_UPLOAD = 256 * 1024
MAX_AUDIO_S = 5.0
HANG_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wav_file(seconds: float, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    """A 440 Hz tone at half scale."""
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    if width == 1:
        samples: np.ndarray = np.round(tone * 127 + 128).astype("u1")
    elif width == 3:  # little-endian 24-bit: the low three bytes of each int32
        wide = np.round(tone * 8388607).astype("<i4")
        samples = wide.view("u1").reshape(-1, 4)[:, :3].reshape(-1, 3)
    else:
        samples = np.round(tone * 32767).astype("<i2")
    frames = np.repeat(samples.reshape(len(t), 1, 3 if width == 3 else 1), channels, axis=1)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames.tobytes())
    return out.getvalue()


def read_wav(data: bytes) -> tuple[int, int, np.ndarray]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        assert wav.getsampwidth() == 2
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return wav.getframerate(), wav.getnchannels(), samples


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


@pytest.fixture
def robots(make_robot: Callable[..., Path]) -> dict[str, Robot]:
    dirs = {
        "echo": make_robot("echo"),
        "dead_asr": make_robot("dead_asr", asr={"fail": "raise"}),
        "dead_tts": make_robot("dead_tts", tts={"fail": "raise"}),
    }
    return {name: load_robot(path) for name, path in dirs.items()}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(
    robots: dict[str, Robot], clock: Clock
) -> AsyncIterator[tuple[httpx.AsyncClient, WebContext]]:
    settings = WebSettings(max_upload_bytes=MAX_UPLOAD, max_audio_s=MAX_AUDIO_S, rate_per_minute=2)
    context = WebContext(
        settings=settings,
        robots=robots,
        calls=call_store_for({}, robots),
        live=live_source_for({}, robots),
    )
    # Two requests a minute per client: the rate-limit test reaches the limit; the others get a
    # generous limiter of their own (`unlimited`).
    context.extra[STATE_KEY] = SeedState(RateLimiter(2, clock=clock))
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", timeout=HANG_S
    ) as client:
        yield client, context
    await close_started(context)


@pytest.fixture
def client(service: tuple[httpx.AsyncClient, WebContext]) -> httpx.AsyncClient:
    service[1].extra[STATE_KEY].limiter = RateLimiter(10_000)
    return service[0]


def upload(data: bytes, name: str = "clip.wav", **fields: str) -> dict[str, Any]:
    return {"files": {"file": (name, data, "audio/wav")}, "data": fields}


async def test_stt_decodes_any_wav_to_8k_mono(client: httpx.AsyncClient) -> None:
    # The fake ASR with no scripted texts describes the audio it got: its length proves the
    # stereo 16 kHz and the 8-bit 11 kHz files both arrived whole, as mono 8 kHz.
    stereo = await client.post("/api/v1/stt", **upload(wav_file(1.0, 16000, channels=2)))
    assert stereo.status_code == 200, stereo.text
    body = stereo.json()
    assert body["text"] == "<speech 1.00 s>"
    assert body["language"] == "ru-RU"
    assert body["ms"] >= 0
    eight_bit = await client.post("/api/v1/stt", **upload(wav_file(0.5, 11025, width=1)))
    assert eight_bit.json()["text"] == "<speech 0.50 s>"
    deep = await client.post("/api/v1/stt", **upload(wav_file(0.4, 44100, channels=2, width=3)))
    assert deep.json()["text"] == "<speech 0.40 s>"
    raw = await client.post(
        "/api/v1/stt?robot=echo",
        content=wav_file(0.25, 48000),
        headers={"content-type": "audio/wav"},
    )
    assert raw.json()["text"] == "<speech 0.25 s>"


async def test_stt_reads_flac(client: httpx.AsyncClient) -> None:
    soundfile = pytest.importorskip("soundfile")
    out = io.BytesIO()
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(24000) / 32000) * 32767).astype("<i2")
    soundfile.write(out, tone, 32000, format="FLAC")
    response = await client.post("/api/v1/stt", **upload(out.getvalue(), "clip.flac"))
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "<speech 0.75 s>"


async def test_tts_returns_8k_wav_of_the_robots_voice(client: httpx.AsyncClient) -> None:
    text = "Добрый день"
    response = await client.post("/api/v1/tts", json={"text": text})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    rate, channels, samples = read_wav(response.content)
    assert (rate, channels) == (8000, 1)
    # The echo robot's fake TTS speaks 60 ms a character, a 0.3-scale tone (16 kHz, resampled).
    assert abs(len(samples) / rate - len(text) * 0.060) < 0.02
    assert rms(samples) > 3000


async def test_voice_process_answers_in_text_and_audio(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/voice/process", **upload(wav_file(1.0), robot="echo"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "<speech 1.00 s>"
    assert body["answer"] == "Вы сказали: <speech 1.00 s>."  # the fake LLM's reply template
    rate, channels, samples = read_wav(base64.b64decode(body["audio_wav_base64"]))
    assert (rate, channels) == (8000, 1)
    assert abs(len(samples) / rate - len(body["answer"]) * 0.060) < 0.02
    assert rms(samples) > 3000
    assert set(body["ms"]) == {"asr", "answer", "first_clause", "tts", "total"}
    assert body["ends_call"] is False


async def test_providers_start_once_on_first_use(
    client: httpx.AsyncClient, robots: dict[str, Robot], monkeypatch: pytest.MonkeyPatch
) -> None:
    robot = robots["echo"]
    starts: list[str] = []
    start = robot.start

    async def counted() -> None:
        starts.append(robot.name)
        await start()

    monkeypatch.setattr(robot, "start", counted)
    answers = await asyncio.gather(
        *(client.post("/api/v1/tts", json={"text": f"раз {n}"}) for n in range(3))
    )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert starts == ["echo"]


async def test_huge_upload_is_refused_while_it_streams(client: httpx.AsyncClient) -> None:
    sent = 0
    chunk = bytes(64 * 1024)

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        yield head + b"RIFF\x00\x00\x00\x00WAVE"
        for _ in range(16 * 1024):  # 1 GiB if it were all read
            sent += len(chunk)
            yield chunk

    response = await client.post(
        "/api/v1/stt",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 413
    assert f"limit of {MAX_UPLOAD} bytes" in response.json()["detail"]
    assert sent <= MAX_UPLOAD + 2 * len(chunk)  # it stopped reading at the limit


async def test_a_declared_huge_body_is_refused_unread(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/stt", content=bytes(MAX_UPLOAD + 1), headers={"content-type": "audio/wav"}
    )
    assert response.status_code == 413


async def test_too_long_audio(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/stt", **upload(wav_file(6.0, 8000)))
    assert response.status_code == 413
    assert response.json()["detail"] == "the audio is 6.0 s long; the limit is 5 s"


async def test_wrong_format(client: httpx.AsyncClient) -> None:
    mp3ish = await client.post("/api/v1/stt", **upload(b"ID3\x03" + bytes(500), "a.mp3"))
    assert mp3ish.status_code == 415
    assert "accepted: WAV" in mp3ish.json()["detail"]
    json_body = await client.post("/api/v1/voice/process", json={"file": "nope"})
    assert json_body.status_code == 415
    assert "multipart/form-data" in json_body.json()["detail"]


async def test_empty_audio(client: httpx.AsyncClient) -> None:
    empty = await client.post("/api/v1/stt", **upload(b""))
    assert empty.status_code == 422
    assert empty.json()["detail"] == "the audio file is empty"
    no_samples = await client.post("/api/v1/stt", **upload(wav_file(0.0)))
    assert no_samples.status_code == 422
    assert "no samples" in no_samples.json()["detail"]
    no_file = await client.post("/api/v1/stt", data={"robot": "echo"}, files={"other": b"x"})
    assert no_file.status_code == 422
    assert "'file'" in no_file.json()["detail"]


async def test_text_too_long_or_blank(client: httpx.AsyncClient) -> None:
    long = await client.post("/api/v1/tts", json={"text": "а" * 1001})
    assert long.status_code == 422
    assert "text" in long.json()["detail"] and "1000" in long.json()["detail"]
    blank = await client.post("/api/v1/tts", json={"text": "   "})
    assert blank.status_code == 422
    assert "blank" in blank.json()["detail"]
    typo = await client.post("/api/v1/tts", json={"txt": "да"})
    assert typo.status_code == 422
    assert "text: Field required" in typo.json()["detail"]
    not_json = await client.post("/api/v1/tts", content=b"{text")
    assert not_json.status_code == 422
    huge = await client.post("/api/v1/tts", content=b'{"text": "' + bytes(10**6) + b'"}')
    assert huge.status_code == 413


async def test_unknown_robot(client: httpx.AsyncClient) -> None:
    tts = await client.post("/api/v1/tts", json={"text": "да", "robot": "nope"})
    assert tts.status_code == 404
    assert "no robot named 'nope'" in tts.json()["detail"]
    stt = await client.post("/api/v1/stt?robot=nope", **upload(wav_file(0.5)))
    assert stt.status_code == 404
    in_form = await client.post("/api/v1/voice/process", **upload(wav_file(0.5), robot="nope"))
    assert in_form.status_code == 404


async def test_rate_limit_then_ok_after_the_clock_moves(
    service: tuple[httpx.AsyncClient, WebContext], clock: Clock
) -> None:
    client = service[0]
    for _ in range(2):
        assert (await client.post("/api/v1/tts", json={"text": "да"})).status_code == 200
    refused = await client.post("/api/v1/stt", **upload(wav_file(0.5)))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"  # 2 a minute: a token every 30 s
    assert "at most 2 a minute" in refused.json()["detail"]
    clock.now += 30
    assert (await client.post("/api/v1/tts", json={"text": "да"})).status_code == 200
    assert (await client.post("/api/v1/tts", json={"text": "да"})).status_code == 429


async def test_dead_provider_is_a_502_with_its_message(client: httpx.AsyncClient) -> None:
    asr = await client.post("/api/v1/stt?robot=dead_asr", **upload(wav_file(0.5)))
    assert asr.status_code == 502
    assert asr.json()["detail"] == "ASR (fake) failed: fake ASR failed on purpose"
    tts = await client.post("/api/v1/tts", json={"text": "да", "robot": "dead_tts"})
    assert tts.status_code == 502
    assert "fake TTS failed on purpose" in tts.json()["detail"]
    voice = await client.post("/api/v1/voice/process?robot=dead_tts", **upload(wav_file(0.5)))
    assert voice.status_code == 502
    assert "TTS (fake) failed" in voice.json()["detail"]


async def test_a_provider_bug_is_a_502_not_a_traceback(
    client: httpx.AsyncClient, robots: dict[str, Robot], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(audio: object, language: object) -> None:
        raise KeyError("model_path")

    monkeypatch.setattr(robots["echo"].asr, "transcribe", broken)
    response = await client.post("/api/v1/stt", **upload(wav_file(0.5)))
    assert response.status_code == 502
    assert response.json()["detail"] == "ASR (fake) failed: KeyError: 'model_path'"


async def test_openapi_describes_the_bodies(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    stt = paths["/api/v1/stt"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert stt["schema"]["required"] == ["file"]
    tts = paths["/api/v1/tts"]["post"]["requestBody"]["content"]["application/json"]
    assert tts["schema"]["properties"]["text"]["maxLength"] == 1000
    assert "multipart/form-data" in paths["/api/v1/voice/process"]["post"]["requestBody"]["content"]


@pytest.mark.parametrize(("width", "channels"), [(1, 1), (2, 2), (3, 2)])
def test_decoded_audio_keeps_its_level(width: int, channels: int) -> None:
    from voiceplat.web.audio_upload import decode_audio

    pcm = decode_audio(wav_file(0.5, 16000, channels, width), MAX_AUDIO_S)
    assert (pcm.rate, pcm.samples) == (8000, 4000)
    # A half-scale tone: RMS 0.5 / sqrt(2) of full scale, whatever the sample width.
    assert abs(rms(pcm.to_numpy()) - 0.5 / 2**0.5 * 32767) < 150


async def test_inside_serve_the_started_robot_is_used_as_is(
    robots: dict[str, Robot], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voiceplat.storage.live import LiveCalls

    robot = robots["echo"]
    await robot.start()  # what `voiceplat serve` did before it started the web service
    starts: list[str] = []

    async def counted() -> None:
        starts.append(robot.name)

    monkeypatch.setattr(robot, "start", counted)
    context = WebContext(
        settings=WebSettings(),
        robots=robots,
        calls=call_store_for({}, robots),
        live=live_source_for({}, robots),
        in_process_live=LiveCalls(),
    )
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post("/api/v1/tts", json={"text": "да"})
    assert response.status_code == 200, response.text
    assert starts == []
    await robot.aclose()  # serve's robot is serve's to close (close_started leaves it)
