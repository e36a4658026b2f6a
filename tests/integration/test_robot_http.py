"""Plain HTTP on a real robot's own port (127.0.0.1), next to its WebSocket calls: /metrics after
a call, /health, /ready (200 and 503), /live with and without a token, 404 and 405."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.typing import Subprotocol

from voiceplat.observability.metrics import MetricsSink
from voiceplat.robot import load_robot
from voiceplat.storage.live import LiveCalls
from voiceplat.storage.recorder import Recorder, Sink
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.storage.spooled_sink import SpooledSink
from voiceplat.telephony.ingress.audio_fork.codec import SUBPROTOCOL
from voiceplat.telephony.server import RobotServer

HANG_S = 60  # only a hang reaches this
OFFER = [Subprotocol(SUBPROTOCOL)]


class Reply:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}

    def json(self) -> Any:
        return json.loads(self.body)


async def get(port: int, path: str, method: str = "GET", **headers: str) -> Reply:
    """One request on its own connection; the robot closes it after answering."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method != "GET":
        lines.append("Content-Length: 0")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    received = bytearray()
    async with asyncio.timeout(HANG_S):
        while data := await reader.read(65536):
            received += data
    writer.close()
    return Reply(bytes(received))


class DownStore(SpooledSink):
    """A store that is never reachable: its sink spools."""

    name = "downstore"

    async def connect(self) -> None:
        raise ConnectionError("refused")


Started = tuple[RobotServer, str, Path, Recorder]


@pytest.fixture
async def http_robot(make_robot) -> AsyncIterator[Callable[..., Any]]:
    """Starts a robot as `voiceplat serve` does (LiveCalls and MetricsSink among its sinks)."""
    started: list[tuple[RobotServer, Recorder]] = []

    async def start(
        env: dict[str, str] | None = None, extra: Callable[[Path], list[Sink]] | None = None
    ) -> Started:
        name = f"http-{uuid.uuid4().hex[:8]}"  # metrics are process-wide: a name of its own
        directory = make_robot(name)
        robot = load_robot(directory)
        # As if from its .env. (Not written there: config.py takes every VOICEPLAT_* variable
        # but VOICEPLAT_MODELS_DIR for a config override, and web_token is no config key.)
        robot.env = {**robot.env, **(env or {})}
        live, metrics = LiveCalls(), MetricsSink.for_robot(robot)
        sinks = sinks_from_env(robot.env, robot.logs_dir, directory / "spool")
        sinks += extra(directory) if extra else []
        recorder = Recorder([*sinks, live, metrics])
        metrics.watch(recorder)
        await recorder.start()
        await robot.start()
        server = RobotServer(robot, recorder, live)
        await server.start("127.0.0.1", 0)
        started.append((server, recorder))
        return server, name, directory, recorder

    yield start
    for server, recorder in started:
        await server.shutdown(grace_s=5)
        await recorder.aclose()
        await server.robot.aclose()


async def first_audio(ws: Any) -> bytes:
    while True:
        message = await ws.recv()
        if isinstance(message, bytes):
            return message


def samples(text: str, name: str, robot: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels.get("robot") == robot
    ]


async def test_metrics_health_and_live_around_a_websocket_call(http_robot) -> None:
    server, robot, _, recorder = await http_robot()
    port = server.port
    assert server.live is not None
    events = server.live.subscribe()
    assert (await get(port, "/health")).body == b"ok\n"
    async with connect(f"ws://127.0.0.1:{port}/", subprotocols=OFFER) as ws:
        await ws.send(json.dumps({"callId": "live-1", "caller": "+79001234567"}))
        async with asyncio.timeout(HANG_S):
            await first_audio(ws)  # the greeting: the call runs on the same port
        live = await get(port, "/live")
        assert live.status == 200 and live.headers["content-type"] == "application/json"
        (call,) = live.json()
        assert (call["call"]["call_id"], call["call"]["caller"]) == ("live-1", "+79001234567")
        during = (await get(port, "/metrics")).body.decode()
        assert samples(during, "voiceplat_calls_active", robot) == [
            ({"robot": robot, "source": "freeswitch"}, 1.0)
        ]
    async with asyncio.timeout(HANG_S):
        async for event in events:
            if event.type == "call_ended":
                break
    assert (await get(port, "/live")).json() == []  # a finished call leaves
    await recorder.aclose()  # every sink has handled every item (the metrics' sink too)
    reply = await get(port, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    assert samples(text, "voiceplat_calls_total", robot) == [
        ({"robot": robot, "source": "freeswitch", "end_reason": "caller_hangup"}, 1.0)
    ]
    assert samples(text, "voiceplat_calls_active", robot)[0][1] == 0
    assert samples(text, "voiceplat_turns_total", robot)  # the greeting's robot turn
    assert samples(text, "voiceplat_recorder_dropped_total", robot) == [({"robot": robot}, 0.0)]


async def test_ready_while_a_store_spools_and_not_when_its_spool_is_broken(
    http_robot, tmp_path: Path
) -> None:
    spooling, *_ = await http_robot(extra=lambda d: [DownStore(d / "spool")])
    reply = await get(spooling.port, "/ready")
    assert reply.status == 200
    assert reply.json() == {
        "ready": True,
        "reasons": [],
        "stores": {"downstore": "spooling (0 items)"},
    }

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    broken, *_ = await http_robot(extra=lambda d: [DownStore(blocker / "spool")])
    reply = await get(broken.port, "/ready")
    assert reply.status == 503
    (reason,) = reply.json()["reasons"]
    assert reason.startswith("store downstore: its spool") and "could not be opened" in reason


async def test_live_wants_the_token_when_one_is_set(http_robot) -> None:
    server, *_ = await http_robot(env={"VOICEPLAT_WEB_TOKEN": "s3cret"})
    missing = await get(server.port, "/live")
    assert missing.status == 401 and "Bearer" in missing.headers["www-authenticate"]
    assert (await get(server.port, "/live", Authorization="Bearer wrong")).status == 401
    bearer = await get(server.port, "/live", Authorization="Bearer s3cret")
    assert (bearer.status, bearer.json()) == (200, [])
    basic = base64.b64encode(b"any:s3cret").decode()
    assert (await get(server.port, "/live", Authorization=f"Basic {basic}")).status == 200
    assert (await get(server.port, "/metrics")).status == 200  # metrics hold no personal data


async def test_live_without_a_token_answers_this_machine_only(http_robot) -> None:
    server, *_ = await http_robot()
    assert (await get(server.port, "/live")).status == 200  # from 127.0.0.1
    request = Request("/live", Headers([("Host", "robot")]))
    assert server.http(request, "10.99.0.2").status_code == 403
    assert server.http(request, "::ffff:127.0.0.1").status_code == 200
    assert server.http(request, None).status_code == 403


async def test_unknown_paths_404_other_methods_405_and_the_ws_path_426(http_robot) -> None:
    server, _, directory, _ = await http_robot()
    missing = await get(server.port, "/nope?x=1")
    assert (missing.status, missing.body) == (404, b"Not found: /nope\n")
    assert (await get(server.port, "/metrics", method="POST")).status == 405
    assert (await get(server.port, "/")).status == 426
    assert list((directory / "logs").glob("*.json")) == []  # no call was started
