"""A whole call whose ASR and TTS are remote OpenAI-compatible servers (the fake of the API)."""

from __future__ import annotations

import numpy as np

from tests.conftest import FIXTURES
from tests.doubles.fake_openai_audio import FakeOpenAIAudio, Segment
from tests.integration.test_calls import final_records, tone_frequency
from voiceplat.simulator import Say, run_call

GREETING = "Здравствуйте! Чем могу помочь?"


async def test_call_hears_remote_speech_and_records_the_remote_transcript(
    make_robot, robot_server
) -> None:
    text = "Запишите меня на завтра"
    segments = [Segment(f" {text}", -0.3, 0.05, tokens=8, start=0.0, end=1.2)]
    fake = FakeOpenAIAudio(api_key="sk-robot-0123456789", text=text, segments=segments)
    async with fake as server:
        robot = make_robot(
            asr={"provider": "openai", "base_url": server.url, "model": "whisper-1"},
            tts={"provider": "openai", "base_url": server.url, "voice": "nova"},
        )
        (robot / ".env").write_text("OPENAI_API_KEY=sk-robot-0123456789\n")
        url, _, _ = await robot_server(robot)
        result = await run_call(url, [Say(FIXTURES / "ru_hello.wav")], metadata={"callId": "o1"})

    assert result.ok, result.errors
    assert len(result.answers) == 2  # the greeting, then the answer, both spoken remotely
    greeting_ms = len(GREETING) * 50  # the fake speaks 50 ms per character
    assert greeting_ms - 20 <= result.answers[0].bytes / 16 < greeting_ms + 200
    assert abs(tone_frequency(result.robot_audio) - 300) < 10  # 24 kHz pcm → 8 kHz cleanly

    (upload,) = server.uploads  # one utterance, sent at the call's rate
    assert upload.rate == 8000 and upload.fields["language"] == "ru"
    spoken = [r.json()["input"] for r in server.requests if r.path.endswith("/speech")]
    assert spoken[0] == GREETING  # then the echo's answer, sentence by sentence
    assert " ".join(spoken[1:]) == "Вы сказали: Запишите меня на завтра."

    (record,) = await final_records(robot)
    user_turn = record["turns"][1]
    assert (user_turn["role"], user_turn["text"]) == ("user", text)
    assert np.isfinite(record["turns"][2]["tts_ttfb_ms"])
