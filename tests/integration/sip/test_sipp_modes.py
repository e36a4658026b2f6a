"""Every mode works over SIP: a SIPp caller talks to an llm_script robot (tone tracks, fake ASR and
LLM: test_llm_script.py's robot) and to a realtime robot (test_realtime.py's fake realtime service,
served from this test's event loop), and a robot listens for SIP over TLS.

The caller's RTP is the test's `RtpPeer`: it speaks when the robot's previous turn has arrived (its
tone, found in the decoded RTP), so no turn is cut by a guess about timing. Each call ends on a cue
the robot acts on (a goodbye track, '#' mapped to hangup, a transfer), so SIPp waits for the
robot's BYE or REFER; SIPp's global timeout only bounds a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sip.calls import events, the_one, turns, write_media
from tests.integration.sip.rtp import Key, RtpPeer, Silence, Speech, packets
from tests.integration.sip.sipp import Sipp, run_sipp, start_sipp
from tests.integration.sip.test_sipp_codecs import wait_until
from tests.integration.sip.test_sipp_media import tone_frames
from tests.integration.sip.test_sipp_transfer import refer_to
from tests.integration.test_llm_script import (  # noqa: F401 (make_script_robot is a fixture)
    SPEECH,
    asr,
    make_script_robot,
    robot_turns,
)
from tests.integration.test_realtime import (  # noqa: F401 (fixtures)
    GREETING,
    HELLO,
    Script,
    fake_realtime,
    frequency,
    realtime_robot,
)
from tests.sip_tools import HANG_S, SipRobot, start_sip_robot

GREETING_HZ, PRICES_HZ, GOODBYE_HZ = 400.0, 600.0, 700.0
"""test_llm_script.py's tracks are tones of 400 + 100 * their index Hz, 0.6 s (30 frames) each."""
TRACK_FRAMES = 25
"""Frames of a track's tone that must arrive before the caller goes on (of its 30)."""


@pytest.fixture
def serve_sip() -> Iterator[Callable[..., SipRobot]]:
    """Serves a robot folder made by another fixture over SIP; stops every robot at the end."""
    started: list[SipRobot] = []

    def start(directory: Path, sip: dict[str, Any] | None = None, **config: Any) -> SipRobot:
        robot = start_sip_robot(directory, sip, **config)
        started.append(robot)
        return robot

    yield start
    for robot in started:
        robot.stop()


def heard(peer: RtpPeer, hz: float, frames: int) -> Callable[[], bool]:
    """True once `frames` 20 ms frames of a `hz` tone came from the robot (PCMU)."""
    return lambda: tone_frames(peer.audio(), hz) >= frames


def peer_call(robot: SipRobot, peer: RtpPeer, workdir: Path) -> Sipp:
    """SIPp signals a call whose RTP is `peer`'s (uac_peer.xml waits for the robot's BYE)."""
    return start_sipp(
        "uac_peer.xml",
        robot.target,
        workdir=workdir,
        extra_args=["-key", "rtp_peer_port", str(peer.port)],
    )


# -- llm_script -------------------------------------------------------------------------------
def test_llm_script_tracks_chosen_from_the_callers_speech_arrive_as_rtp(
    make_script_robot: Callable[..., Path],  # noqa: F811 (the imported fixture)
    serve_sip: Callable[..., SipRobot],
    tmp_path: Path,
) -> None:
    robot = serve_sip(make_script_robot(asr=asr("Сколько стоит приём?", "Спасибо, до свидания")))
    peer = RtpPeer()
    try:
        sipp = peer_call(robot, peer, tmp_path / "sipp")
        try:
            robot_rtp = peer.remote(HANG_S)
            wait_until(heard(peer, GREETING_HZ, TRACK_FRAMES), "the greeting track arriving")
            question = packets([Speech.wav(SPEECH), Silence(1000)])
            peer.play(question, robot_rtp)
            wait_until(heard(peer, PRICES_HZ, TRACK_FRAMES), "the prices track arriving")
            peer.play(packets([Speech.wav(SPEECH), Silence(1000)], after=question), robot_rtp)
        finally:
            result = sipp.wait()  # the goodbye track ends the call: the robot's BYE
        assert result.ok, result.explain()
    finally:
        peer.close()

    record = the_one(robot.records(1))
    assert record["call"]["source"] == "sip"
    assert robot_turns(record) == [
        ("greeting", "Здравствуйте!"),
        ("prices", "Приём стоит тысячу."),
        ("goodbye", "До свидания!"),
    ]
    assert [t["text"] for t in turns(record, "user")] == [
        "Сколько стоит приём?",
        "Спасибо, до свидания",
    ]
    assert record["call"]["end_reason"] == "robot_goodbye"
    # Every track the robot chose reached the caller whole (30 frames each, give or take the edges).
    for hz in (GREETING_HZ, PRICES_HZ, GOODBYE_HZ):
        assert tone_frames(peer.audio(), hz) >= TRACK_FRAMES, hz


