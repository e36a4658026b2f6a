"""Whole calls through the mod_audio_stream ingress (path /audio_stream on the robot's port): the
robot with fake providers and its event-socket client, FreeSWITCH's side (the module's WebSocket
and the event socket the robot connects to) played by `voiceplat call audio_stream+ws://`
(simulator/peers/audio_stream.py), all on 127.0.0.1.

The common checks are tests/integration/ingress_checks.py; below them what is this ingress's own:
robot audio played only by uuid_broadcast, barge-in by uuid_break, the Bearer token, and an event
socket that refuses the robot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import ingress_checks
from tests.integration.ingress_checks import call, final_records
from tests.sip_tools import free_port
from voiceplat.simulator.script import Pause

SOURCE = "freeswitch"


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


async def test_a_wrong_token_is_refused(
    stream_robot, start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AS_TOKEN", "the-token")
    robot = stream_robot(audio_stream={"token_env": "AS_TOKEN"})
    result = await call(await start(robot, "&bearer=guess"), [Pause(1)])
    assert not result.answers
    assert any("1008" in e for e in result.errors), result.errors
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "protocol_error"
    assert "unauthorized: wrong token" in json.dumps(record, ensure_ascii=False)

    robot = stream_robot(name="second", audio_stream={"token_env": "AS_TOKEN"})
    result = await call(await start(robot, "&bearer=the-token"), [Pause(0.5)])
    assert result.ok and result.answers and result.answers[0].bytes > 0, result.errors


async def test_an_event_socket_that_refuses_the_robot_ends_the_call_with_why(
    stream_robot, start
) -> None:
    robot = stream_robot()
    result = await call(await start(robot, "&esl_password=not-the-robots"), [Pause(1)])
    assert not result.answers
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "protocol_error"
    assert "refused the password" in json.dumps(record, ensure_ascii=False)
