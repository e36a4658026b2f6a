"""Whole calls over a real WebSocket on 127.0.0.1: the robot with fake providers, the simulated caller.

Assertions are about what the caller heard and what the records say, never about wall-clock speed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from tests.conftest import FIXTURES, read_call_records
from voiceplat.audio.pcm import Pcm
from voiceplat.audio.wav import read_wav
from voiceplat.simulator import BargeIn, Pause, Say, run_call, run_calls
from voiceplat.telephony.ingress.audio_fork.codec import without_markers

HELLO = FIXTURES / "ru_hello.wav"
STOP = FIXTURES / "ru_stop.wav"
AGA = FIXTURES / "ru_aga.wav"


async def final_records(robot: Path, count: int = 1) -> list[dict]:
    """The JSON sink writes in its own task: wait until `count` calls are final (bounded, at a
    limit only a hang reaches)."""
    async with asyncio.timeout(60):
        while True:
            records = [r for r in read_call_records(robot) if r["call"]["status"] != "in_progress"]
            if len(records) >= count:
                return records
            await asyncio.sleep(0.05)


def tone_frequency(audio: bytes) -> float:
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum[1:]) + 1) * 8000 / len(samples)


async def test_greeting_then_answer_are_heard_and_recorded(make_robot, robot_server) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Хочу записаться к врачу"]},
        tts={"provider": "fake", "frequency": 500},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO)], metadata={"callId": "c1", "from": "+79991112233"})

    assert result.ok, result.errors
    assert len(result.answers) == 2  # greeting, then the answer
    assert all(not a.cut_by_kill_audio for a in result.answers)
    greeting_ms = len("Здравствуйте! Чем могу помочь?") * 60
    # Its audio heard (8 kHz, 16-bit), not its playout time, which an underrun on a busy machine
    # stretches: all of it (give or take a frame), once, plus at most a short silence pad.
    assert greeting_ms - 20 <= result.answers[0].bytes / 16 < greeting_ms + 200
    assert abs(tone_frequency(result.robot_audio) - 500) < 10  # resampled 16 kHz → 8 kHz cleanly
    (utterance,) = result.utterances
    assert utterance.answered and utterance.v2v_ms is not None

    (record,) = await final_records(robot)
    call = record["call"]
    assert (call["call_id"], call["caller"], call["status"]) == ("c1", "+79991112233", "completed")
    assert call["end_reason"] == "caller_hangup" and call["turns"] == 3
    roles = [(t["role"], t["text"]) for t in record["turns"]]
    assert roles == [
        ("robot", "Здравствуйте! Чем могу помочь?"),
        ("user", "Хочу записаться к врачу"),
        ("robot", "Вы сказали: Хочу записаться к врачу."),
    ]
    answer = record["turns"][2]
    assert answer["v2v_ms"] > 0 and answer["llm_ttft_ms"] is not None
    assert answer["asr_ms"] is not None and answer["tts_ttfb_ms"] is not None
    events = [e["event"] for e in record["pipeline_log"]]
    for expected in ("speech_start", "speech_end", "asr_done", "llm_first_token"):
        assert expected in events
    assert len(list((robot / "logs").glob("*_simulator_c1.json"))) == 1  # <start>_<source>_<id>


async def test_barge_in_cuts_the_robot_and_records_what_was_heard(make_robot, robot_server) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите подробно", "Подождите"]},
        llm={
            "provider": "fake",
            "reply": "Первое предложение ответа. Второе предложение ответа. Третье предложение.",
        },
        tts={"provider": "fake", "ms_per_char": 80},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), BargeIn(STOP)], barge_in_after_s=1.0)

    assert result.ok, result.errors
    barge = result.utterances[1]
    assert barge.kind == "barge_in" and barge.robot_talking_at_start
    assert barge.kill_audio is True
    # Not before barge_in.min_speech_ms (280) of speech: the killAudio cannot come sooner than the caller frames
    # it answers were sent, however fast or slow the machine (slowness only makes it later).
    assert barge.kill_audio_after_ms is not None
    assert 280 <= barge.kill_audio_after_ms
    assert any(e.type == "killAudio" for e in result.events)

    (record,) = await final_records(robot)
    cut = next(t for t in record["turns"] if t["interrupted"])
    assert cut["role"] == "robot"
    assert cut["heard_text"] and cut["text"].startswith(cut["heard_text"].rstrip("…").split()[0])
    assert len(cut["heard_text"]) < len(cut["text"])
    # The robot stopped while the caller was still talking, judged on the audio it received (its
    # log follows that audio), not on how fast the machine is: the barge-in comes after the start
    # of the second utterance and before its end.
    events = [e["event"] for e in record["pipeline_log"]]
    before_barge_in = events[: events.index("barge_in")]
    assert (before_barge_in.count("speech_start"), before_barge_in.count("speech_end")) == (2, 1)
    # after the barge-in the robot listened and answered what the caller said
    after = record["turns"][record["turns"].index(cut) + 1 :]
    assert [(t["role"], t["text"]) for t in after][:1] == [("user", "Подождите")]
    assert after[-1]["role"] == "robot"


async def test_backchannel_pauses_the_robot_which_then_resumes(make_robot, robot_server) -> None:
    """ "ага" over the answer: the robot stops at once (it may be an interruption), hears it is a
    backchannel and says the rest from where it stopped; the turn counts as heard, not cut."""
    reply = "Это довольно длинный ответ робота о ценах и часах работы."
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите подробно", "ага"]},
        llm={"provider": "fake", "reply": reply},
        tts={"provider": "fake", "ms_per_char": 80},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), BargeIn(AGA)], barge_in_after_s=1.0)

    assert result.ok, result.errors
    assert any(e.type == "killAudio" for e in result.events)  # paused: its audio was flushed
    (record,) = await final_records(robot)
    answer = next(t for t in record["turns"] if t["role"] == "robot" and t["text"] == reply)
    assert not answer["interrupted"] and answer["resumed"] == 1
    assert [t["text"] for t in record["turns"] if t["role"] == "user"] == ["Расскажите подробно"]
    log = record["pipeline_log"]
    assert any(e["event"] == "backchannel" and e["data"]["text"] == "ага" for e in log)
    assert [e["event"] for e in log].count("robot_resumed") == 1
    # All of the answer reached the caller: what was heard before the pause plus what came back
    # (from the start of the word it stopped in) is at least the answer's whole length.
    heard_after_greeting = sum(a.bytes for a in result.answers[1:]) / 16
    assert heard_after_greeting >= len(reply) * 80 - 20


async def test_barge_in_can_be_disabled(make_robot, robot_server) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите", "Подождите"]},
        tts={"provider": "fake", "ms_per_char": 120},
        barge_in={"enabled": False},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), BargeIn(STOP)], barge_in_after_s=0.3)
    assert result.ok, result.errors
    assert not any(e.type == "killAudio" for e in result.events)


async def test_robot_goodbye_disconnects_after_it_was_heard(make_robot, robot_server) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Спасибо, до свидания"]},
        llm={"provider": "fake", "reply": "Всего доброго!", "end_call_on": ["свидания"]},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), Pause(10)])

    assert result.robot_hung_up
    goodbye = result.answers[-1]
    assert goodbye.ended_by != "hangup" and not goodbye.cut_by_kill_audio  # heard to the end
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "robot_goodbye"
    assert record["turns"][-1]["text"] == "Всего доброго!"  # the marker is not spoken


async def test_no_input_reprompts_then_hangs_up(make_robot, robot_server) -> None:
    robot = make_robot(
        no_input={
            "reprompt_after_s": 0.5,
            "max_reprompts": 1,
            "reprompt_text": "Алло?",
            "goodbye_text": "До свидания.",
        }
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Pause(20)])

    assert result.robot_hung_up
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "no_input"
    texts = [t["text"] for t in record["turns"]]
    assert texts == ["Здравствуйте! Чем могу помочь?", "Алло?", "До свидания."]


async def test_max_call_duration_ends_politely(make_robot, robot_server) -> None:
    robot = make_robot(max_call_s=1.5, max_call_text="Время вышло.")
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Pause(20)])

    assert result.robot_hung_up
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "max_duration"
    assert record["turns"][-1]["text"] == "Время вышло."


async def test_greeting_wav_is_played(make_robot, robot_server) -> None:
    robot = make_robot(greeting_text="Добрый день")
    greeting = read_wav(HELLO)
    (robot / "greeting.wav").write_bytes((HELLO).read_bytes())
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Pause(0.5)])
    assert result.answers[0].bytes == len(greeting.data)
    # As sent: -1 samples become 0, since mod_audio_fork would take them for marks.
    assert result.robot_audio[: len(greeting.data)] == without_markers(greeting.data)


async def test_concurrent_calls_each_get_their_own_answer(make_robot, robot_server) -> None:
    robot = make_robot(asr={"provider": "fake", "texts": ["@dur"]})
    url, _, _ = await robot_server(robot)
    result = await run_calls(url, [Say(HELLO)], 6)

    assert not result.errors
    assert len(result.calls) == 6
    records = await final_records(robot, 6)
    assert len({r["call"]["call_id"] for r in records}) == 6
    for record in records:
        assert [t["role"] for t in record["turns"]] == ["robot", "user", "robot"]


async def test_metadata_extras_are_kept(make_robot, robot_server) -> None:
    robot = make_robot()
    url, _, _ = await robot_server(robot)
    await run_call(url, [Pause(0.2)], metadata={"callId": "m1", "campaign": {"id": 7}})
    (record,) = await final_records(robot)
    assert record["call"]["metadata"]["campaign"] == {"id": 7}
    assert json.dumps(record, ensure_ascii=False)


async def test_speculative_transcription_is_used_when_the_caller_stays_silent(
    make_robot, robot_server
) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["@dur"], "delay_ms": 150},
        vad={"speculative_pause_ms": 200},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO)])
    assert result.ok, result.errors
    (record,) = await final_records(robot)
    log = record["pipeline_log"]
    used = [e for e in log if e["event"] == "asr_speculative" and e["data"]["used"]]
    assert len(used) == 1
    asr = [e for e in log if e["event"] == "asr_done"]
    assert asr[-1]["data"]["speculative"] is True
    (user,) = [t for t in record["turns"] if t["role"] == "user"]
    assert user["text"].startswith("<speech ")
    assert record["turns"][-1]["role"] == "robot"


async def test_speculative_transcript_prefills_the_prompt_the_answer_then_uses(
    make_robot, robot_server
) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["@dur"], "delay_ms": 100},
        llm={"provider": "fake", "prefill_ms": 50},
        vad={"speculative_pause_ms": 200},
    )
    url, server, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO)])
    assert result.ok, result.errors
    (record,) = await final_records(robot)
    events = [e["event"] for e in record["pipeline_log"]]
    assert events.count("llm_prefill") == 1
    llm = server.robot.llm
    assert llm.prefilled == llm.streamed  # the prompt of the answer, system prompt to the end
    assert llm.streamed[0][-1].content == record["turns"][-2]["text"]


async def test_caller_who_goes_on_talking_cancels_the_prefill(make_robot, robot_server) -> None:
    """Speech, a pause long enough to speculate, more speech: the first prefill must not finish
    (it would, 1.5 s later, while the caller still talks)."""
    robot = make_robot(
        asr={"provider": "fake", "texts": ["@dur"]},
        llm={"provider": "fake", "prefill_ms": 1500},
        vad={"speculative_pause_ms": 200},
    )
    hello = read_wav(HELLO)
    gap = b"\0" * int(hello.rate * 0.45) * 2
    url, server, _ = await robot_server(robot)
    result = await run_call(url, [Say(Pcm(hello.data + gap + hello.data, hello.rate))])
    assert result.ok, result.errors
    (record,) = await final_records(robot)
    log = record["pipeline_log"]
    assert any(e["event"] == "asr_speculative" and not e["data"]["used"] for e in log)
    (user,) = [t for t in record["turns"] if t["role"] == "user"]
    llm = server.robot.llm
    assert llm.streamed[0][-1].content == user["text"]
    # Only the prefill of the whole utterance may have finished, never the one of its first half.
    assert all(prompt == llm.streamed[0] for prompt in llm.prefilled)


async def test_end_marker_without_a_goodbye_does_not_hang_up(make_robot, robot_server) -> None:
    """A small LLM may write the marker anywhere; the caller who did not say goodbye stays on."""
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Хочу записаться к врачу"]},
        llm={"provider": "fake", "reply": "Записываю.", "end_call_on": ["записаться"]},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO)])

    assert result.ok, result.errors
    assert not result.robot_hung_up
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "caller_hangup"
    assert "end_marker_ignored" in [e["event"] for e in record["pipeline_log"]]
    assert record["turns"][-1]["text"] == "Записываю."
