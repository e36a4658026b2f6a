"""ToolBox.run: what reaches the webhook, and every failure as a ToolResult (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from voiceplat.providers.base import ToolCall
from voiceplat.tools import ToolBox, parse_tools

BOOK: dict[str, Any] = {
    "name": "book_visit",
    "description": "Записать на приём",
    "url": "https://crm.example/visits?source=robot",
    "headers": {"X-Site": "clinic"},
    "headers_env": {"Authorization": "CRM_TOKEN"},
    "outcome": "booked",
    "parameters": {
        "type": "object",
        "properties": {
            "doctor": {"type": "string", "enum": ["терапевт", "хирург"]},
            "date": {"type": "string", "format": "date"},
            "slots": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["doctor", "date"],
    },
}
LOOKUP: dict[str, Any] = {
    "name": "lookup",
    "description": "Найти запись",
    "url": "http://crm.example/find",
    "method": "GET",
}
ENV = {"CRM_TOKEN": "Bearer s3cret"}


class Recorder:
    """A MockTransport whose handler answers what the test says, keeping every request."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, json={"id": 7}))
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def toolbox(
    recorder: Recorder, *tools: dict[str, Any], env: dict[str, str] = ENV, **kwargs: Any
) -> ToolBox:
    return ToolBox(parse_tools(list(tools) or [BOOK]), env, transport=recorder.transport, **kwargs)


async def run(box: ToolBox, name: str, arguments: Any) -> Any:
    try:
        return await box.run(ToolCall(name, arguments, id="call_1"))
    finally:
        await box.aclose()


GOOD_ARGS = {"doctor": "терапевт", "date": "2025-12-03", "slots": [10, 11]}


async def test_post_sends_the_arguments_as_json_with_the_configured_headers() -> None:
    recorder = Recorder()
    result = await run(toolbox(recorder), "book_visit", GOOD_ARGS)
    assert (result.ok, result.result, result.error, result.outcome) == (
        True,
        {"id": 7},
        None,
        "booked",
    )
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == "https://crm.example/visits?source=robot"
    assert json.loads(request.content) == GOOD_ARGS
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["x-site"] == "clinic"


async def test_get_sends_the_arguments_as_query_parameters() -> None:
    recorder = Recorder()
    arguments = {"phone": "+79161234567", "all": True, "ids": [1, 2], "filter": {"a": 1}, "x": None}
    result = await run(toolbox(recorder, LOOKUP), "lookup", arguments)
    assert result.ok
    (request,) = recorder.requests
    assert request.method == "GET" and request.content == b""
    assert request.url.params.multi_items() == [
        ("phone", "+79161234567"),
        ("all", "true"),
        ("ids", "1"),
        ("ids", "2"),
        ("filter", '{"a": 1}'),
    ]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"doctor": "терапевт"}, "'date' is a required property"),
        ({"doctor": "окулист", "date": "2025-12-03"}, "doctor: 'окулист' is not one of"),
        ({"doctor": "хирург", "date": "завтра"}, "date: 'завтра' is not a 'date'"),
        ({"doctor": "хирург", "date": "2025-12-03", "slots": [1, "2"]}, "slots[1]: '2' is not of"),
        (["терапевт"], "the arguments must be a JSON object"),
    ],
)
async def test_bad_arguments_never_reach_the_webhook(arguments: Any, named: str) -> None:
    recorder = Recorder()
    result = await run(toolbox(recorder), "book_visit", arguments)
    assert not result.ok and result.outcome is None
    assert named in (result.error or "")
    assert recorder.requests == []


async def test_an_unknown_tool_is_an_error_naming_the_tools() -> None:
    recorder = Recorder()
    result = await run(toolbox(recorder, BOOK, LOOKUP), "send_sms", {})
    assert not result.ok
    assert result.error == "unknown tool 'send_sms'; the tools are: book_visit, lookup"
    assert recorder.requests == []


async def test_builtins_make_no_request() -> None:
    recorder = Recorder()
    box = toolbox(recorder, {"builtin": "transfer"}, {"builtin": "end_call", "name": "bye"})
    transfer = await box.run(ToolCall("transfer", {"reason": "к врачу"}))
    bye = await run(box, "bye", {})
    assert (transfer.ok, transfer.builtin, transfer.result) == (
        True,
        "transfer",
        {"builtin": "transfer"},
    )
    assert transfer.arguments == {"reason": "к врачу"}
    assert (bye.ok, bye.builtin, bye.result) == (True, "end_call", {"builtin": "end_call"})
    assert recorder.requests == []


