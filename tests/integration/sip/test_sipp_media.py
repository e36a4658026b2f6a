"""A SIPp caller's RTP and keys reach the robot's session, and the robot's audio comes back.

The robot is the echo robot (fake providers) in a `voiceplat serve` child process. Each call ends
on a cue the robot acts on (its goodbye, or '#' mapped to hangup), so SIPp waits for the robot's
BYE rather than for a guessed time; SIPp's global timeout (60 s) only bounds a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.integration.sip.calls import (
    CALLER,
    GOODBYE,
    HELLO_WAV,
    KEYS,
    events,
    the_one,
    turns,
    write_media,
)
from tests.integration.sip.rtp import PCMU, Key, RtpPeer, Segment, Silence, Speech, packets
from tests.integration.sip.sipp import run_sipp, start_sipp
from tests.sip_tools import HANG_S, SipRobot


def test_speech_played_by_sipp_is_answered_and_the_robot_hangs_up(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(**GOODBYE)
    write_media(tmp_path, [Silence(500), Speech.wav(HELLO_WAV), Silence(1500)])
    result = run_sipp("uac_media.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # it ended with the robot's BYE

    record = the_one(robot.records(1))
    call = record["call"]
    assert call["source"] == "sip"
    assert call["caller"] == CALLER  # the From user
    assert call["callee"] == "service"  # the Request-URI / To user SIPp dials
    assert call["metadata"]["sip_call_id"] == call["call_id"]
    assert call["metadata"]["sip_call_id"] in result.messages
    assert call["end_reason"] == "robot_goodbye"
    assert [t["text"] for t in turns(record, "user")] == ["до свидания"]
    answer = turns(record, "robot")[-1]
    assert answer["text"] == "Вы сказали: до свидания."
    assert not answer["interrupted"]
    # The session heard speech (the VAD over the decoded RTP) and played its answer.
    assert events(record, "speech_start") and events(record, "speech_end")
    assert [e["text"] for e in events(record, "asr_done")] == ["до свидания"]
    assert any(e["turn"] == answer["idx"] for e in events(record, "tts_first_audio"))


def test_rfc4733_keys_are_recorded_and_reach_the_llm(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(**KEYS)
    # 1 and 2 are one message (pressed within dtmf_inter_digit_ms, 1 s); '#' (hangup) comes 3 s
    # after them, once they went to the LLM.
    plan: list[Segment] = [
        Silence(300),
        Key("1"),
        Silence(200),
        Key("2"),
        Silence(3000),
        Key("#"),
        Silence(500),
    ]
    write_media(tmp_path, plan)
    result = run_sipp("uac_media.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # '#' made the robot send BYE

    record = the_one(robot.records(1))
    assert record["call"]["dtmf"] == "12#"
    assert [(e["digit"], e["method"]) for e in events(record, "dtmf")] == [
        ("1", "rfc4733"),
        ("2", "rfc4733"),
        ("#", "rfc4733"),
    ]
    assert [t["text"] for t in turns(record, "user")] == ["[DTMF 1 2]"]
    assert "Вы сказали: [DTMF 1 2]." in [t["text"] for t in turns(record, "robot")]
    assert record["call"]["end_reason"] == "dtmf_hangup"


def test_sip_info_keys_are_recorded_and_hash_hangs_up(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(**KEYS)
    result = run_sipp("uac_info_dtmf.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # '#' made the robot send BYE

    record = the_one(robot.records(1))
    assert record["call"]["dtmf"] == "5#"
    assert [(e["digit"], e["method"]) for e in events(record, "dtmf")] == [
        ("5", "sip_info"),
        ("#", "sip_info"),
    ]
    assert record["call"]["end_reason"] == "dtmf_hangup"


def tone_frames(pcm: bytes, frequency: float = 440.0) -> int:
    """20 ms frames of `pcm` that are loud and whose strongest frequency is `frequency` (the fake
    TTS's tone), within one FFT bin."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    count = 0
    for start in range(0, len(samples) - 160, 160):
        frame = samples[start : start + 160]
        if np.sqrt(np.mean(frame**2)) < 1000:
            continue
        spectrum = np.abs(np.fft.rfft(frame * np.hanning(160), n=1600))
        if abs(np.argmax(spectrum) * 8000 / 1600 - frequency) <= 10:
            count += 1
    return count


def test_the_robots_answer_arrives_as_rtp_at_the_caller(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(**GOODBYE)
    peer = RtpPeer()
    try:
        sipp = start_sipp(
            "uac_peer.xml",
            robot.target,
            workdir=tmp_path,
            extra_args=["-key", "rtp_peer_port", str(peer.port)],
        )
        try:
            robot_rtp = peer.remote(HANG_S)  # the greeting's first packet
            peer.play(packets([Speech.wav(HELLO_WAV), Silence(1500)]), robot_rtp)
        finally:
            result = sipp.wait()
        assert result.ok, result.explain()
        record = the_one(robot.records(1))
        answer = turns(record, "robot")[-1]
        assert answer["text"] == "Вы сказали: до свидания." and not answer["interrupted"]
        # The fake TTS speaks a 440 Hz tone 60 ms per character: the 24-character answer is 1.44 s
        # (72 frames), and the caller also heard part of the greeting.
        assert {r.payload_type for r in peer.received} == {PCMU}  # the only codec offered
        heard = tone_frames(peer.audio())
        assert heard >= 65, f"{heard} frames of the robot's tone arrived"
    finally:
        peer.close()
