"""Whole calls through the mod_audio_stream ingress (path /audio_stream on the robot's port): the
robot with fake providers and its event-socket client, FreeSWITCH's side (the module's WebSocket
and the event socket the robot connects to) played by `voiceplat call audio_stream+ws://`
(simulator/peers/audio_stream.py), all on 127.0.0.1.

The common checks are tests/integration/ingress_checks.py; below them what is this ingress's own:
robot audio played only by uuid_broadcast, barge-in by uuid_break, the Bearer token (a missing or
wrong one is a 401 in the handshake, counted, and makes no call), and an event socket that refuses
the robot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import ingress_checks
from tests.integration.handshake_refusals import Counted, handshake_refused
from tests.integration.ingress_checks import call, final_records
from tests.sip_tools import free_port
from voiceplat.simulator.cli import add_call_arguments, run_call_command
from voiceplat.simulator.script import Pause

SOURCE = "freeswitch"
HANG_S = 60  # only a hang reaches this


@pytest.fixture
def esl_port() -> int:
    return free_port()


@pytest.fixture
def stream_robot(make_robot: Callable[..., Path], esl_port: int) -> Callable[..., Path]:
    """make_robot with the robot's event socket pointed at the simulator's."""

    def make(**overrides: Any) -> Path:
        settings = {"esl_port": esl_port, **overrides.pop("audio_stream", {})}
        return make_robot(audio_stream=settings, **overrides)

    return make


@pytest.fixture
def start(robot_server: Callable[..., Any], esl_port: int) -> Callable[[Path], Any]:
    async def start_robot(robot_dir: Path, query: str = "") -> str:
        url, _, _ = await robot_server(robot_dir)
        base = url.replace("ws://", "audio_stream+ws://").rstrip("/")
        return f"{base}/audio_stream?esl=127.0.0.1:{esl_port}{query}"

    return start_robot


async def test_greeting_and_answer(stream_robot, start) -> None:
    result, record = await ingress_checks.greeting_and_answer(stream_robot, start, source=SOURCE)
    assert not result.warnings  # every robot message was a valid streamAudio, every command ours
    assert record["call"]["caller"] == "+79990000000"


async def test_barge_in(stream_robot, start) -> None:
    await ingress_checks.barge_in(stream_robot, start, source=SOURCE)


async def test_backchannel(stream_robot, start) -> None:
    await ingress_checks.backchannel(stream_robot, start, source=SOURCE)


async def test_goodbye_heard_then_hangup(stream_robot, start) -> None:
    await ingress_checks.goodbye_heard_then_hangup(stream_robot, start, source=SOURCE)


async def test_dtmf(stream_robot, start) -> None:
    await ingress_checks.dtmf(stream_robot, start, source=SOURCE)


async def test_caller_hangs_up(stream_robot, start) -> None:
    await ingress_checks.caller_hangs_up(stream_robot, start, source=SOURCE)


async def test_robot_hangs_up_by_uuid_kill(stream_robot, start) -> None:
    await ingress_checks.robot_hangs_up(stream_robot, start, source=SOURCE)


async def test_a_missing_or_wrong_token_is_a_401_before_any_call(
    stream_robot,
    start,
    robot_server,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="voiceplat.telephony.media_auth")
    monkeypatch.setenv("AS_TOKEN", "the-token")
    robot = stream_robot(audio_stream={"token_env": "AS_TOKEN"})
    peer_url = await start(robot)
    ws = "ws://" + peer_url.split("://", 1)[1].split("?", 1)[0]
    counted = Counted("audio_stream", ("missing", "wrong", "malformed"))
    async with asyncio.timeout(HANG_S):
        # websockets' client as mod_audio_stream: refused in the HTTP handshake.
        missing = await handshake_refused(ws)
        wrong = await handshake_refused(ws, {"Authorization": "Bearer guessed-token"})
        basic = await handshake_refused(ws, {"Authorization": "Basic dTp0aGUtdG9rZW4="})
        by_peer = await call(peer_url + "&bearer=guess", [Pause(1)])  # the simulated FreeSWITCH
        good = await call(peer_url + "&bearer=the-token", [Pause(0.5)])
    assert [r.status for r in (missing, wrong, basic)] == [401] * 3
    assert missing.challenge == 'Bearer realm="voiceplat"'
    assert "'Authorization: Bearer <token>' required" in missing.body
    assert wrong.body == "unauthorized: wrong token\n"
    assert counted.added() == {"missing": 1, "wrong": 2, "malformed": 1}
    assert not by_peer.answers and any("HTTP 401" in e for e in by_peer.errors), by_peer.errors
    assert good.ok and good.answers and good.answers[0].bytes > 0, good.errors
    lines = [r.getMessage() for r in caplog.records if "audio_stream handshake" in r.getMessage()]
    assert len(lines) == 4 and all("from 127.0.0.1 on /audio_stream:" in line for line in lines)
    assert "guessed-token" not in caplog.text
    # Only the admitted call has a record: a refused handshake never made a session.
    (record,) = await final_records(robot)
    assert record["call"]["source"] == SOURCE and record["call"]["end_reason"] == "caller_hangup"


async def test_voiceplat_call_token_is_mod_audio_streams_bearer(
    stream_robot, start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AS_TOKEN", "the-token")
    robot = stream_robot(audio_stream={"token_env": "AS_TOKEN"})
    peer_url = await start(robot)
    async with asyncio.timeout(HANG_S):
        refused = await asyncio.to_thread(call_command, peer_url, "--token", "guess")
        admitted = await asyncio.to_thread(call_command, peer_url, "--token", "the-token")
    assert refused == 1 and admitted == 0  # (1: a call failed)
    assert [r["call"]["source"] for r in await final_records(robot)] == [SOURCE]


def call_command(url: str, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args([url, *extra, "--wait-quiet", "0.5", "--timeout", "60", "--json"])
    return run_call_command(args)


async def test_an_event_socket_that_refuses_the_robot_ends_the_call_with_why(
    stream_robot, start
) -> None:
    robot = stream_robot()
    result = await call(await start(robot, "&esl_password=not-the-robots"), [Pause(1)])
    assert not result.answers
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "protocol_error"
    assert "refused the password" in json.dumps(record, ensure_ascii=False)
