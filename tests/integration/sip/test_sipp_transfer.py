"""Blind transfer over SIP: the caller's key makes the robot say its transfer phrase and REFER the
call; SIPp, as the caller's side (the transferee), accepts it or refuses it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.integration.sip.calls import events, the_one, turns, write_media
from tests.integration.sip.rtp import Key, Silence
from tests.integration.sip.sipp import run_sipp
from tests.sip_tools import SipRobot

OPERATOR = "sip:operator@127.0.0.1"
TRANSFER_KEY = {"dtmf": {"0": {"transfer": OPERATOR}, "#": "hangup"}}
TEXTS = {"text": "Соединяю с оператором.", "failed_text": "Не получилось соединить. Продолжим."}


def refer_to(messages: str) -> list[str]:
    return re.findall(r"^(?:Refer-To|r): *<?([^>\r\n]+)", messages, re.MULTILINE)


def test_an_accepted_refer_ends_the_call_as_transferred(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(**TRANSFER_KEY, transfer=TEXTS)
    write_media(tmp_path, [Silence(300), Key("0"), Silence(300)])
    result = run_sipp("uac_refer.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # REFER, 202, NOTIFY 200 sipfrag, then the robot's BYE
    assert refer_to(result.messages) == [OPERATOR]

    record = the_one(robot.records(1))
    assert record["call"]["end_reason"] == "transferred"
    assert record["call"]["transfer_target"] == OPERATOR
    assert record["call"]["dtmf"] == "0"
    assert TEXTS["text"] in [t["text"] for t in turns(record, "robot")]  # said before the REFER
    assert [e["target"] for e in events(record, "transfer")] == [OPERATOR]
    assert not events(record, "transfer_failed")


def test_a_refused_refer_is_said_and_the_call_goes_on(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(**TRANSFER_KEY, transfer=TEXTS)
    first = write_media(tmp_path, [Silence(300), Key("0"), Silence(300)])
    # After its 603, the caller presses '#' (hangup), its RTP going on from where it paused.
    write_media(tmp_path, [Silence(200), Key("#"), Silence(300)], "after.pcap", after=first)
    result = run_sipp("uac_refer_refused.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()  # REFER answered 603; later '#' made the robot hang up
    assert refer_to(result.messages) == [OPERATOR]

    record = the_one(robot.records(1))
    (failed,) = events(record, "transfer_failed")
    assert failed["status"] == 603 and failed["target"] == OPERATOR
    said = [t["text"] for t in turns(record, "robot")]
    assert TEXTS["text"] in said and TEXTS["failed_text"] in said
    assert record["call"]["transfer_target"] is None
    assert record["call"]["dtmf"] == "0#"
    assert record["call"]["end_reason"] == "dtmf_hangup"  # the call went on until the caller's key
