"""Whole calls through the Twilio Media Streams ingress (path /twilio on the robot's port): the
robot with fake providers, Twilio's side played by `voiceplat call twilio+ws://` on 127.0.0.1.

The common checks are tests/integration/ingress_checks.py; below them what is Twilio's own: the
caller and callee from the start message's custom parameters, `clear` on barge-in, marks answered,
and who may stream (X-Twilio-Signature, a shared token).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import ingress_checks
from tests.integration.ingress_checks import call, final_records
from voiceplat.simulator.script import Pause

SOURCE = "twilio"


@pytest.fixture
def start(robot_server: Callable[..., Any]) -> Callable[..., Any]:
    async def start_robot(robot_dir: Path, query: str = "") -> str:
        url, _, _ = await robot_server(robot_dir)
        return url.replace("ws://", "twilio+ws://").rstrip("/") + "/twilio" + query

    return start_robot


async def test_greeting_and_answer(make_robot, start) -> None:
    result, record = await ingress_checks.greeting_and_answer(
        make_robot, start, source=SOURCE, metadata={"from": "+15550001", "to": "+15550002"}
    )
    assert not result.warnings  # every robot message was a valid media / mark / clear
    assert any(m.event == "playout" for m in result.marks)  # Twilio answered marks once played
    info = record["call"]
    assert (info["caller"], info["callee"]) == ("+15550001", "+15550002")  # customParameters
    assert info["metadata"]["stream_sid"].startswith("MZ")


async def test_barge_in(make_robot, start) -> None:
    await ingress_checks.barge_in(make_robot, start, source=SOURCE)


async def test_backchannel(make_robot, start) -> None:
    await ingress_checks.backchannel(make_robot, start, source=SOURCE)


async def test_goodbye_heard_then_hangup(make_robot, start) -> None:
    await ingress_checks.goodbye_heard_then_hangup(make_robot, start, source=SOURCE)


async def test_dtmf(make_robot, start) -> None:
    await ingress_checks.dtmf(make_robot, start, source=SOURCE)


async def test_caller_hangs_up(make_robot, start) -> None:
    await ingress_checks.caller_hangs_up(make_robot, start, source=SOURCE)


async def test_robot_hangs_up_by_closing_the_stream(make_robot, start) -> None:
    await ingress_checks.robot_hangs_up(make_robot, start, source=SOURCE)


@pytest.fixture
def secured(make_robot, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TW_AUTH", "the-auth-token")
    monkeypatch.setenv("TW_TOKEN", "the-token")
    return make_robot(twilio={"auth_token_env": "TW_AUTH", "token_env": "TW_TOKEN"})


@pytest.mark.parametrize(
    ("query", "refusal"),
    [
        ("", "customParameters.token missing or wrong"),
        ("?token=guess", "customParameters.token missing or wrong"),
        ("?bearer=guess", "the Authorization token is wrong"),
        ("?auth_token=wrong", "X-Twilio-Signature missing or not valid for wss://127.0.0.1:"),
    ],
)
async def test_a_stream_without_valid_credentials_is_refused(
    secured: Path, start, query: str, refusal: str
) -> None:
    result = await call(await start(secured, query), [Pause(1)])

    assert not result.answers  # no greeting for a stranger
    # closed with 1008 and why (the close frame cuts it at 120 bytes; the record keeps it whole)
    assert any("1008" in e and "not authorised" in e for e in result.errors), result.errors
    (record,) = await final_records(secured)
    assert record["call"]["end_reason"] == "protocol_error" and not record["turns"]
    assert record["call"]["source"] == SOURCE  # refused before its metadata, still Twilio's
    assert refusal in json.dumps(record, ensure_ascii=False)


async def test_each_credential_lets_the_stream_in(secured: Path, robot_server) -> None:
    url, _, _ = await robot_server(secured)
    base = url.replace("ws://", "twilio+ws://").rstrip("/") + "/twilio"
    for query in ("?token=the-token", "?bearer=the-token", "?auth_token=the-auth-token"):
        result = await call(base + query, [Pause(0.5)])
        assert result.ok, (query, result.errors)
        assert result.answers and result.answers[0].bytes > 0, query  # the greeting played
    records = await final_records(secured, 3)
    assert [r["call"]["source"] for r in records] == [SOURCE] * 3
