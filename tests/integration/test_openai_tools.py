"""`openai` LLM function calling (`respond` with tools) against the local fake OpenAI server.

The server streams tool calls the way OpenAI does: the first fragment of a call carries its index,
id, type and name with empty arguments; the arguments' JSON follows in pieces under the same index.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.test_openai_llm import (
    FakeOpenAIServer,
    chunk,
    make_llm,
    stream,
    tokens_then_done,
)
from voiceplat.providers.base import Message, ProviderError, ToolCall, ToolSpec

BOOK = ToolSpec(
    "book_visit",
    "Записать пациента на приём.",
    {
        "type": "object",
        "properties": {"doctor": {"type": "string"}, "date": {"type": "string"}},
        "required": ["doctor", "date"],
    },
)
TRANSFER = ToolSpec("transfer", "Соединить с администратором.")
ASK = [Message("system", "Ты робот клиники."), Message("user", "Запишите к терапевту на завтра")]


def call_fragment(index: int, *, id: str | None = None, name: str | None = None, args: str = ""):
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id is not None:
        fragment.update(id=id, type="function")
        fragment["function"]["name"] = name
    event = chunk()
    event["choices"][0]["delta"]["tool_calls"] = [fragment]
    return event


def tool_call_stream(*fragments: dict, text: tuple[str, ...] = ()) -> list[Any]:
    return [
        chunk(role="assistant", content=None),
        *(chunk(content=piece) for piece in text),
        *fragments,
        chunk(finish="tool_calls"),
        "[DONE]",
    ]


async def respond(
    server: FakeOpenAIServer, messages: list[Message], tools: list[ToolSpec] | None
) -> list[str | ToolCall]:
    llm = make_llm(server.base_url)
    try:
        return [piece async for piece in llm.respond(messages, tools)]
    finally:
        await llm.aclose()


async def test_tools_are_sent_and_a_streamed_call_is_assembled() -> None:
    events = tool_call_stream(
        call_fragment(0, id="call_abc", name="book_visit"),
        call_fragment(0, args='{"doctor": "тера'),
        call_fragment(0, args='певт", "date": '),
        call_fragment(0, args='"завтра"}'),
        text=("Минутку, ", "записываю."),
    )
    server = FakeOpenAIServer(stream(events))
    async with server:
        got = await respond(server, ASK, [BOOK, TRANSFER])

    assert got == [
        "Минутку, ",
        "записываю.",
        ToolCall("book_visit", {"doctor": "терапевт", "date": "завтра"}, id="call_abc"),
    ]
    (request,) = server.requests
    assert request.json()["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "book_visit",
                "description": "Записать пациента на приём.",
                "parameters": BOOK.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "transfer",
                "description": "Соединить с администратором.",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]


async def test_calls_are_kept_apart_by_index_and_the_first_is_yielded() -> None:
    events = tool_call_stream(
        call_fragment(0, id="call_1", name="transfer"),
        call_fragment(1, id="call_2", name="book_visit"),
        call_fragment(1, args='{"doctor": "хирург", "date": "пятница"}'),
        call_fragment(0, args="{}"),
    )
    server = FakeOpenAIServer(stream(events))
    async with server:
        got = await respond(server, ASK, [BOOK, TRANSFER])

    assert got == [ToolCall("transfer", {}, id="call_1")]


async def test_a_call_with_no_arguments_text_has_empty_arguments() -> None:
    server = FakeOpenAIServer(stream(tool_call_stream(call_fragment(0, id="c", name="transfer"))))
    async with server:
        assert await respond(server, ASK, [TRANSFER]) == [ToolCall("transfer", {}, id="c")]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"doctor": "терапевт"', r"tool call 'book_visit': arguments are not JSON: '\{\"doctor"),
        ('["терапевт"]', "tool call 'book_visit': arguments are not an object"),
    ],
)
async def test_bad_arguments_are_a_provider_error(arguments: str, message: str) -> None:
    events = tool_call_stream(call_fragment(0, id="c", name="book_visit", args=arguments))
    server = FakeOpenAIServer(stream(events))
    async with server:
        with pytest.raises(ProviderError, match=message):
            await respond(server, ASK, [BOOK])


async def test_tool_messages_go_back_in_the_api_shape() -> None:
    call = ToolCall("book_visit", {"doctor": "терапевт", "date": "завтра"}, id="call_abc")
    history = [
        *ASK,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", '{"ok": true, "time": "10:00"}', tool_call_id="call_abc"),
    ]
    server = FakeOpenAIServer(stream(tokens_then_done("Записала ", "на 10:00.")))
    async with server:
        got = await respond(server, history, [BOOK])

    assert got == ["Записала ", "на 10:00."]
    messages = server.requests[0].json()["messages"]
    assert messages[2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {
                        "name": "book_visit",
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
            ],
        },
        {"role": "tool", "content": '{"ok": true, "time": "10:00"}', "tool_call_id": "call_abc"},
    ]


async def test_without_tools_the_request_has_none_and_text_streams() -> None:
    server = FakeOpenAIServer(stream(tokens_then_done("Да.")))
    async with server:
        assert await respond(server, ASK, None) == ["Да."]
    assert "tools" not in server.requests[0].json()
