"""The SIP stack's own call limit (pjsua's compile-time PJSUA_MAX_CALLS) caps sip.max_calls: the
robot says so at start, and the call beyond it gets our 486, like one beyond max_calls."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.integration.sip.sipp import run_sipp
from tests.sip_tools import SipRobot


def test_calls_beyond_what_pjsip_takes_get_486_and_the_cap_is_logged(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot({"max_calls": 1000})
    match = re.search(r"; (\d+) calls at once", robot.wait_output("sip: listening on"))
    assert match, robot.tail()
    limit = int(match.group(1))
    if limit < 1000:  # PyPI's pjsua2-python 2.15.1 takes 4
        robot.wait_output(f"takes at most {limit} calls at once (PJSUA_MAX_CALLS)")
    calls = limit + 1
    result = run_sipp(
        "uac_max_calls.xml",
        robot.target,
        workdir=tmp_path,
        extra_args=["-m", str(calls), "-l", str(calls), "-r", str(calls)],
    )
    assert result.ok, result.explain()
    finals = re.findall(r"^SIP/2\.0 (200|486)", result.messages, re.MULTILINE)
    assert finals.count("486") == 1  # one INVITE beyond the stack's limit
    assert finals.count("200") == 2 * limit  # the others' INVITE and BYE
    assert len(robot.records(limit)) == limit  # the busy call left no record
