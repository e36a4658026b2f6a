"""Whole calls through Asterisk's chan_websocket ingress (path /asterisk on the robot's port): the
simulator plays Asterisk's side (`asterisk+ws://`) over a real WebSocket on 127.0.0.1 to a robot
with fake providers. The common checks are `ingress_checks`; here also what is chan_websocket's
own: both control formats, each media format, marks answered, Basic auth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import ingress_checks
from tests.integration.ingress_checks import call, final_records

Start = Callable[[Path], Awaitable[str]]


def starter(robot_server: Any, query: str) -> Start:
    async def start(robot: Path) -> str:
        url, _, _ = await robot_server(robot)
        return url.replace("ws://", "asterisk+ws://").rstrip("/") + "/asterisk" + query

    return start


@pytest.fixture
def start(robot_server: Any) -> Start:
    """Asterisk's defaults: plain-text control messages; ulaw, the usual caller's codec."""
    return starter(robot_server, "?format=ulaw")


@pytest.fixture(
    params=["?format=ulaw", "?format=slin&control=json"], ids=["plain-ulaw", "json-slin"]
)
def start_any(robot_server: Any, request: pytest.FixtureRequest) -> Start:
    """Both control formats (and two media formats)."""
    return starter(robot_server, request.param)


async def test_greeting_and_answer(make_robot: Any, start_any: Start) -> None:
    result, record = await ingress_checks.greeting_and_answer(
        make_robot, start_any, source="asterisk", metadata={"from": "+79991112233", "to": "100"}
    )
    assert not result.warnings, result.warnings  # whole frames, commands Asterisk takes
    assert any(m.event == "playout" for m in result.marks)  # MEDIA_MARK_PROCESSED came back
    assert (record["call"]["caller"], record["call"]["callee"]) == ("+79991112233", "100")
    assert record["call"]["metadata"]["channel"].startswith("WebSocket/")


async def test_barge_in(make_robot: Any, start: Start) -> None:
    await ingress_checks.barge_in(make_robot, start, source="asterisk")


async def test_backchannel(make_robot: Any, start: Start) -> None:
    await ingress_checks.backchannel(make_robot, start, source="asterisk")


async def test_goodbye_heard_then_hangup(make_robot: Any, start: Start) -> None:
    await ingress_checks.goodbye_heard_then_hangup(make_robot, start, source="asterisk")


async def test_dtmf(make_robot: Any, start: Start) -> None:
    await ingress_checks.dtmf(make_robot, start, source="asterisk")


async def test_caller_hangs_up(make_robot: Any, start: Start) -> None:
    await ingress_checks.caller_hangs_up(make_robot, start, source="asterisk")


async def test_robot_hangs_up(make_robot: Any, start: Start) -> None:
    await ingress_checks.robot_hangs_up(make_robot, start, source="asterisk")


async def test_slin16_call_is_heard(make_robot: Any, robot_server: Any) -> None:
    robot = make_robot(asr={"provider": "fake", "texts": ["Да"]})
    url, _, _ = await robot_server(robot)
    result = await call(url.replace("ws://", "asterisk+ws://") + "asterisk?format=slin16", [])
    assert result.ok, result.errors
    assert not result.warnings and result.answers and result.answers[0].bytes > 0


async def test_basic_auth_lets_in_the_right_password_only(
    make_robot: Any, robot_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AST_WS_PASSWORD", "s3cret")
    robot = make_robot(asterisk_ws={"username": "asterisk", "password_env": "AST_WS_PASSWORD"})
    url, _, _ = await robot_server(robot)
    base = url.replace("ws://", "asterisk+ws://") + "asterisk?username=asterisk&password="
    good = await call(base + "s3cret", [], metadata={"callId": "good"})
    assert good.ok and good.answers, good.errors
    bad = await call(base + "wrong", [ingress_checks.Pause(5)])
    assert not bad.answers and bad.robot_hung_up  # closed at once, nothing played
    records = {r["call"]["call_id"]: r for r in await final_records(robot, 2)}
    assert records["good"]["call"]["end_reason"] == "caller_hangup"
    (refused,) = [r for r in records.values() if r["call"]["end_reason"] == "protocol_error"]
    assert "unauthorized: wrong username or password" in str(refused)
    assert refused["call"]["source"] == "asterisk"
