"""Whole calls through the Twilio Media Streams ingress (path /twilio on the robot's port): the
robot with fake providers, Twilio's side played by `voiceplat call twilio+ws://` on 127.0.0.1.

The common checks are tests/integration/ingress_checks.py; below them what is Twilio's own: the
caller and callee from the start message's custom parameters, `clear` on barge-in, marks answered,
and who may stream (X-Twilio-Signature, a shared token): a wrong credential in the handshake is a
401 before any call (counted as media_auth's are), a token awaited in the start message is
checked there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import read_call_records
from tests.integration import ingress_checks
from tests.integration.handshake_refusals import Counted, handshake_refused, refused_count
from tests.integration.ingress_checks import call, final_records
from voiceplat.simulator.cli import add_call_arguments, run_call_command
from voiceplat.simulator.script import Pause
from voiceplat.telephony.ingress.twilio.auth import SIGNATURE_HEADER, signature

SOURCE = "twilio"
HANG_S = 60  # only a hang reaches this


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
        ("?auth_token=wrong", "X-Twilio-Signature missing or not valid for wss://127.0.0.1:"),
    ],
)
async def test_a_stream_whose_token_may_still_come_in_its_start_is_refused_there(
    secured: Path, start, query: str, refusal: str
) -> None:
    # No Authorization header: the token may come as customParameters.token, so the handshake
    # opens and the start message decides (Twilio cannot send headers of ours).
    result = await call(await start(secured, query), [Pause(1)])

    assert not result.answers  # no greeting for a stranger
    # closed with 1008 and why (the close frame cuts it at 120 bytes; the record keeps it whole)
    assert any("1008" in e and "not authorised" in e for e in result.errors), result.errors
    (record,) = await final_records(secured)
    assert record["call"]["end_reason"] == "protocol_error" and not record["turns"]
    assert record["call"]["source"] == SOURCE  # refused before its metadata, still Twilio's
    assert refusal in json.dumps(record, ensure_ascii=False)


async def test_a_wrong_handshake_credential_is_a_401_before_any_call(
    make_robot, robot_server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="voiceplat.telephony.media_auth")
    monkeypatch.setenv("TW_AUTH", "the-auth-token")
    monkeypatch.setenv("TW_TOKEN", "the-token")
    signed = make_robot("signed", twilio={"auth_token_env": "TW_AUTH"})
    shared = make_robot("shared", twilio={"token_env": "TW_TOKEN"})
    signed_url, _, _ = await robot_server(signed)
    shared_url, _, _ = await robot_server(shared)
    counted = Counted("twilio")
    async with asyncio.timeout(HANG_S):
        ws = signed_url.rstrip("/") + "/twilio"
        missing = await handshake_refused(ws)
        forged = signature("guessed-auth-token", ws.replace("ws://", "wss://"))
        wrong = await handshake_refused(ws, {SIGNATURE_HEADER: forged})
        bearer = await handshake_refused(
            shared_url.rstrip("/") + "/twilio", {"Authorization": "Bearer guessed-token"}
        )
        # The simulator's Twilio with a wrong Bearer token: refused in the handshake too.
        by_peer = await call(
            shared_url.replace("ws://", "twilio+ws://") + "twilio?bearer=guessed-token", []
        )
    assert missing.status == wrong.status == bearer.status == 401
    assert (
        missing.body
        == f"not authorised: {SIGNATURE_HEADER} missing or not valid for wss:{ws[3:]}\n"
    )
    assert "Bearer" in missing.challenge and "Basic" in missing.challenge  # a token as either
    assert bearer.body == "not authorised: the Authorization token is wrong\n"
    assert counted.added() == {"missing": 1, "wrong": 3}
    assert any("HTTP 401" in e for e in by_peer.errors) and not by_peer.answers
    lines = [
        r.getMessage() for r in caplog.records if "refused a twilio handshake" in r.getMessage()
    ]
    assert len(lines) == 4 and all("from 127.0.0.1 on /twilio" in line for line in lines)
    assert "guessed" not in caplog.text and "the-auth-token" not in caplog.text
    # Right credentials still get their call; the refused handshakes never made one.
    good = await call(
        signed_url.replace("ws://", "twilio+ws://") + "twilio?auth_token=the-auth-token", []
    )
    assert good.ok and good.answers, good.errors
    assert [r["call"]["source"] for r in await final_records(signed)] == [SOURCE]
    assert not read_call_records(shared)


async def test_voiceplat_call_token_is_the_twilio_peers_bearer(
    make_robot, robot_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_TOKEN", "the-token")
    robot = make_robot(twilio={"token_env": "TW_TOKEN"})
    url, _, _ = await robot_server(robot)
    peer_url = url.replace("ws://", "twilio+ws://") + "twilio"
    before = refused_count("twilio", "wrong")
    async with asyncio.timeout(HANG_S):
        refused = await asyncio.to_thread(call_command, peer_url, "--token", "guess")
        admitted = await asyncio.to_thread(call_command, peer_url, "--token", "the-token")
    assert refused == 1 and admitted == 0  # (1: a call failed)
    assert refused_count("twilio", "wrong") == before + 1
    assert [r["call"]["source"] for r in await final_records(robot)] == [SOURCE]


def call_command(url: str, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args([url, *extra, "--wait-quiet", "0.5", "--timeout", "60", "--json"])
    return run_call_command(args)


async def test_each_credential_lets_the_stream_in(secured: Path, robot_server) -> None:
    url, _, _ = await robot_server(secured)
    base = url.replace("ws://", "twilio+ws://").rstrip("/") + "/twilio"
    for query in ("?token=the-token", "?bearer=the-token", "?auth_token=the-auth-token"):
        result = await call(base + query, [Pause(0.5)])
        assert result.ok, (query, result.errors)
        assert result.answers and result.answers[0].bytes > 0, query  # the greeting played
    records = await final_records(secured, 3)
    assert [r["call"]["source"] for r in records] == [SOURCE] * 3
