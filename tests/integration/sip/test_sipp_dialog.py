"""The life of a SIP dialog with a robot: the caller cancelling, hanging up while the robot speaks,
putting the robot on hold and back. SIPp is the caller; the robot runs `voiceplat serve`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.sip.calls import (
    GOODBYE,
    HELLO_WAV,
    call_id,
    record_of,
    the_one,
    turns,
    write_media,
)
from tests.integration.sip.rtp import Silence, Speech
from tests.integration.sip.sipp import run_sipp
from tests.sip_tools import SipRobot


@pytest.mark.parametrize("answer_after_ms", [3000, 0], ids=["ringing", "answered_at_once"])
def test_a_cancelled_call_leaves_nothing_behind(
    sip_robot: Callable[..., SipRobot], tmp_path: Path, answer_after_ms: int
) -> None:
    """CANCEL as soon as 100 Trying came. A robot that rings first (answer_after_ms) must end the
    INVITE with 487 and start no session; one that answers at once may have answered before the
    CANCEL arrived, and the caller then hangs up. Either way nothing stays behind: with max_calls
    1 a half-alive call would make the next INVITE busy (486)."""
    robot = sip_robot({"max_calls": 1, "answer_after_ms": answer_after_ms})
    answered = 0  # calls whose answer crossed the CANCEL: answered, then ended by the caller
    for attempt in range(3):
        result = run_sipp("uac_cancel.xml", robot.target, workdir=tmp_path / f"cancel{attempt}")
        assert result.ok, result.explain()
        if answer_after_ms:
            assert "SIP/2.0 487 " in result.messages, result.explain()
        answered += "\nBYE sip:" in result.messages
    result = run_sipp("uac_call.xml", robot.target, workdir=tmp_path / "after")
    assert result.ok, result.explain()
    records = robot.records(answered + 1)
    assert len(records) == answered + 1, [r["call"] for r in records]
    for record in records:  # no call is left in progress
        assert record["call"]["status"] == "completed", record["call"]
        assert record["call"]["end_reason"] == "caller_hangup", record["call"]
    record_of(records, call_id(result.messages))  # the call after them was answered


def test_the_callers_bye_while_the_robot_speaks_ends_the_call_at_once(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    # A greeting of 6 s (200 ms per character); the caller hangs up 1.5 s into it.
    robot = sip_robot(tts={"ms_per_char": 200})
    result = run_sipp("uac_call.xml", robot.target, workdir=tmp_path, extra_args=["-d", "1500"])
    assert result.ok, result.explain()
    record = the_one(robot.records(1))
    assert record["call"]["end_reason"] == "caller_hangup"
    (greeting,) = turns(record, "robot")
    assert greeting["interrupted"], greeting
    # What was heard is a part of it: the robot did not go on as if the caller were there.
    assert greeting["heard_text"] != greeting["text"], greeting


def test_hold_and_resume_by_re_invite_and_the_call_goes_on(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(**GOODBYE)
    write_media(tmp_path, [Silence(300), Speech.wav(HELLO_WAV), Silence(1500)])
    result = run_sipp("uac_hold.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # hold answered recvonly, resume sendrecv, then the BYE
    answers = re.findall(r"^a=(sendrecv|recvonly|sendonly|inactive)\r?$", result.messages, re.M)
    # Offer, answer: INVITE, hold, resume.
    assert answers == ["sendrecv", "sendrecv", "sendonly", "recvonly", "sendrecv", "sendrecv"]
    record = the_one(robot.records(1))
    assert [t["text"] for t in turns(record, "user")] == ["до свидания"]
    assert turns(record, "robot")[-1]["text"] == "Вы сказали: до свидания."
    assert record["call"]["end_reason"] == "robot_goodbye"


def test_no_rtp_for_rtp_timeout_s_ends_the_call(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot({"rtp_timeout_s": 2})
    write_media(tmp_path, [Silence(500)])  # then the caller's RTP stops; its SIP stays up
    result = run_sipp("uac_media.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # the robot hung up (BYE)
    record = the_one(robot.records(1))
    assert record["call"]["end_reason"] == "rtp_timeout"


def test_a_call_over_tcp(sip_robot: Callable[..., SipRobot], tmp_path: Path) -> None:
    robot = sip_robot()
    result = run_sipp("uac_call.xml", robot.target, workdir=tmp_path, transport="tcp")
    assert result.ok, result.explain()
    assert "TCP message sent" in result.messages
    record = record_of(robot.records(1), call_id(result.messages))
    assert record["call"]["end_reason"] == "caller_hangup"
