"""`voiceplat call sip:...`: the simulator dials a robot serving SIP and reports what it heard.

Both ends are child processes (pjsua2 is one library per process): the echo robot (fake
providers: a greeting, then "Вы сказали: ..." for each thing it hears, spoken as a tone) from
tests/sip_tools.py, and the simulator. Each call ends when the simulator's script is done or on
its --hangup-after; the records are the robot's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.sip_tools import HANG_S, SipRobot, sip_robot
from voiceplat.simulator.cli import add_call_arguments, run_call_command

__all__ = ["sip_robot"]

HELLO_WAV = Path(__file__).resolve().parents[1] / "fixtures" / "ru_hello.wav"
CALLER = "+79991234567"


def simulate(uri: str, *args: str, timeout_s: float = HANG_S) -> subprocess.CompletedProcess[str]:
    """`voiceplat call URI ARGS` in a child process; its --timeout is below ours, so a call that
    hangs is reported by the simulator itself."""
    command = [sys.executable, "-m", "voiceplat.cli", "call", uri, *args]
    command += ["--timeout", str(timeout_s - 10)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)


def report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}"
    value = json.loads(done.stdout)  # --json: stdout is the report and nothing else
    assert isinstance(value, dict)
    return value


def record_of(robot: SipRobot, call_id: str) -> dict[str, Any]:
    records = [r for r in robot.records(1) if r["call"]["call_id"] == call_id]
    assert len(records) == 1, [r["call"] for r in robot.records()]
    return records[0]


def test_a_sip_call_hears_the_greeting_and_the_answers_and_presses_keys(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot()
    wav = tmp_path / "call.wav"
    done = simulate(
        robot.uri(),
        *["--say", str(HELLO_WAV), "--dtmf", "12#", "--record", str(wav), "--json"],
        *["--metadata", json.dumps({"from": CALLER})],
    )
    result = report(done)
    assert result["errors"] == [], result["errors"]
    assert result["end_reason"] == "caller_hung_up"
    assert result["metadata"]["codec"] == "PCMA/8000"  # the first codec both sides allow

    answers = result["answers"]
    speech, keys = result["utterances"]
    assert speech["source"] == HELLO_WAV.name
    assert keys["source"] == "dtmf 12#"
    # The greeting was heard before the caller spoke, an answer to the speech after it ended,
    # and one to the keys after they were sent: robot audio in each place.
    greeting = answers[0]
    assert greeting["bytes"] > 0 and greeting["end_ms"] <= speech["speech_start_ms"]
    for utterance in (speech, keys):
        assert utterance["answered"], utterance
        answer = answers[utterance["answer_index"]]
        assert answer["bytes"] > 0
        assert answer["start_ms"] > utterance["speech_end_ms"]
        assert utterance["v2v_ms"] == pytest.approx(
            answer["start_ms"] - utterance["speech_end_ms"], abs=0.2
        )
    assert [e["data"]["digits"] for e in result["events"] if e["type"] == "dtmf"] == ["12#"]
    rtp = next(e["data"] for e in result["events"] if e["type"] == "rtp")
    assert rtp["rx_packets"] > 0 and rtp["tx_packets"] > 0

    record = record_of(robot, result["call_id"])  # the SIP Call-ID names the robot's record
    call = record["call"]
    assert call["source"] == "sip"
    assert call["caller"] == CALLER
    assert call["callee"] == "robot"
    assert call["end_reason"] == "caller_hangup"
    assert call["dtmf"] == "12#"
    robot_turns = [t["text"] for t in record["turns"] if t["role"] == "robot"]
    assert len(robot_turns) == 3  # the greeting, the answer to the speech, the one to the keys
    assert robot_turns[2] == "Вы сказали: [DTMF 1 2 #]."

    # The recording: the caller's speech on the left, the robot's tones on the right.
    with wave.open(str(wav)) as recording:
        assert (recording.getnchannels(), recording.getframerate()) == (2, 8000)
        samples = np.frombuffer(recording.readframes(recording.getnframes()), dtype="<i2")
    left, right = samples[0::2].astype(np.float64), samples[1::2].astype(np.float64)
    assert np.sqrt(np.mean(left**2)) > 100 and np.sqrt(np.mean(right**2)) > 100


def test_a_sip_call_over_tcp_is_answered(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot()
    result = report(simulate(robot.uri() + ";transport=tcp", "--say", str(HELLO_WAV), "--json"))
    assert result["metadata"]["transport"] == "tcp"
    (speech,) = result["utterances"]
    assert speech["answered"] and result["answers"][speech["answer_index"]]["bytes"] > 0
    call = record_of(robot, result["call_id"])["call"]
    assert call["metadata"]["request_uri"].endswith(";transport=tcp")
    assert call["caller"] == "+79990000000"  # the simulator's default number


def test_hangup_after_ends_the_call_mid_script(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot()
    # Without --hangup-after this script would take 40 s.
    result = report(simulate(robot.uri(), "--pause", "40", "--hangup-after", "1", "--json"))
    assert result["end_reason"] == "caller_hung_up"
    assert 1000 <= result["duration_ms"] < 40000
    assert result["answers"][0]["bytes"] > 0  # the greeting had begun
    call = record_of(robot, result["call_id"])["call"]
    assert call["end_reason"] == "caller_hangup"


def test_several_sip_calls_at_once_share_one_sip_stack(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot()
    result = report(simulate(robot.uri(), "--say", str(HELLO_WAV), "--calls", "3", "--json"))
    assert (result["completed"], result["errored"]) == (3, 0), result["errors"]
    assert result["v2v_ms"]["count"] == 3  # each call's speech was answered
    call_ids = {s["call_id"] for s in result["summaries"]}
    assert len(call_ids) == 3
    records = robot.records(3)
    assert {r["call"]["call_id"] for r in records} == call_ids
    assert all(r["call"]["source"] == "sip" for r in records)


SIMULTANEOUS = """
import asyncio, json, sys
from voiceplat.simulator import Say
from voiceplat.simulator.sip_caller import run_sip_call

