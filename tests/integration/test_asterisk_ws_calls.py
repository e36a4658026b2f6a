"""Whole calls through Asterisk's chan_websocket ingress (path /asterisk on the robot's port): the
simulator plays Asterisk's side (`asterisk+ws://`) over a real WebSocket on 127.0.0.1 to a robot
with fake providers. The common checks are `ingress_checks`; here also what is chan_websocket's
own: both control formats, each media format, marks answered, Basic auth (a wrong or missing
password is a 401 in the handshake, counted, and makes no call).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import ingress_checks
from tests.integration.handshake_refusals import Counted, handshake_refused
from tests.integration.ingress_checks import call, final_records
from voiceplat.simulator.cli import add_call_arguments, run_call_command
from voiceplat.telephony.ingress.asterisk_ws.codec import SUBPROTOCOL

HANG_S = 60  # only a hang reaches this

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
    make_robot: Any,
    robot_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="voiceplat.telephony.media_auth")
    monkeypatch.setenv("AST_WS_PASSWORD", "s3cret")
    robot = make_robot(asterisk_ws={"username": "asterisk", "password_env": "AST_WS_PASSWORD"})
    url, _, _ = await robot_server(robot)
    ws = url + "asterisk?format=ulaw"
    counted = Counted("asterisk_ws", ("missing", "wrong", "malformed"))
    async with asyncio.timeout(HANG_S):
        # websockets' client as Asterisk's chan_websocket: refused in the HTTP handshake.
        missing = await handshake_refused(ws, subprotocols=[SUBPROTOCOL])
        wrong = await handshake_refused(ws, basic("asterisk", "guessed"), [SUBPROTOCOL])
        stranger = await handshake_refused(ws, basic("intruder", "s3cret"), [SUBPROTOCOL])
        bearer = await handshake_refused(ws, {"Authorization": "Bearer s3cret"}, [SUBPROTOCOL])
        base = url.replace("ws://", "asterisk+ws://") + "asterisk?username=asterisk&password="
        bad = await call(base + "wrong", [ingress_checks.Pause(5)])  # the simulated Asterisk
        good = await call(base + "s3cret", [], metadata={"callId": "good"})
    assert [r.status for r in (missing, wrong, stranger, bearer)] == [401] * 4
    assert missing.challenge == 'Basic realm="voiceplat"'  # Asterisk speaks Basic only
    assert missing.body.startswith("unauthorized: Basic auth required")
    assert wrong.body == stranger.body == "unauthorized: wrong username or password\n"
    assert counted.added() == {"missing": 1, "wrong": 3, "malformed": 1}
    assert not bad.answers and any("HTTP 401" in e for e in bad.errors), bad.errors
    assert good.ok and good.answers, good.errors
    lines = [r.getMessage() for r in caplog.records if "asterisk_ws handshake" in r.getMessage()]
    assert len(lines) == 5 and all("from 127.0.0.1 on /asterisk:" in line for line in lines)
    assert "s3cret" not in caplog.text and "guessed" not in caplog.text
    # Only the admitted call has a record: a refused handshake never made a session.
    (record,) = await final_records(robot)
    assert (record["call"]["call_id"], record["call"]["end_reason"]) == ("good", "caller_hangup")


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}  # what websocket_client.conf makes Asterisk send


async def test_voiceplat_call_auth_is_asterisks_basic_auth(
    make_robot: Any, robot_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AST_WS_PASSWORD", "pass:with colon")
    robot = make_robot(asterisk_ws={"username": "asterisk", "password_env": "AST_WS_PASSWORD"})
    url, _, _ = await robot_server(robot)
    peer_url = url.replace("ws://", "asterisk+ws://") + "asterisk"
    async with asyncio.timeout(HANG_S):
        refused = await asyncio.to_thread(call_command, peer_url, "--auth", "asterisk:guess")
        admitted = await asyncio.to_thread(
            call_command, peer_url, "--auth", "asterisk:pass:with colon"
        )
    assert refused == 1 and admitted == 0  # (1: a call failed)
    assert [r["call"]["source"] for r in await final_records(robot)] == ["asterisk"]


def call_command(url: str, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args([url, *extra, "--wait-quiet", "0.5", "--timeout", "60", "--json"])
    return run_call_command(args)
