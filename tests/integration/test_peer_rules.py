"""Whole calls against peers that are not the ideal one: mod_audio_fork as it is, and a peer that
never answers marks. The robot must still know when a turn was heard (issue 9, defects 3 and 13).

The simulator plays the peer (see voiceplat/simulator/peer_playout.py); times asserted are call
times the simulator measured, with bounds that separate "promptly" from the 60 s the robot used
to wait, never the machine's speed.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FIXTURES
from tests.integration.test_calls import final_records
from voiceplat.simulator import BargeIn, CallResult, Pause, Say, run_call

HELLO = FIXTURES / "ru_hello.wav"
STOP = FIXTURES / "ru_stop.wav"
AGA = FIXTURES / "ru_aga.wav"

NO_INPUT = {
    "reprompt_after_s": 2.0,
    "max_reprompts": 1,
    "reprompt_text": "Алло?",
    "goodbye_text": "До свидания.",
}
ANSWER = "Раз два три. Четыре пять. Шесть семь. Восемь. Девять. Десять. Одиннадцать. Двенадцать."
"""About 3.5 s of fake speech in sentences of 0.3-0.5 s."""
PROMPT_S = 3.0
"""The goodbye's disconnect comes this soon after the caller heard its end (the robot waits at
most 0.5 s past the playout clock for a mark; before the fix it waited 60 s)."""


def robot_turns(record: dict) -> list[tuple[str, bool]]:
    return [(t["text"], t["interrupted"]) for t in record["turns"] if t["role"] == "robot"]


def user_texts(record: dict) -> list[str]:
    return [t["text"] for t in record["turns"] if t["role"] == "user"]


def assert_goodbye_heard_then_disconnected(result: CallResult, goodbye_ms: float) -> None:
    """The goodbye (`goodbye_ms` of tone) was heard to its end, then the robot disconnected soon.

    (A few ms of silence may follow it: the robot pads a turn's end so that mod_audio_fork's
    pre-buffer lets it go; hanging up on that silence is fine.)"""
    goodbye = result.answers[-1]
    assert goodbye.bytes >= goodbye_ms * 16  # 8 kHz, 16-bit: every sample of it was heard
    heard_end = goodbye.start_ms + goodbye_ms
    assert result.disconnect_ms is not None, "the robot never said disconnect"
    assert heard_end - 20 <= result.disconnect_ms < heard_end + PROMPT_S * 1000


async def test_no_marks_peer_greeting_heard_short_answer_reprompt_and_goodbye(
    make_robot, robot_server
) -> None:
    robot: Path = make_robot(asr={"provider": "fake", "texts": ["да"]}, no_input=NO_INPUT)
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(AGA), Pause(12)], marks="none")

    assert result.ok, result.errors
    assert all(m.event == "pending" for m in result.marks)  # the peer answered none
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "no_input"
    # «да» right after the greeting is the caller's answer, not a backchannel over the robot.
    assert user_texts(record) == ["да"]
    assert robot_turns(record) == [
        ("Здравствуйте! Чем могу помочь?", False),
        ("Вы сказали: да.", False),
        ("Алло?", False),
        ("До свидания.", False),
    ]
    assert_goodbye_heard_then_disconnected(result, len("До свидания.") * 60)


async def test_mod_audio_fork_peer_after_a_barge_in_turns_end_and_the_call_goes_on(
    make_robot, robot_server
) -> None:
    # Sentences shorter than the 1 s lead: whenever the caller barges in, a sentence mark is in
    # use (sent, followed by audio, not yet played). killAudio keeps its name in the module's
    # cleared list, so from then on the module answers marks one behind, and a mark after the
    # last audio of a turn never (lws_glue.cpp dub_speech_frame).
    robot: Path = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите подробно", "Подождите", "да"]},
        llm={"provider": "fake", "reply": ANSWER},
        # 8 kHz, 500 Hz: no sample of -1, which the module would take for a marker (the robot
        # never sends one, but this robot's old self did, and its marks drifted early then).
        tts={"provider": "fake", "ms_per_char": 40, "sample_rate": 8000, "frequency": 500},
        playout={"lead_ms": 1000},
        no_input=NO_INPUT,
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(
        url, [Say(HELLO), BargeIn(STOP), Say(AGA), Pause(12)], barge_in_after_s=1.0
    )

    assert result.ok, result.errors
    assert [e.type for e in result.events].count("killAudio") == 1
    assert not any(m.event == "dropped" for m in result.marks)
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "no_input"
    assert user_texts(record) == ["Расскажите подробно", "Подождите", "да"]
    turns = robot_turns(record)
    assert [text for text, _ in turns] == [
        "Здравствуйте! Чем могу помочь?",
        ANSWER,
        ANSWER,
        ANSWER,
        "Алло?",
        "До свидания.",
    ]
    # Only the turn the caller cut is interrupted; the ones after the barge-in were heard.
    assert [interrupted for _, interrupted in turns] == [False, True, False, False, False, False]
    assert_goodbye_heard_then_disconnected(result, len("До свидания.") * 40)