async def main():
    calls = await asyncio.gather(*(run_sip_call(sys.argv[1], [Say(sys.argv[2])]) for _ in "ab"))
    print(json.dumps([[c.call_id, c.v2v_ms, c.errors] for c in calls]))

asyncio.run(main())
"""


def test_simultaneous_run_sip_calls_in_one_process_share_its_sip_stack(
    sip_robot: Callable[..., SipRobot],
) -> None:
    # What benchmarks do: several run_sip_call()s at once, though pjsua is one per process.
    robot = sip_robot()
    command = [sys.executable, "-c", SIMULTANEOUS, robot.uri(), str(HELLO_WAV)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-4000:]
    calls = json.loads(done.stdout)
    assert [(len(v2v), errors) for _, v2v, errors in calls] == [(1, []), (1, [])]
    records = robot.records(2)
    assert {r["call"]["call_id"] for r in records} == {call_id for call_id, _, _ in calls}


def test_a_refused_call_is_reported_with_the_robots_answer(
    sip_robot: Callable[..., SipRobot],
) -> None:
    robot = sip_robot(sip={"allow_from": ["10.0.0.0/8"]})  # not 127.0.0.1, and no auth
    done = simulate(robot.uri(), "--say", str(HELLO_WAV), "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["end_reason"] == "connect_failed"
    assert result["errors"] == ["the robot did not answer the call: 403 Forbidden"]
    assert result["answers"] == []


def _run(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    return run_call_command(parser.parse_args(argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sip:robot@", "--say", str(HELLO_WAV)], "not a SIP URI"),
        (["sip:robot@127.0.0.1:5060;transport=sctp"], "transport=sctp is not supported"),
        (["sip:robot@127.0.0.1:5060", "--dtmf", "12x"], "keys are 0-9, *, #, A-D"),
        (["sip:robot@127.0.0.1:5060", "--codecs", "opus"], "codecs must be some of"),
        (["sip:robot@127.0.0.1:5060", "--frame-ms", "10"], "SIP media runs in 20 ms frames"),
        (["ws://127.0.0.1:1/", "--dtmf", "1"], "--dtmf: only for sip: URIs"),
        (["ws://127.0.0.1:1/", "--hangup-after", "2"], "--hangup-after: only for sip: URIs"),
    ],
)
def test_bad_sip_arguments_are_refused_before_dialling(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(argv) == 2
    assert message in capsys.readouterr().err
