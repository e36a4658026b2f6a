"""A caller whose phone suppresses silence (no RTP while quiet, comfort-noise packets now and
then) is heard as before, and its quiet spells are not taken for a dead line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.integration.sip.calls import GOODBYE, HELLO_WAV, the_one, turns, write_media
from tests.integration.sip.rtp import Segment, Silence, Speech, Suppressed
from tests.integration.sip.sipp import run_sipp
from tests.sip_tools import SipRobot


def test_silence_suppression_with_comfort_noise_is_not_an_rtp_timeout(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    # rtp_timeout_s 3 < the 6 s without audio packets; comfort noise every second keeps it alive.
    robot = sip_robot({"rtp_timeout_s": 3}, **GOODBYE)
    plan: list[Segment] = [
        Silence(300),
        Suppressed(6000, cn_every_ms=1000),
        Speech.wav(HELLO_WAV),
        Silence(1500),
    ]
    write_media(tmp_path, plan)
    result = run_sipp("uac_media.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # ended by the robot's BYE after its goodbye

    record = the_one(robot.records(1))
    assert record["call"]["end_reason"] == "robot_goodbye"
    assert [t["text"] for t in turns(record, "user")] == ["до свидания"]


def test_silence_without_comfort_noise_beyond_rtp_timeout_ends_the_call(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot({"rtp_timeout_s": 2}, **GOODBYE)
    write_media(tmp_path, [Silence(300), Suppressed(8000), Speech.wav(HELLO_WAV)])
    result = run_sipp("uac_media.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # the robot's BYE ended it

    record = the_one(robot.records(1))
    assert record["call"]["end_reason"] == "rtp_timeout"
    assert turns(record, "user") == []  # it hung up during the quiet spell, before the speech
