"""The web service's core over HTTP: robots, live calls, access control, operations.

In process through httpx's ASGI transport (no socket), except where a socket is the point: the
live event stream (the ASGI transport buffers whole responses). `voiceplat web` as a process:
test_web_cli.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.storage_servers import free_port
from voiceplat.storage.jsonfile import JsonFileSink
from voiceplat.storage.live import LiveCalls
from voiceplat.storage.records import (
    CallFinished,
    CallOpened,
    CallRecord,
    CallSnapshot,
    TurnRecord,
    TurnWritten,
    utcnow,
)
from voiceplat.web.app import create_app
from voiceplat.web.calls.store import call_store_for
from voiceplat.web.cli import load_robots, start_web
from voiceplat.web.context import WebContext
from voiceplat.web.live_source import InProcessLive
from voiceplat.web.settings import WebSettings

TOKEN = "test-token-0123456789abcdef"
HANG_S = 60.0
"""Only a hang reaches this."""
V2V = [(400.0, "caller_hangup"), (800.0, "caller_hangup"), (1200.0, "robot_goodbye")]


def finished_call(robot: str, n: int, v2v_ms: float, end_reason: str) -> CallSnapshot:
    started = utcnow() - timedelta(minutes=10 - n)
    call = CallRecord(
        call_id=f"{robot}-call-{n}",
        robot=robot,
        mode="pipeline",
        source="simulator",
        caller="+79160000000",
        started_at=started,
        answered_at=started,
        ended_at=started + timedelta(seconds=20),
        duration_sec=20.0,
        status="completed",
        end_reason=end_reason,
        turns=2,
    )
    turns = [
        TurnRecord(call_id=call.call_id, idx=0, role="user", text="Здравствуйте", asr_ms=150.0),
        TurnRecord(call_id=call.call_id, idx=1, role="robot", text="Добрый день", v2v_ms=v2v_ms),
    ]
    return CallSnapshot(call=call, turns=turns)


@pytest.fixture
async def robots(make_robot: Callable[..., Path]) -> dict[str, Any]:
    """Two copies of the echo robot; "alpha" has three finished calls in its JSON records."""
    alpha = make_robot("alpha", ws_port=free_port())
    make_robot("beta", mode="pipeline")
    sink = JsonFileSink(alpha / "logs")
    for n, (v2v, reason) in enumerate(V2V):
        await sink.write(finished_call("alpha", n, v2v, reason))
    return load_robots([alpha, alpha.parent / "beta"])


def make_app(
    robots: dict[str, Any], token: str | None = None, live: LiveCalls | None = None
) -> Any:
    live = live or LiveCalls()
    context = WebContext(
        settings=WebSettings(token=token),
        robots=robots,
        calls=call_store_for({}, robots),
        live=InProcessLive(live),
        in_process_live=live,
    )
    return create_app(context)


@pytest.fixture
async def client(robots: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(make_app(robots))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def test_api_robots_shows_each_robot_with_its_check_and_stats(
    client: httpx.AsyncClient, robots: dict[str, Any]
) -> None:
    response = await client.get("/api/robots")
    assert response.status_code == 200
    listed = response.json()["robots"]
    assert [robot["name"] for robot in listed] == ["alpha", "beta"]
    alpha = listed[0]
    assert alpha["mode"] == "pipeline"
    assert alpha["providers"] == {"asr": "fake", "llm": "fake", "tts": "fake"}
    assert (alpha["check_ok"], alpha["problems"]) == (True, [])
    assert alpha["ws_port"] == robots["alpha"].config.ws_port
    stats = alpha["stats"]
    assert stats["calls_today"] == 3 or utcnow().hour == 0  # written 8-10 min ago (UTC day)
    assert sorted(stats["v2v_ms"]) == [400.0, 800.0, 1200.0]
    assert stats["v2v_p50_ms"] == 800.0
    assert 800.0 < stats["v2v_p95_ms"] <= 1200.0
    assert stats["end_reasons"] == {"caller_hangup": 2, "robot_goodbye": 1}
    assert sum(b["count"] for b in alpha["v2v_histogram"]) == 3
    beta = listed[1]
    assert beta["stats"]["v2v_ms"] == [] and beta["v2v_histogram"] == []

    one = await client.get("/api/robots/alpha")
    assert one.status_code == 200 and one.json()["name"] == "alpha"


async def test_a_robot_whose_check_fails_shows_the_problem(
    make_robot: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    robot = make_robot("keyless", llm={"provider": "openai", "model": "gpt-4o-mini"})
    robots = load_robots([robot])
    transport = httpx.ASGITransport(make_app(robots))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        body = (await client.get("/api/robots/keyless")).json()
        page = await client.get("/robots")
    assert body["check_ok"] is False
    assert any("OPENAI_API_KEY" in line for line in body["problems"]), body["problems"]
    assert "OPENAI_API_KEY" in page.text and "check: 1 problem" in page.text


async def test_unknown_robot_is_a_404_naming_the_known_ones(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/robots/gamma")
    assert response.status_code == 404
    assert response.json() == {"detail": "no robot named 'gamma' (known: alpha, beta)"}


async def test_bad_query_is_a_422_with_a_readable_detail(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/robots", params={"last_calls": "lots"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("query.last_calls: Input should be a valid integer")
    assert "'lots'" in detail


async def test_robots_page_draws_the_histogram_with_the_vendored_chart_js(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/robots")
    assert page.status_code == 200
    assert 'data-robot="alpha"' in page.text and "check OK" in page.text
    assert "caller_hangup" in page.text and "800 ms / " in page.text
    assert 'src="http://127.0.0.1/static/vendor/chart.umd.min.js"' in page.text
    script = await client.get("/static/vendor/chart.umd.min.js")
    assert script.status_code == 200 and "window.Chart" in script.text


async def test_docs_and_openapi_work_offline(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/static/vendor/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert (await client.get("/static/vendor/swagger-ui-bundle.js")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    for path in ("/api/robots", "/api/robots/{name}", "/api/live", "/api/live/events", "/ready"):
        assert path in schema["paths"], path


async def test_health_ready_and_home(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"robots": ["alpha", "beta"], "call_store": "ok"}
    home = await client.get("/")
    assert (home.status_code, home.headers["location"]) == (307, "/calls")


async def test_metrics_parse_and_count_requests(client: httpx.AsyncClient) -> None:
    await client.get("/api/robots")
    response = await client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = families["voiceplat_web_requests"].samples
    assert any(
        s.labels == {"method": "GET", "route": "/api/robots", "status": "200"} and s.value >= 1
        for s in samples
    ), samples


async def test_token_is_asked_for_everywhere_but_health(robots: dict[str, Any]) -> None:
    transport = httpx.ASGITransport(make_app(robots, token=TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in ("/api/robots", "/robots", "/metrics", "/docs", "/api/calls/x/recording"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == 'Basic realm="voiceplat"'
            assert "VOICEPLAT_WEB_TOKEN" in refused.json()["detail"]
        wrong = await client.get("/api/robots", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        wrong_basic = await client.get("/api/robots", headers=basic("admin", "nope"))
        assert wrong_basic.status_code == 401
        bearer = await client.get("/api/robots", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200 and bearer.json()["robots"][0]["name"] == "alpha"
        page = await client.get("/robots", headers=basic("admin", TOKEN))
        assert page.status_code == 200 and 'data-robot="alpha"' in page.text
        assert (await client.get("/health")).status_code == 200


async def test_cross_origin_post_is_refused(client: httpx.AsyncClient) -> None:
    evil = await client.post("/api/robots", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert evil.json()["detail"].startswith("cross-site request refused: Origin http://evil")
    # The same origin reaches the app (which has no POST there).
    same = await client.post("/api/robots", headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 405


async def test_without_a_token_only_loopback_host_names_are_answered(
    client: httpx.AsyncClient,
) -> None:
    # DNS rebinding: the attacker's name points at 127.0.0.1, the browser sends it as Host.
    rebound = await client.get("/api/calls", headers={"Host": "evil.example:8000"})
    assert rebound.status_code == 403
    assert rebound.json()["detail"] == (
        "Host 'evil.example' refused: without VOICEPLAT_WEB_TOKEN this service answers only "
        "as 127.0.0.1 or localhost"
    )
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert (await client.get("/api/robots", headers={"Host": host})).status_code == 200
    assert (await client.get("/health", headers={"Host": "evil.example"})).status_code == 200


async def test_live_events_stream_calls_from_the_in_process_live_calls(
    robots: dict[str, Any],
) -> None:
    live = LiveCalls()
    web = await start_web(robots, {}, "127.0.0.1", 0, in_process_live=live)
    call = CallRecord(call_id="live-1", robot="alpha", mode="pipeline", source="web")
    turn = TurnRecord(call_id="live-1", idx=0, role="user", text="Алло", asr_ms=120.0)
    seen: list[dict[str, Any]] = []
    try:
        async with (
            asyncio.timeout(HANG_S),
            httpx.AsyncClient(base_url=web.url) as client,
            client.stream("GET", "/api/live/events") as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"  # subscribed: events from here on arrive
            live.apply(CallOpened(call))
            live.apply(TurnWritten(call, turn))
            now = (await client.get("/api/live")).json()
            async for line in lines:
                if line.startswith("data: "):
                    seen.append(json.loads(line.removeprefix("data: ")))
                if len(seen) == 2:
                    break
            live.apply(
                CallFinished(CallSnapshot(call=call.model_copy(update={"status": "completed"})))
            )
            after = (await client.get("/api/live")).json()
    finally:
        await web.stop()
    assert now["source"] == "in-process"
    assert [(c["call"]["call_id"], [t["text"] for t in c["turns"]]) for c in now["calls"]] == [
        ("live-1", ["Алло"])
    ]
    assert [(e["type"], e["call_id"], e["robot"]) for e in seen] == [
        ("call_started", "live-1", "alpha"),
        ("turn", "live-1", "alpha"),
    ]
    assert seen[1]["turn"]["text"] == "Алло"
    assert after["calls"] == []


async def test_talk_page_carries_the_robots_media_token_and_tls(
    make_robot: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Browsers cannot send Basic on a WebSocket: the talk page gets media_auth's token."""
    monkeypatch.setenv("TALK_MEDIA_TOKEN", "s3cret-media-token-123")
    guarded = make_robot(
        "guarded",
        media_auth={"token_env": "TALK_MEDIA_TOKEN"},
        tls={"cert_file": "robot.pem", "key_file": "robot.key"},  # the page only needs to know
        ws_port=free_port(),
    )
    open_robot = make_robot("open", ws_port=free_port())
    robots = load_robots([guarded, open_robot])
    transport = httpx.ASGITransport(make_app(robots))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        page = (await client.get("/talk/guarded")).text
        plain = (await client.get("/talk/open")).text
    assert 'data-ws-token="s3cret-media-token-123"' in page
    assert 'data-ws-tls="true"' in page
    assert 'data-ws-token=""' in plain
    assert 'data-ws-tls=""' in plain
