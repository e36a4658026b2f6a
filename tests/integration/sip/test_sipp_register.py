"""The robot registers as an extension on a PBX: SIPp plays the registrar, challenges the REGISTER
(401) and checks the digest the robot answers with (SIPp's verifyauth) before its 200."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.integration.sip.sipp import start_sipp
from tests.sip_tools import HANG_S, SipRobot, free_port

PASSWORD_ENV = "SIP_REGISTER_PASSWORD"
PASSWORD = "s3cret-Reg"


def registering(port: int) -> dict[str, object]:
    return {
        "register": {
            "registrar": f"sip:127.0.0.1:{port}",
            "user": "1001",
            "password_env": PASSWORD_ENV,
            "expires": 60,
        }
    }


def test_the_robot_registers_after_a_digest_challenge(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    port = free_port()
    registrar = start_sipp(
        "uas_registrar.xml",
        workdir=tmp_path / "registrar",
        port=port,
        extra_args=["-key", "reg_password", PASSWORD],
    )
    try:
        robot = sip_robot(registering(port), env={PASSWORD_ENV: PASSWORD})
        result = registrar.wait()
    finally:
        registrar.stop()
    # SIPp exits 0 only if the second REGISTER's digest matched user 1001 and the password.
    assert result.ok, result.explain()
    requests = re.findall(r"^REGISTER (\S+) SIP/2\.0", result.messages, re.MULTILINE)
    assert requests == [f"sip:127.0.0.1:{port}"] * 2
    assert re.search(r'^Authorization: Digest username="1001"', result.messages, re.MULTILINE)
    # The address of record: the user at the registrar's domain.
    assert re.search(r"^To: <sip:1001@127\.0\.0\.1(:\d+)?>", result.messages, re.MULTILINE)
    robot.wait_output("SIP registered", timeout=HANG_S)


def test_refused_credentials_are_reported_in_the_robots_log(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    port = free_port()
    registrar = start_sipp(
        "uas_registrar.xml",
        workdir=tmp_path / "registrar",
        port=port,
        extra_args=["-key", "reg_password", "the-registrars-idea"],
    )
    try:
        robot = sip_robot(registering(port), env={PASSWORD_ENV: PASSWORD})
        line = robot.wait_output("registration refused", timeout=HANG_S)
        # After its 403 the scenario fails the call and SIPp exits, writing out its message log
        # (killed at once, as before, its last messages could still be unwritten).
        result = registrar.wait()
    finally:
        registrar.stop()
    assert "403" in line
    assert "SIP/2.0 403 Forbidden" in result.messages
    assert robot.process.poll() is None  # SIP stays up for direct calls