def test_an_llm_script_transfer_track_refers_the_caller_and_ends_transferred(
    make_script_robot: Callable[..., Path],  # noqa: F811 (the imported fixture)
    serve_sip: Callable[..., SipRobot],
    tmp_path: Path,
) -> None:
    robot = serve_sip(make_script_robot(asr=asr("Соедините с оператором")))
    workdir = tmp_path / "sipp"
    write_media(workdir, [Silence(1000), Speech.wav(SPEECH), Silence(1000)])
    result = run_sipp("uac_refer.xml", robot.target, workdir=workdir)
    assert result.ok, result.explain()  # REFER, 202, NOTIFY 200 sipfrag, then the robot's BYE
    # The track's target is a bare extension: REFERred to it on the calling side's host.
    assert refer_to(result.messages) == ["sip:1001@127.0.0.1"]

    record = the_one(robot.records(1))
    assert record["call"]["end_reason"] == "transferred"
    assert record["call"]["transfer_target"] == "1001"
    assert robot_turns(record)[-1] == ("operator", "Соединяю.")
    assert [e["target"] for e in events(record, "transfer")] == ["1001"]


# -- realtime ---------------------------------------------------------------------------------
REALTIME_GREETING_HZ, REPLY_HZ = 600.0, 1000.0
"""Script's defaults: the greeting (the model's, 800 ms: 40 frames), the reply (1.5 s: 75)."""


async def test_realtime_the_models_reply_reaches_a_sip_caller_as_rtp(
    fake_realtime: Callable[..., Any],  # noqa: F811 (the imported fixture)
    realtime_robot: Callable[..., Path],  # noqa: F811 (the imported fixture)
    tmp_path: Path,
) -> None:
    server, url = await fake_realtime(Script())
    # The robot is a child process; this loop serves it the fake realtime service meanwhile, so
    # everything that blocks (the robot starting, SIPp, the caller's RTP) runs in threads.
    robot = await asyncio.to_thread(start_sip_robot, realtime_robot(url, dtmf={"#": "hangup"}))
    peer = RtpPeer()
    try:
        sipp = peer_call(robot, peer, tmp_path / "sipp")
        try:
            robot_rtp = await asyncio.to_thread(peer.remote, HANG_S)
            greeting = heard(peer, REALTIME_GREETING_HZ, 30)
            await asyncio.to_thread(wait_until, greeting, "the model's greeting arriving")
            speech = packets([Speech(HELLO.data), Silence(1000)])  # a 700 Hz "utterance"
            await asyncio.to_thread(peer.play, speech, robot_rtp)
            reply = heard(peer, REPLY_HZ, 65)
            await asyncio.to_thread(wait_until, reply, "the model's reply arriving")
            await asyncio.to_thread(peer.play, packets([Key("#")], after=speech), robot_rtp)
        finally:
            result = await asyncio.to_thread(sipp.wait)  # '#' makes the robot hang up: BYE
        assert result.ok, result.explain()
        record = the_one(await asyncio.to_thread(robot.records, 1))
    finally:
        peer.close()
        await asyncio.to_thread(robot.stop)

    # The caller's RTP reached the model as 24 kHz PCM: its 700 Hz tone where its VAD found it.
    (connection,) = server.connections
    start = connection.speech_start_ms * 48
    assert abs(frequency(bytes(connection.audio[start : start + 800 * 48]), 24000) - 700) < 10
    assert record["call"]["source"] == "sip"
    assert [t["text"] for t in turns(record, "user")] == ["Хочу записаться к врачу"]
    assert [t["text"] for t in turns(record, "robot")] == [
        GREETING,
        "Ответ робота номер 1 про запись.",
    ]
    assert record["call"]["dtmf"] == "#"
    assert record["call"]["end_reason"] == "dtmf_hangup"
    assert tone_frames(peer.audio(), REPLY_HZ) >= 65  # the reply, 75 frames, reached the caller
