"""media_auth and tls on a real robot port (127.0.0.1): a peer without, or with wrong, credentials
is refused in the handshake (401, what websockets' client sees) and counted, and no call starts;
right credentials get a call: mod_audio_fork's Basic auth on the default path, ?token= on /web,
and the simulator over wss:// with a self-signed certificate made here."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.fake_http import make_certs
from tests.integration.test_calls import final_records
from voiceplat.simulator import WaitQuiet, run_call
from voiceplat.simulator.cli import add_call_arguments, run_call_command
from voiceplat.telephony.ingress.audio_fork.codec import SUBPROTOCOL

HANG_S = 60  # only a hang reaches this
PASSWORD = "fork-pass:with colon"  # (a colon in the password: Basic splits at the first one)
TOKEN = "media-token-42"
AUTH = {"username": "freeswitch", "password_env": "TEST_FORK_PASSWORD", "token_env": "TEST_TOKEN"}
FAST: dict[str, Any] = {"settle_s": 0.1, "answer_timeout_s": 10.0, "timeout_s": 30.0}

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def refused(ingress: str, reason: str) -> float:
    labels = {"ingress": ingress, "reason": reason}
    return REGISTRY.get_sample_value("voiceplat_media_auth_refused_total", labels) or 0.0


def secured_robot(make_robot: Callable[..., Path], **overrides: Any) -> Path:
    robot = make_robot(media_auth=AUTH, **overrides)
    (robot / ".env").write_text(f"TEST_FORK_PASSWORD='{PASSWORD}'\nTEST_TOKEN={TOKEN}\n")
    return robot


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}  # what mod_audio_fork sends


async def status_of(url: str, **headers: str) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=headers):  # type: ignore[list-item]
            pass
    response = refusal.value.response
    return response.status_code, response.headers.get("WWW-Authenticate", "")


async def test_audio_fork_path_refuses_missing_and_wrong_credentials_then_calls_with_right_ones(
    make_robot: Callable[..., Path], robot_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    robot = secured_robot(make_robot)
    url, _, _ = await robot_server(robot)
    missing, wrong = refused("audio_fork", "missing"), refused("audio_fork", "wrong")
    async with asyncio.timeout(HANG_S):
        assert await status_of(url) == (401, 'Basic realm="voiceplat", Bearer realm="voiceplat"')
        status, _ = await status_of(url, **basic("freeswitch", "guess"))
        assert status == 401
        status, _ = await status_of(url, **basic("intruder", PASSWORD))
        assert status == 401
        assert refused("audio_fork", "missing") == missing + 1
        assert refused("audio_fork", "wrong") == wrong + 2
        # The simulator's --auth form: user info in the URL, sent as Basic auth.
        port = url.rsplit(":", 1)[1]
        secret = PASSWORD.replace(":", "%3A").replace(" ", "%20")
        result = await run_call(
            f"ws://freeswitch:{secret}@127.0.0.1:{port}", [WaitQuiet(0.5)], **FAST
        )
    assert result.ok, result.errors
    assert len(result.robot_audio) > 0  # the greeting arrived
    assert "guess" not in caplog.text and PASSWORD not in caplog.text
    # Only the admitted call has a record: a refused handshake never made a session.
    assert [r["call"]["source"] for r in await final_records(robot)] == ["simulator"]


async def test_web_path_wants_the_token_in_its_query(
    make_robot: Callable[..., Path], robot_server: Any
) -> None:
    url, _, _ = await robot_server(secured_robot(make_robot))
    web = url + "web"
    before = refused("web", "missing"), refused("web", "wrong")
    async with asyncio.timeout(HANG_S):
        assert (await status_of(web))[0] == 401
        assert (await status_of(web + "?token=nope"))[0] == 401
        assert (refused("web", "missing"), refused("web", "wrong")) == (
            before[0] + 1,
            before[1] + 1,
        )
        async with connect(f"{web}?token={TOKEN}") as ws:
            await ws.send(json.dumps({"robot": "robot"}))
            first = json.loads(await ws.recv())
            assert first["type"] == "call"
            await ws.send(json.dumps({"type": "hangup"}))
            async for _ in ws:
                pass  # until the robot closes
        async with connect(web, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await ws.send(json.dumps({"robot": "robot"}))
            assert json.loads(await ws.recv())["type"] == "call"


async def test_an_ingress_with_credentials_of_its_own_keeps_its_own_check(
    make_robot: Callable[..., Path], robot_server: Any
) -> None:
    robot = secured_robot(
        make_robot, asterisk_ws={"username": "asterisk", "password_env": "TEST_FORK_PASSWORD"}
    )
    url, _, _ = await robot_server(robot)
    before = refused("asterisk_ws", "wrong"), refused("audio_fork", "wrong")
    async with asyncio.timeout(HANG_S):
        # media_auth's user does not open /asterisk: asterisk_ws's own check guards it, in the
        # same handshake hook (its 401, counted under its name; test_asterisk_ws_calls.py).
        for headers in (basic("freeswitch", PASSWORD), basic("asterisk", "no")):
            with pytest.raises(InvalidStatus) as refusal:
                async with connect(url + "asterisk", additional_headers=headers):
                    pass
            assert refusal.value.response.status_code == 401
            assert refusal.value.response.body == b"unauthorized: wrong username or password\n"
        async with connect(url + "asterisk", additional_headers=basic("asterisk", PASSWORD)):
            pass  # its own credentials open it
    assert (refused("asterisk_ws", "wrong"), refused("audio_fork", "wrong")) == (
        before[0] + 2,
        before[1],
    )


@needs_openssl
async def test_wss_call_through_the_simulator_and_https_metrics(
    make_robot: Callable[..., Path],
    robot_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # --ca sets it; put back after the test
    certs = make_certs(tmp_path)
    robot = secured_robot(
        make_robot, tls={"cert_file": str(certs.server_cert), "key_file": "server.key"}
    )
    shutil.copy(certs.server_key, robot / "server.key")  # a path relative to the robot folder
    url, _, _ = await robot_server(robot)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    trust = ssl.create_default_context(cafile=str(certs.ca))
    async with asyncio.timeout(HANG_S):
        with pytest.raises(InvalidStatus):  # TLS is up, and media_auth still applies
            async with connect(f"wss://127.0.0.1:{port}/", ssl=trust):
                pass
        parser = argparse_for_call()
        args = parser.parse_args(
            [f"wss://127.0.0.1:{port}/", "--auth", f"freeswitch:{PASSWORD}", "--ca", str(certs.ca),
             "--wait-quiet", "0.5", "--settle", "0.1", "--answer-timeout", "10", "--timeout", "30", "--json"]
        )  # fmt: skip
        code = await asyncio.to_thread(run_call_command, args)
        health = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=trust).read()
        )
    assert code == 0
    assert health == b"ok\n"
    (record,) = await final_records(robot)
    assert record["call"]["source"] == "simulator"


def argparse_for_call() -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    return parser
