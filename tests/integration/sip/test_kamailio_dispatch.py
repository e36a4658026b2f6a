"""Three robot processes behind Kamailio's dispatcher (deploy/kamailio/kamailio.cfg), calls placed
with SIPp through Kamailio: they are spread over the three; a robot killed mid-run is taken out
(its INVITE times out, its OPTIONS probes go unanswered) and every call it had not answered is
answered by the others; brought back, it is probed up and gets calls again; every finished call
has exactly one record in PostgreSQL, written by the robot that answered it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.sip.kamailio import VIA_PROXY_SCENARIO, CallSeen, Kamailio, calls_seen
from tests.integration.sip.sipp import SippResult, run_sipp, start_sipp
from tests.sip_tools import HANG_S, SipRobot, read_records, start_sip_robot
from tests.storage_servers import StoreEnv

# All INVITEs come from Kamailio's one address: the per-source rate limit must not refuse them.
SIP = {"invites_per_s": 100, "invite_burst": 100}


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[Callable[[list[SipRobot]], Kamailio]]:
    started: list[Kamailio] = []

    def start(robots: list[SipRobot]) -> Kamailio:
        proxy = Kamailio(tmp_path / "kamailio", [robot.target for robot in robots])
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def place_calls(proxy: Kamailio, workdir: Path, calls: int, hold_ms: int) -> SippResult:
    """`calls` calls through the proxy, three at a time, each hung up after `hold_ms`."""
    args = ["-l", "3", "-r", "10", "-d", str(hold_ms), "-s", "robot"]
    return run_sipp(VIA_PROXY_SCENARIO, proxy.target, workdir=workdir, calls=calls, extra_args=args)


def seen(result: SippResult, calls: int) -> dict[str, CallSeen]:
    found = calls_seen(result.messages)
    assert len(found) == calls, result.explain()
    return found


def stored_calls(stores: StoreEnv, call_ids: set[str]) -> dict[str, list[tuple[str, str]]]:
    """sip_call_id -> [(robot, status)] of every row in `calls`, once each of `call_ids` has a
    finished row (the robots write through their spool, a moment after the call ends)."""
    query = (
        "SELECT metadata->>'sip_call_id', robot, status FROM calls "
        "WHERE source = 'sip' ORDER BY started_at"
    )
    rows: dict[str, list[tuple[str, str]]] = {}
    deadline = time.monotonic() + HANG_S
    while True:
        rows = {}
        for line in stores.servers.postgres.psql(query, stores.database).splitlines():
            sip_call_id, robot, status = line.split("|")
            rows.setdefault(sip_call_id, []).append((robot, status))
        finished = {i for i, found in rows.items() if any(s != "in_progress" for _, s in found)}
        if call_ids <= finished or time.monotonic() > deadline:
            return rows
        # A row's arrival is announced to no other process; look again shortly.
        time.sleep(0.1)


def wait_for_live_call(robot: SipRobot, known: set[str]) -> None:
    """Until the robot holds a call (its record says in_progress) that is not one of `known`."""
    deadline = time.monotonic() + HANG_S
    while True:
        live = [
            r
            for r in read_records(robot.directory)
            if r["call"]["status"] == "in_progress"
            and r["call"]["metadata"].get("sip_call_id") not in known
        ]
        if live:
            return
        assert time.monotonic() < deadline, f"no live call on {robot.target}:\n{robot.tail()}"
        # A record's first write is announced to no other process; look again shortly.
        time.sleep(0.05)


def test_calls_are_spread_fail_over_a_killed_robot_and_reach_it_again_when_it_is_back(
    sip_robot: Callable[..., SipRobot],
    balancer: Callable[[list[SipRobot]], Kamailio],
    stores: StoreEnv,
    tmp_path: Path,
) -> None:
    env = {"POSTGRES_DSN": stores.env["POSTGRES_DSN"]}
    robots = [sip_robot(SIP, name=f"robot-{n}", env=env) for n in (1, 2, 3)]
    by_port = {robot.port: robot.directory.name for robot in robots}
    proxy = balancer(robots)
    for robot in robots:
        proxy.wait_state(robot.target, "A")
    finished: dict[str, CallSeen] = {}

    # 1. Spread: round robin over the three.
    result = place_calls(proxy, tmp_path / "spread", calls=6, hold_ms=200)
    assert result.ok, result.explain()
    spread = seen(result, 6)
    assert {call.answered_by for call in spread.values()} == set(by_port), spread
    finished |= spread

    # 2. Kill one robot while calls are up: only the calls it had answered may fail.
    victim = robots[0]
    caller = start_sipp(
        VIA_PROXY_SCENARIO,
        proxy.target,
        workdir=tmp_path / "kill",
        calls=12,
        extra_args=["-l", "3", "-r", "10", "-d", "1000", "-s", "robot"],
    )
    wait_for_live_call(victim, known=set(spread))
    victim.process.kill()
    victim.process.wait()
    result = caller.wait()
    during = seen(result, 12)
    lost = {i: c for i, c in during.items() if not c.finished}
    assert lost, "the killed robot held a call, which cannot have finished"
    assert all(c.answered_by == victim.port for c in lost.values()), (lost, result.explain())
    finished |= {i: c for i, c in during.items() if c.finished}

    # 3. Its probes go unanswered: it is out, and every new call is answered by the others.
    proxy.wait_state(victim.target, "I")
    result = place_calls(proxy, tmp_path / "after", calls=6, hold_ms=200)
    assert result.ok, result.explain()
    after = seen(result, 6)
    assert {c.answered_by for c in after.values()} == set(by_port) - {victim.port}, after
    finished |= after

    # 4. Back on the same port (its spool replays what the kill left unwritten): probed up, used.
    back = start_sip_robot(victim.directory, {**SIP, "port": victim.port}, ws_port=victim.ws_port)
    try:
        proxy.wait_state(victim.target, "A")
        result = place_calls(proxy, tmp_path / "back", calls=6, hold_ms=200)
        assert result.ok, result.explain()
        again = seen(result, 6)
        assert victim.port in {c.answered_by for c in again.values()}, again
        finished |= again

        # Every finished call: exactly one row, from the robot that answered it.
        rows = stored_calls(stores, set(finished))
        for call_id, call in finished.items():
            assert rows.get(call_id) == [(by_port[call.answered_by or 0], "completed")], (
                call_id,
                rows.get(call_id),
            )
        assert all(len(found) == 1 for found in rows.values()), rows
    finally:
        assert back.stop() == 0, back.tail()
