"""The `yandex` ASR, TTS and LLM against a local fake of SpeechKit v1 and Foundation Models v1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest

from tests.integration.fake_http import FakeServer, body, chunked, error, hang
from voiceplat.audio.pcm import Pcm
from voiceplat.providers.asr.yandex import YandexASR
from voiceplat.providers.base import Message, ProviderError
from voiceplat.providers.llm.yandex import YandexLLM
from voiceplat.providers.tts.yandex import YandexTTS

KEY = "AQVN-test-api-key-0123456789"
IAM = "t1.iam-token-abcdefghijklmnop"
FOLDER = "b1gfolder42"
ENV = {"YANDEX_API_KEY": KEY, "YANDEX_FOLDER_ID": FOLDER}
MESSAGES = [Message("system", "Ты вежливый робот."), Message("user", "Привет!")]


def tone(seconds: float, rate: int = 8000) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm.from_numpy((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


# ASR


def make_asr(server: FakeServer, env: dict[str, str] = ENV, **settings: Any) -> YandexASR:
    options = {
        "provider": "yandex",
        "language": "ru-RU",
        "url": f"{server.url}/speech/v1/stt:recognize",
        "retry_backoff_s": 0,
    }
    return YandexASR(YandexASR.Settings(**(options | settings)), env)


async def test_asr_sends_lpcm_8k_with_api_key_and_returns_the_text():
    audio = tone(0.5)
    async with FakeServer(body(200, {"result": "привет мир"})) as server:
        asr = make_asr(server, topic="general:rc")
        transcript = await asr.transcribe(audio, "ru-RU")
        await asr.aclose()
    assert transcript.text == "привет мир"
    assert transcript.language == "ru-RU"
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/speech/v1/stt:recognize"
    assert request.query == {
        "format": "lpcm",
        "sampleRateHertz": "8000",
        "lang": "ru-RU",
        "topic": "general:rc",
        "folderId": FOLDER,
    }
    assert request.headers["authorization"] == f"Api-Key {KEY}"
    assert request.body == audio.data


async def test_asr_uses_the_iam_token_when_there_is_no_key_and_resamples_odd_rates():
    audio = tone(0.5, rate=22050)
    async with FakeServer(body(200, {"result": "да"})) as server:
        env = {"YANDEX_IAM_TOKEN": IAM, "YANDEX_FOLDER_ID": FOLDER}
        assert (await make_asr(server, env).transcribe(audio, None)).text == "да"
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {IAM}"
    assert request.query["sampleRateHertz"] == "16000"
    assert len(request.body) == 16000 * 2 // 2  # 0.5 s at 16 kHz


async def test_asr_cuts_audio_to_the_30_s_the_service_takes():
    async with FakeServer(body(200, {"result": "длинно"})) as server:
        await make_asr(server).transcribe(Pcm.silence(31_000), "ru-RU")
    assert len(server.requests[0].body) == 30 * 8000 * 2


async def test_asr_401_is_reported_without_the_key_and_not_retried():
    answer = {"error_code": "UNAUTHORIZED", "error_message": f"Unknown api key '{KEY}'"}
    async with FakeServer(error(401, answer)) as server:
        with pytest.raises(ProviderError) as caught:
            await make_asr(server).transcribe(tone(0.2), "ru-RU")
    message = str(caught.value)
    assert "HTTP 401: Unknown api key" in message
    assert KEY not in message
    assert len(server.requests) == 1


async def test_asr_500_then_success_is_retried():
    script = [error(500, {"error_message": "internal"}), body(200, {"result": "ок"})]
    async with FakeServer(*script) as server:
        assert (await make_asr(server).transcribe(tone(0.2), "ru-RU")).text == "ок"
    assert len(server.requests) == 2


async def test_asr_timeout_and_malformed_answers():
    async with FakeServer(hang()) as server:
        with pytest.raises(ProviderError, match=r"no transcript within 0\.3 s"):
            await make_asr(server, timeout_s=0.3).transcribe(tone(0.2), "ru-RU")
    async with FakeServer(body(200, "<html>oops</html>", "text/html")) as server:
        with pytest.raises(ProviderError, match="malformed answer"):
            await make_asr(server).transcribe(tone(0.2), "ru-RU")
    async with FakeServer(body(200, {"unexpected": 1})) as server:
        with pytest.raises(ProviderError, match="without a result"):
            await make_asr(server).transcribe(tone(0.2), "ru-RU")


def test_asr_problems_name_the_missing_env_variables():
    settings = YandexASR.Settings(provider="yandex")
    assert YandexASR(settings, {}).problems() == [
        "YANDEX_API_KEY (or YANDEX_IAM_TOKEN) is not set: put YANDEX_API_KEY=... in "
        "robots/<robot>/.env or the root .env"
    ]
    assert YandexASR(settings, {"YANDEX_IAM_TOKEN": IAM}).problems() == [
        "YANDEX_FOLDER_ID (Yandex Cloud folder id) is not set: put YANDEX_FOLDER_ID=... in "
        "robots/<robot>/.env or the root .env"
    ]
    assert YandexASR(settings, {"YANDEX_API_KEY": KEY}).problems() == []
    renamed = YandexASR.Settings(provider="yandex", api_key_env="SALES_YANDEX_KEY")
    assert "SALES_YANDEX_KEY" in YandexASR(renamed, {}).problems()[0]
    with pytest.raises(ValueError, match="api_key"):
        # Secrets never go in config.json.
        YandexASR.Settings(provider="yandex", api_key=KEY)  # type: ignore[call-arg]


# TTS


def make_tts(server: FakeServer, env: dict[str, str] = ENV, **settings: Any) -> YandexTTS:
    options = {
        "provider": "yandex",
        "voice": "alena",
        "url": f"{server.url}/speech/v1/tts:synthesize",
        "retry_backoff_s": 0,
    }
    return YandexTTS(YandexTTS.Settings(**(options | settings)), env)


async def synthesize(tts: YandexTTS, text: str = "Здравствуйте!") -> list[Pcm]:
    return [pcm async for pcm in tts.synthesize(text)]


def odd_pieces(data: bytes) -> list[bytes]:
    """The audio cut at odd byte offsets, as a network may deliver it."""
    return [data[:1001], data[1001:1500], data[1500:]]


async def test_tts_asks_for_lpcm_at_8k_and_yields_the_audio_as_it_comes():
    audio = tone(0.3)
    async with FakeServer(chunked(odd_pieces(audio.data), "audio/x-pcm")) as server:
        tts = make_tts(server, emotion="good", speed=1.2)
        chunks = await synthesize(tts)
        await tts.aclose()
    assert all(chunk.rate == 8000 for chunk in chunks)
    assert b"".join(chunk.data for chunk in chunks) == audio.data
    assert len(chunks) >= 2  # streamed, not collected
    (request,) = server.requests
    assert request.path == "/speech/v1/tts:synthesize"
    assert request.headers["authorization"] == f"Api-Key {KEY}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "text": "Здравствуйте!",
        "lang": "ru-RU",
        "voice": "alena",
        "speed": "1.2",
        "emotion": "good",
        "format": "lpcm",
        "sampleRateHertz": "8000",
        "folderId": FOLDER,
    }


async def test_tts_honours_the_seed_sample_rate():
    settings = YandexTTS.Settings(provider="yandex", voice="alena", sample_rate=48000)
    assert settings.sample_rate == 48000  # the seed's tts section is accepted as is
    with pytest.raises(ValueError, match="sample_rate"):
        YandexTTS.Settings(provider="yandex", sample_rate=22050)
    audio = tone(0.1, rate=48000)
    async with FakeServer(chunked([audio.data], "audio/x-pcm")) as server:
        chunks = await synthesize(make_tts(server, sample_rate=48000))
    assert {chunk.rate for chunk in chunks} == {48000}
    assert server.requests[0].form["sampleRateHertz"] == "48000"


async def test_tts_errors_retries_and_broken_streams():
    async with FakeServer(error(500, "busy"), chunked([b"\x01\x00" * 80])) as server:
        chunks = await synthesize(make_tts(server))
    assert sum(chunk.samples for chunk in chunks) == 80
    assert len(server.requests) == 2

    answer = {"error_code": "BAD_REQUEST", "error_message": "voice 'nobody' not found"}
    async with FakeServer(error(400, answer)) as server:
        with pytest.raises(ProviderError, match="HTTP 400: voice 'nobody' not found"):
            await synthesize(make_tts(server))

    got: list[Pcm] = []
    async with FakeServer(chunked([b"\x00\x01" * 100], end="drop"), chunked([b""])) as server:
        with pytest.raises(ProviderError, match="mid-answer"):
            async for pcm in make_tts(server).synthesize("Раз два"):
                got.append(pcm)
    assert sum(pcm.samples for pcm in got) == 100  # what came before the break was yielded
    assert len(server.requests) == 1  # never retried after audio went out

    async with FakeServer(body(200, {"error_message": "quota"})) as server:
        with pytest.raises(ProviderError, match="expected audio, got 'quota'"):
            await synthesize(make_tts(server))


async def test_tts_says_nothing_for_punctuation_and_times_out():
    async with FakeServer() as server:
        assert await synthesize(make_tts(server), " … ") == []
    assert server.requests == []
    async with FakeServer(hang()) as server:
        with pytest.raises(ProviderError, match=r"no audio within 0\.2 s"):
            await synthesize(make_tts(server, timeout_s=0.2))


# LLM


def make_llm(server: FakeServer, env: dict[str, str] = ENV, **settings: Any) -> YandexLLM:
    options = {
        "provider": "yandex",
        "temperature": 0.5,
        "max_tokens": 80,
        "url": f"{server.url}/foundationModels/v1/completion",
        "retry_backoff_s": 0,
    }
    return YandexLLM(YandexLLM.Settings(**(options | settings)), env)


def partial(text: str, status: str = "ALTERNATIVE_STATUS_PARTIAL") -> dict:
    return {
        "result": {
            "alternatives": [{"message": {"role": "assistant", "text": text}, "status": status}],
            "usage": {"inputTextTokens": "19", "completionTokens": "3", "totalTokens": "22"},
            "modelVersion": "23.10.2024",
        }
    }


def ndjson(*objects: dict, split: int = 7) -> list[bytes]:
    """Newline-separated JSON, cut every `split` bytes (mid-object, mid-UTF-8 character)."""
    data = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects).encode()
    return [data[i : i + split] for i in range(0, len(data), split)]


ANSWER = [partial("Здрав"), partial("Здравствуйте"), partial("Здравствуйте! Чем")]
FINAL = partial("Здравствуйте! Чем помочь?", "ALTERNATIVE_STATUS_FINAL")


async def collect(llm: Any, got: list[str] | None = None) -> list[str]:
    got = [] if got is None else got
    async for piece in llm.stream(MESSAGES):
        got.append(piece)
    return got


async def test_llm_request_shape_and_cumulative_text_becomes_suffixes():
    async with FakeServer(chunked(ndjson(*ANSWER, FINAL), "application/json")) as server:
        llm = make_llm(server)
        assert await collect(llm) == ["Здрав", "ствуйте", "! Чем", " помочь?"]
        await llm.aclose()
    (request,) = server.requests
    assert request.path == "/foundationModels/v1/completion"
    assert request.headers["authorization"] == f"Api-Key {KEY}"
    assert request.headers["x-folder-id"] == FOLDER
    assert request.json() == {
        "modelUri": f"gpt://{FOLDER}/yandexgpt-lite/latest",
        "completionOptions": {"stream": True, "temperature": 0.5, "maxTokens": "80"},
        "messages": [
            {"role": "system", "text": "Ты вежливый робот."},
            {"role": "user", "text": "Привет!"},
        ],
    }


async def test_llm_model_names_and_several_objects_in_one_chunk():
    data = b"".join(ndjson(*ANSWER, FINAL, split=10_000))
    async with FakeServer(chunked([data])) as server:
        llm = make_llm(server, model="yandexgpt/rc")
        assert "".join(await collect(llm)) == "Здравствуйте! Чем помочь?"
    assert server.requests[0].json()["modelUri"] == f"gpt://{FOLDER}/yandexgpt/rc"
    uri = "gpt://b1gother/yandexgpt/latest"
    assert make_llm(server, model=uri).model_uri == uri
    assert make_llm(server, model="yandexgpt").model_uri == f"gpt://{FOLDER}/yandexgpt/latest"


async def test_llm_error_object_mid_stream_after_tokens():
    events = ndjson(partial("Один"), {"error": {"grpcCode": 8, "message": f"quota ({KEY})"}})
    got: list[str] = []
    async with FakeServer(chunked(events)) as server:
        with pytest.raises(ProviderError, match="quota") as caught:
            await collect(make_llm(server), got)
    assert got == ["Один"]
    assert KEY not in str(caught.value)
    assert len(server.requests) == 1


async def test_llm_http_errors_retries_and_unfinished_streams():
    answer = {"error": {"grpcCode": 16, "httpCode": 401, "message": "Unknown api key"}}
    async with FakeServer(error(401, answer)) as server:
        with pytest.raises(ProviderError, match="HTTP 401: Unknown api key"):
            await collect(make_llm(server))
    async with FakeServer(error(503, "down"), chunked(ndjson(FINAL))) as server:
        assert await collect(make_llm(server)) == ["Здравствуйте! Чем помочь?"]
    async with FakeServer(*(error(502, "bad gateway") for _ in range(3))) as server:
        with pytest.raises(ProviderError, match=r"HTTP 502: bad gateway \(after 3 attempts\)"):
            await collect(make_llm(server, retries=2))
    async with FakeServer(chunked(ndjson(*ANSWER))) as server:
        with pytest.raises(ProviderError, match="no final status"):
            await collect(make_llm(server))
    async with FakeServer(chunked([b'{"result": {"alternatives": ['])) as server:
        with pytest.raises(ProviderError, match="malformed stream data"):
            await collect(make_llm(server))


async def test_llm_first_token_timeout():
    async with FakeServer(chunked([b"\n"], end="hang")) as server:
        with pytest.raises(ProviderError, match=r"no first token within 0\.3 s"):
            await collect(make_llm(server, timeout_s=0.3))


def test_llm_needs_a_folder_unless_the_model_is_a_full_uri():
    assert YandexLLM(YandexLLM.Settings(provider="yandex"), {"YANDEX_API_KEY": KEY}).problems() == [
        "YANDEX_FOLDER_ID (Yandex Cloud folder id) is not set: put YANDEX_FOLDER_ID=... in "
        "robots/<robot>/.env or the root .env"
    ]
    full = YandexLLM.Settings(provider="yandex", model="gpt://b1g/yandexgpt/latest")
    assert YandexLLM(full, {"YANDEX_API_KEY": KEY}).problems() == []


# The seed robot


def test_the_seed_robot_config_is_accepted_and_check_names_what_is_missing(
    make_robot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voiceplat.robot import load_robot

    for name in ("YANDEX_API_KEY", "YANDEX_IAM_TOKEN", "YANDEX_FOLDER_ID"):
        monkeypatch.delenv(name, raising=False)
    robot_dir: Path = make_robot(
        asr={"provider": "yandex", "language": "ru-RU"},
        llm={"provider": "yandex", "temperature": 0.5, "max_tokens": 80},
        tts={"provider": "yandex", "voice": "alena", "sample_rate": 48000},
    )
    problems = load_robot(robot_dir, root_dir=robot_dir.parent.parent).problems()
    config = robot_dir / "config.json"
    missing_key = "YANDEX_API_KEY (or YANDEX_IAM_TOKEN) is not set: put YANDEX_API_KEY=... in"
    env = f"{robot_dir / '.env'} or the root .env"  # the robot's own file, not a placeholder
    assert sorted(problems) == sorted(
        [
            f"{config}: asr: {missing_key} {env}",
            f"{config}: llm: {missing_key} {env}",
            f"{config}: llm: YANDEX_FOLDER_ID (Yandex Cloud folder id) is not set: put "
            f"YANDEX_FOLDER_ID=... in {env}",
            f"{config}: tts: {missing_key} {env}",
        ]
    )

    (robot_dir / ".env").write_text(f"YANDEX_API_KEY={KEY}\nYANDEX_FOLDER_ID={FOLDER}\n")
    assert load_robot(robot_dir, root_dir=robot_dir.parent.parent).problems() == []


# SpeechKit API v1 takes a POST body of at most 15 KB, URL-encoded (a Cyrillic letter is 6 bytes
# there), and a text of at most 5,000 characters.


async def test_tts_splits_a_text_over_15_kb_once_url_encoded_and_keeps_its_order():
    sentence = "Это предложение довольно длинное, но ничего особенного в нём нет. "
    text = (sentence * 45).strip()
    assert len(text) < 5000 and len(urlencode({"text": text})) > 15_000
    audios = [tone(0.1 * n).data for n in (1, 2, 3)]
    async with FakeServer(*(chunked([audio], "audio/x-pcm") for audio in audios)) as server:
        chunks = await synthesize(make_tts(server), text)
    assert 2 <= len(server.requests) <= 3
    assert all(len(request.body) <= 15_000 for request in server.requests)
    said = [request.form["text"] for request in server.requests]
    assert " ".join(said).split() == text.split()
    assert b"".join(chunk.data for chunk in chunks) == b"".join(audios[: len(said)])


async def test_tts_splits_a_text_over_5000_characters():
    text = " ".join(["Hello there."] * 500)  # 6,499 characters, 7 KB encoded
    audios = [tone(0.1).data, tone(0.2).data]
    async with FakeServer(*(chunked([audio], "audio/x-pcm") for audio in audios)) as server:
        chunks = await synthesize(make_tts(server), text)
    assert len(server.requests) == 2
    said = [request.form["text"] for request in server.requests]
    assert all(len(piece) <= 5000 for piece in said)
    assert " ".join(said).split() == text.split()
    assert b"".join(chunk.data for chunk in chunks) == b"".join(audios)
