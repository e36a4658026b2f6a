"""`voiceplat serve` with SIP as a process: it stops cleanly on SIGTERM after it has taken calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.integration.sip.calls import call_id, record_of
from tests.integration.sip.sipp import run_sipp
from tests.sip_tools import SipRobot


def test_sigterm_after_calls_exits_0_with_the_records_written(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot()
    ids = []
    for attempt in range(2):
        result = run_sipp("uac_call.xml", robot.target, workdir=tmp_path / f"call{attempt}")
        assert result.ok, result.explain()
        ids.append(call_id(result.messages))
    records = robot.records(2)
    returncode = robot.stop()  # PJSIP's Call objects must be gone before the library is
    assert returncode == 0, robot.tail()
    for sip_call_id in ids:
        assert record_of(records, sip_call_id)["call"]["status"] == "completed"