async def test_a_missing_env_variable_is_a_problem_and_an_error() -> None:
    recorder = Recorder()
    box = toolbox(recorder, env={})
    assert box.problems() == [
        "tools: book_visit: CRM_TOKEN (the Authorization header) is not set in "
        "robots/<robot>/.env or the root .env"
    ]
    result = await run(box, "book_visit", GOOD_ARGS)
    assert not result.ok and "CRM_TOKEN" in (result.error or "")
    assert recorder.requests == []


def test_a_secret_in_static_headers_is_a_problem() -> None:
    box = toolbox(Recorder(), {**LOOKUP, "headers": {"X-Api-Key": "k", "Accept": "x"}})
    (problem,) = box.problems()
    assert "headers.X-Api-Key looks like a secret" in problem and "headers_env" in problem
    assert toolbox(Recorder(), LOOKUP).problems() == []


async def test_an_error_status_keeps_the_json_body_for_the_llm() -> None:
    recorder = Recorder(lambda r: httpx.Response(409, json={"error": "время занято"}))
    result = await run(toolbox(recorder), "book_visit", GOOD_ARGS)
    assert (result.ok, result.error, result.outcome) == (False, "HTTP 409 Conflict", None)
    assert result.result == {"error": "время занято"}
    assert json.loads(result.for_llm()) == {
        "ok": False,
        "error": "HTTP 409 Conflict",
        "result": {"error": "время занято"},
    }


async def test_a_body_that_is_not_json_is_an_error_with_its_text_cut() -> None:
    page = "<html>" + "x" * 5000
    recorder = Recorder(
        lambda r: httpx.Response(200, text=page, headers={"content-type": "text/html"})
    )
    result = await run(toolbox(recorder), "book_visit", GOOD_ARGS)
    assert not result.ok and result.error == "the answer is not JSON (text/html)"
    assert result.result == page[:2000]


async def test_an_empty_success_is_ok_without_a_result() -> None:
    result = await run(toolbox(Recorder(lambda r: httpx.Response(204))), "book_visit", GOOD_ARGS)
    assert (result.ok, result.result, result.outcome) == (True, None, "booked")
    assert json.loads(result.for_llm()) == {"ok": True}


async def test_a_huge_answer_is_refused() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, content=b"[" + b"1," * 200_000 + b"1]"))
    result = await run(toolbox(recorder), "book_visit", GOOD_ARGS)
    assert not result.ok and result.error == "the answer is larger than 256 KiB"


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc

    return answer


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (
            httpx.ConnectError("Connection refused"),
            "the request failed: ConnectError: Connection refused",
        ),
        (httpx.ReadTimeout("timed out"), "no answer within 5 s"),
        (RuntimeError("bug"), "the request failed: RuntimeError: bug"),
    ],
)
async def test_transport_failures_are_errors_not_exceptions(exc: Exception, error: str) -> None:
    result = await run(toolbox(Recorder(_raise(exc))), "book_visit", GOOD_ARGS)
    assert (result.ok, result.error) == (False, error)


async def test_cancellation_goes_through() -> None:
    entered = asyncio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    box = ToolBox(parse_tools([BOOK]), ENV, transport=httpx.MockTransport(never))
    task = asyncio.create_task(box.run(ToolCall("book_visit", GOOD_ARGS)))
    await asyncio.wait_for(entered.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await box.aclose()


async def test_ms_comes_from_the_clock() -> None:
    ticks: Iterator[float] = iter([10.0, 10.25])
    box = toolbox(Recorder(), clock=lambda: next(ticks))
    result = await run(box, "book_visit", GOOD_ARGS)
    assert result.ms == 250.0


def test_specs_are_what_the_llm_is_offered_in_config_order() -> None:
    box = toolbox(Recorder(), LOOKUP, {"builtin": "transfer"}, BOOK)
    specs = box.specs()
    assert [spec.name for spec in specs] == ["lookup", "transfer", "book_visit"]
    assert specs[0].parameters == {"type": "object", "properties": {}}
    assert specs[2].parameters["required"] == ["doctor", "date"]
    assert "Соединить" in specs[1].description
