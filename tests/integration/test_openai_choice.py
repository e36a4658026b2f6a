"""`openai` LLM `choose` (llm_script) against the local fake OpenAI-compatible server.

The choice is asked as structured output: a strict JSON-schema response format whose only key `id`
is an enum of the options; a server that ignores it answers in text, where the id is looked for.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_openai_llm import (
    MESSAGES,
    FakeOpenAIServer,
    error,
    make_llm,
    stream,
    tokens_then_done,
)
from voiceplat.providers.base import ProviderError

OPTIONS = ["hours", "prices", "fallback"]


async def choose(server: FakeOpenAIServer, **settings: Any) -> str:
    llm = make_llm(server.base_url, **settings)
    try:
        return await llm.choose(MESSAGES, OPTIONS)
    finally:
        await llm.aclose()


async def test_request_asks_for_a_json_schema_enum_and_the_answer_is_parsed() -> None:
    server = FakeOpenAIServer(stream(tokens_then_done('{"', 'id": "pri', 'ces"', "}")))
    async with server:
        assert await choose(server, extra_body={"top_p": 0.9}) == "prices"

    (request,) = server.requests
    body = request.json()
    assert body["messages"][-1] == {"role": "user", "content": "Привет!"}
    assert (body["stream"], body["temperature"], body["top_p"]) == (True, 0, 0.9)
    assert body["max_tokens"] == len("fallback") + 32
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "choice",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"id": {"type": "string", "enum": OPTIONS}},
                "required": ["id"],
                "additionalProperties": False,
            },
        },
    }


async def test_a_server_that_ignores_the_format_answers_in_text() -> None:
    server = FakeOpenAIServer(stream(tokens_then_done("Track: ", "hours")))
    async with server:
        assert await choose(server) == "hours"


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (['{"id": "weather"}'], 'chose "weather", not one of: hours, prices, fallback'),
        (["I cannot help with that"], "names none of the options"),
    ],
)
async def test_an_answer_naming_no_option_is_a_provider_error(
    tokens: list[str], message: str
) -> None:
    server = FakeOpenAIServer(stream(tokens_then_done(*tokens)))
    async with server:
        with pytest.raises(ProviderError, match=message):
            await choose(server)


async def test_server_errors_are_retried_then_reported() -> None:
    server = FakeOpenAIServer(
        error(503, {"error": {"message": "busy"}}),
        stream(tokens_then_done('{"id": "fallback"}')),
    )
    async with server:
        assert await choose(server, retries=1) == "fallback"

    server = FakeOpenAIServer(error(401, {"error": {"message": "bad key"}}))
    async with server:
        with pytest.raises(ProviderError, match="401"):
            await choose(server)


async def test_the_choice_limit_uses_the_configured_token_limit_name() -> None:
    server = FakeOpenAIServer(stream(tokens_then_done('{"id": "hours"}')))
    async with server:
        assert await choose(server, max_tokens_field="max_completion_tokens") == "hours"
    body = server.requests[0].json()
    assert body["max_completion_tokens"] == len("fallback") + 32
    assert "max_tokens" not in body
