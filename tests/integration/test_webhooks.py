"""Webhook tools against a real HTTP server on 127.0.0.1: what it receives, and each failure."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.fake_http import FakeServer, body, drop, error, hang
from voiceplat.providers.base import ToolCall
from voiceplat.tools import ToolBox, ToolResult, parse_tools

SCHEMA = {
    "type": "object",
    "properties": {
        "doctor": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
    },
    "required": ["doctor", "date", "time"],
}
ARGS = {"doctor": "терапевт", "date": "2025-12-03", "time": "15:00"}
ENV = {"CRM_TOKEN": "Bearer s3cret", "CRM_SITE": "north"}


def tool(server: FakeServer, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "book_visit",
        "description": "Записать на приём",
        "url": f"{server.url}/api/visits?source=robot",
        "parameters": SCHEMA,
        "headers": {"X-Robot": "clinic"},
        "headers_env": {"Authorization": "CRM_TOKEN", "X-Site": "CRM_SITE"},
        "outcome": "booked",
        **overrides,
    }


async def call(entry: dict[str, Any], arguments: dict[str, Any]) -> ToolResult:
    box = ToolBox(parse_tools([entry]), ENV)
    try:
        return await box.run(ToolCall(entry["name"], arguments, id="c1"))
    finally:
        await box.aclose()


async def test_post_request_shape_and_json_answer() -> None:
    async with FakeServer(body(200, {"visit_id": 41, "time": "15:00"})) as server:
        result = await call(tool(server), ARGS)
    assert (result.ok, result.error, result.outcome) == (True, None, "booked")
    assert result.result == {"visit_id": 41, "time": "15:00"}
    (request,) = server.requests
    assert (request.method, request.path, request.query) == (
        "POST",
        "/api/visits",
        {"source": "robot"},
    )
    assert request.headers["content-type"] == "application/json"
    assert request.json() == ARGS
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["x-site"] == "north"
    assert request.headers["x-robot"] == "clinic"


async def test_get_sends_query_parameters() -> None:
    async with FakeServer(body(200, [{"date": "2025-12-03", "free": ["10:00"]}])) as server:
        result = await call(tool(server, method="GET", url=f"{server.url}/slots"), ARGS)
    assert result.ok and result.result == [{"date": "2025-12-03", "free": ["10:00"]}]
    (request,) = server.requests
    assert (request.method, request.path, request.body) == ("GET", "/slots", b"")
    assert request.query == ARGS


async def test_bad_arguments_never_reach_the_server() -> None:
    async with FakeServer(body(200, {"visit_id": 1})) as server:
        bad = await call(tool(server), {**ARGS, "time": "в три"})
        assert server.requests == []
        good = await call(tool(server), ARGS)
    assert not bad.ok and bad.error is not None
    assert bad.error.startswith("bad arguments: time: 'в три' does not match")
    assert good.ok and len(server.requests) == 1


async def test_a_server_that_never_answers_is_bounded_by_timeout_s() -> None:
    async with FakeServer(hang()) as server:
        result = await call(tool(server, timeout_s=0.3), ARGS)
    assert (result.ok, result.error, result.outcome) == (False, "no answer within 0.3 s", None)
    assert len(server.requests) == 1  # it hung after the request arrived


async def test_an_error_status_is_a_failed_call() -> None:
    async with FakeServer(
        error(500, "database is down"), error(422, {"detail": "нет слота"})
    ) as server:
        text = await call(tool(server), ARGS)
        data = await call(tool(server), ARGS)
    assert (text.ok, text.error) == (False, "HTTP 500 Internal Server Error: database is down")
    assert (data.ok, data.error, data.result) == (False, "HTTP 422 Status", {"detail": "нет слота"})
    assert json.loads(data.for_llm())["result"] == {"detail": "нет слота"}


async def test_an_answer_that_is_not_json_is_a_failed_call() -> None:
    async with FakeServer(body(200, "Записано!", "text/plain; charset=utf-8")) as server:
        result = await call(tool(server), ARGS)
    assert (result.ok, result.outcome) == (False, None)
    assert result.error == "the answer is not JSON (text/plain; charset=utf-8)"
    assert result.result == "Записано!"


async def test_a_dropped_connection_is_a_failed_call() -> None:
    async with FakeServer(drop()) as server:
        result = await call(tool(server), ARGS)
    assert not result.ok and result.error is not None
    assert result.error.startswith("the request failed: RemoteProtocolError")
