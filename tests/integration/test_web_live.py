"""Live calls for the web service from robots in other processes: through Redis (the Redis sink's
hashes and `call_events`), or by polling each robot's `GET /live`."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.storage_servers import RedisServer
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import CallRecord, TurnRecord
from voiceplat.storage.redis import RedisSink
from voiceplat.web.cli import load_robots
from voiceplat.web.live_source import PollingLive, RedisLive, diff_events

TOKEN = "test-token-0123456789abcdef"
HANG_S = 60.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def recorder(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Recorder]:
    recorder = Recorder([RedisSink(redis_server.url(3), tmp_path / "spool")])
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.aclose()


async def next_event(events: AsyncIterator[dict[str, Any]], kind: str) -> dict[str, Any]:
    async with asyncio.timeout(HANG_S):
        async for event in events:
            if event["type"] == kind:
                return event
    raise AssertionError(f"the events ended before a {kind!r} one")


async def test_redis_live_shows_calls_in_progress_and_their_events(
    redis_server: RedisServer, recorder: Recorder
) -> None:
    source = RedisLive(redis_server.url(3))
    events = await source.subscribe()
    try:
        call = recorder.open_call(
            CallRecord(call_id="r-1", robot="alpha", mode="pipeline", caller="+7916")
        )
        started = await next_event(events, "call_started")
        call.add_turn(TurnRecord(call_id="r-1", idx=0, role="user", text="Алло"))
        call.add_turn(TurnRecord(call_id="r-1", idx=1, role="robot", text="Слушаю", v2v_ms=640.0))
        first_turn = await next_event(events, "turn")
        robot_turn = await next_event(events, "turn")
        live = await source.calls()
        call.finish("completed", "caller_hangup")
        ended = await next_event(events, "call_ended")
        after = await source.calls()
    finally:
        await source.aclose()
    assert (started["call_id"], started["robot"]) == ("r-1", "alpha")
    assert first_turn["turn"]["text"] == "Алло"
    assert (robot_turn["turn"]["role"], robot_turn["turn"]["v2v_ms"]) == ("robot", 640.0)
    assert [(c["call"]["call_id"], c["call"]["status"], c["call"]["caller"]) for c in live] == [
        ("r-1", "in_progress", "+7916")
    ]
    assert [t["text"] for t in live[0]["turns"]] == ["Алло", "Слушаю"]
    assert (ended["call"]["status"], ended["call"]["end_reason"]) == ("completed", "caller_hangup")
    assert after == []  # the hash says completed: no longer live
    assert source.errors == {}


async def test_redis_down_is_reported_not_raised() -> None:
    from tests.storage_servers import free_port

    source = RedisLive(f"redis://127.0.0.1:{free_port()}/0", timeout_s=2.0)
    try:
        assert await source.calls() == []
    finally:
        await source.aclose()
    assert "ConnectionError" in source.errors["redis"]


async def test_polling_live_reads_each_robots_port_and_reports_a_down_one(
    make_robot: Callable[..., Path],
) -> None:
    from tests.storage_servers import free_port

    alpha_port = free_port()
    robots = load_robots([make_robot("alpha", ws_port=alpha_port), make_robot("beta")])
    call = CallRecord(call_id="p-1", robot="alpha", mode="pipeline").model_dump(mode="json")
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.url.port == alpha_port:  # GET /live answers a list of LiveCall
            return httpx.Response(200, json=[{"call": call, "turns": []}])
        raise httpx.ConnectError("connection refused")

    source = PollingLive(robots, token=TOKEN, transport=httpx.MockTransport(answer))
    try:
        calls = await source.calls()
    finally:
        await source.aclose()
    assert [c["call"]["call_id"] for c in calls] == ["p-1"]
    assert {r.url.path for r in asked} == {"/live"}
    assert {r.url.host for r in asked} == {"127.0.0.1"}  # ws_host 0.0.0.0: reached on loopback
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in asked)
    assert list(source.errors) == ["beta"]
    assert "connection refused" in source.errors["beta"]


def test_polling_turns_snapshots_into_events() -> None:
    def live(status: str, *texts: str) -> dict[str, Any]:
        turns = [{"idx": i, "role": "user", "text": t} for i, t in enumerate(texts)]
        return {"call": {"call_id": "c", "robot": "a", "status": status}, "turns": turns}

    started = diff_events({}, {"c": live("in_progress")})
    assert [e["type"] for e in started] == ["call_started"]
    spoke = diff_events({"c": live("in_progress")}, {"c": live("in_progress", "Алло")})
    assert [(e["type"], e["turn"]["text"]) for e in spoke] == [("turn", "Алло")]
    ended = diff_events({"c": live("in_progress", "Алло")}, {})
    assert [(e["type"], e["call_id"], e["call"]["status"]) for e in ended] == [
        ("call_ended", "c", "ended")
    ]
