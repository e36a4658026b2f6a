"""Who may call a robot over SIP, and what bad input does not do to it: allow_from, digest auth,
max_calls, malformed SDP and garbage datagrams, each against SIPp (or raw sockets) on 127.0.0.1."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

from tests.integration.sip.calls import call_id, record_of, the_one
from tests.integration.sip.sipp import run_sipp
from tests.sip_tools import SipRobot, read_records

OUTSIDE = {"allow_from": ["10.0.0.0/8"]}
"""A robot that takes calls from 10/8 only: SIPp on 127.0.0.1 is outside."""
AUTH = {**OUTSIDE, "auth": {"user": "pbx", "password_env": "SIP_AUTH_PASSWORD"}}
PASSWORD = {"SIP_AUTH_PASSWORD": "s3cret-Pa55"}


def statuses(messages: str) -> list[str]:
    """The status lines SIPp received or sent, in order, e.g. ["100", "403"]."""
    return re.findall(r"^SIP/2\.0 (\d{3})", messages, re.MULTILINE)


def assert_a_call_works(robot: SipRobot, workdir: Path, records: int) -> None:
    result = run_sipp("uac_call.xml", robot.target, workdir=workdir)
    assert result.ok, result.explain()
    last = record_of(robot.records(records), call_id(result.messages))
    assert last["call"]["status"] == "completed"
    assert last["call"]["end_reason"] == "caller_hangup"


def test_a_source_outside_allow_from_is_refused_with_403(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(OUTSIDE)
    result = run_sipp("uac_forbidden.xml", robot.target, workdir=tmp_path)
    assert result.ok, result.explain()
    assert statuses(result.messages)[-1] == "403"
    assert robot.process.poll() is None
    assert read_records(robot.directory) == []  # no session was started for it


def test_digest_auth_lets_a_caller_outside_allow_from_in(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(AUTH, env=PASSWORD)
    result = run_sipp(
        "uac_auth.xml",
        robot.target,
        workdir=tmp_path,
        extra_args=["-au", "pbx", "-ap", PASSWORD["SIP_AUTH_PASSWORD"]],
    )
    assert result.ok, result.explain()
    assert re.search(r'WWW-Authenticate: Digest [^\n]*realm="voiceplat"', result.messages)
    assert statuses(result.messages)[:1] != ["200"]  # challenged first
    record = the_one(robot.records(1))
    assert record["call"]["source"] == "sip"
    assert record["call"]["end_reason"] == "caller_hangup"


def test_a_wrong_password_is_refused(sip_robot: Callable[..., SipRobot], tmp_path: Path) -> None:
    robot = sip_robot(AUTH, env=PASSWORD)
    result = run_sipp(
        "uac_auth_refused.xml",
        robot.target,
        workdir=tmp_path,
        extra_args=["-au", "pbx", "-ap", "not-the-password"],
    )
    assert result.ok, result.explain()
    assert statuses(result.messages)[-1] in {"403", "401"}
    assert "200" not in statuses(result.messages)
    assert read_records(robot.directory) == []


def test_beyond_max_calls_the_next_invite_gets_486(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot({"max_calls": 1})
    # Two calls at once; the answered one hangs up only after the other got its answer.
    result = run_sipp("uac_max_calls.xml", robot.target, workdir=tmp_path, extra_args=["-m", "2"])
    assert result.ok, result.explain()
    finals = [s for s in statuses(result.messages) if s not in {"100", "180"}]
    assert sorted(finals) == ["200", "200", "486"]  # INVITE 200, BYE 200; INVITE 486
    the_one(robot.records(1))  # the busy call left no record
    assert_a_call_works(robot, tmp_path / "after", records=2)  # its slot is free again


def test_malformed_sdp_and_garbage_do_not_stop_the_robot(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot()
    result = run_sipp("uac_bad_sdp.xml", robot.target, workdir=tmp_path / "bad_sdp")
    assert result.ok, result.explain()
    assert statuses(result.messages)[-1] in {"400", "488"}

    junk = [
        b"\x00\xff\xfe garbage",
        b"INVITE sip:x SIP/2.0\r\nVia: \r\n\r\n",  # a request with nothing a stack needs
        b"SIP/2.0 200 OK\r\nCall-ID: nobody\r\n\r\n",  # an answer to no request
        b"INVITE sip:robot@127.0.0.1 SIP/2.0\r\nContent-Length: 999999\r\n\r\nv=0",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for datagram in junk:
            udp.sendto(datagram, (robot.host, robot.port))
    with socket.create_connection((robot.host, robot.port), timeout=60) as tcp:
        tcp.sendall(b"".join(junk) + b"\r\n" * 1000)

    assert_a_call_works(robot, tmp_path / "after", records=1)
    assert robot.process.poll() is None
