"""`openai` LLM: any OpenAI-compatible chat-completions endpoint, streamed over SSE.

Works with OpenAI, YandexGPT's OpenAI-compatible API (`base_url`
https://llm.api.cloud.yandex.net/v1, `model` gpt://<folder>/yandexgpt-lite/latest, the key in
`api_key_env`), Ollama, vLLM and the llama.cpp server. The API key is read from the robot's env
files under the name `api_key_env`; it never appears in config.json, and error messages never
contain it. `chat_body` and `chat_pieces` are shared with other OpenAI-like APIs (gigachat).

Timeouts: `timeout_s` bounds the wait for the first token (connect, retries and the model's
thinking included) and then every gap between chunks. Retries: connect failures and 5xx answers are
retried up to `retries` times with exponential backoff, but only before any token was yielded — a
half-spoken answer must not be repeated (providers/cloud_http).

The answer's length limit (`max_tokens` in config.json) is sent under the name the target reads
(`max_tokens_field`): OpenAI deprecated `max_tokens` for `max_completion_tokens` (its o-series
models reject the old name); vLLM and current llama.cpp servers read both, Ollama and older
llama.cpp builds only `max_tokens`, and ignore a name they do not know. So `auto` sends the new
name to api.openai.com and the old one everywhere else.

`choose` (llm_script) asks for structured output: `response_format` `json_schema` (strict) with one
property `id` whose `enum` is the options, temperature 0, so the model can only answer
`{"id": "<one of them>"}`. A server that ignores `response_format` (some Ollama or llama.cpp server
builds) answers in free text; the id is then looked for in that text (`match_option`).

`respond(messages, tools)` uses function calling: `tools` are sent as
`{"type": "function", "function": {name, description, parameters}}`; streamed
`delta.tool_calls` fragments are joined by their `index` (the id and name come once, the
arguments' JSON in pieces) and the first call is yielded when the stream ends, after any text.
Arguments that are not a JSON object are a ProviderError. Past calls go back as the assistant's
`tool_calls` (arguments as a JSON string, as the API takes them) and results as role `tool` with
their `tool_call_id`. Until a call is yielded nothing was, so `timeout_s` bounds the whole call.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from voiceplat.providers import cloud_http
from voiceplat.providers.base import (
    LLM,
    ROBOT_ENV_PLACEHOLDER,
    LLMSettings,
    Message,
    ProviderError,
    ToolCall,
    ToolSpec,
    match_option,
    register,
)
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.cloud_http.sse import iter_events
from voiceplat.providers.llm.llama_prompt import tool_dicts

DONE = "[DONE]"
OPENAI_HOST = "api.openai.com"
TokenLimitField = Literal["max_completion_tokens", "max_tokens"]
error_message = cloud_http.error_message  # kept importable from here


class OpenAILLMSettings(LLMSettings, cloud_http.HttpOptions):
    """Settings of the `openai` LLM (any OpenAI-compatible /chat/completions endpoint)."""

    base_url: str = Field(
        "https://api.openai.com/v1", description="API root; /chat/completions is appended."
    )
    model: str = Field(description="Model name, e.g. gpt-4o-mini, llama3.1:8b.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="NAME of the env variable (robot .env or .env) with the key."
    )
    timeout_s: float = Field(
        20.0, gt=0, description="Wait for the first token, then for each following chunk."
    )
    extra_headers: dict[str, str] = Field(
        default_factory=dict, description="Added to every request (e.g. a project or folder id)."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Merged into the request JSON (e.g. top_p, stop)."
    )
    max_tokens_field: Literal["auto", "max_completion_tokens", "max_tokens"] = Field(
        "auto",
        description="The request key that carries `max_tokens`: auto (max_completion_tokens for "
        "api.openai.com, max_tokens for every other server), or either name.",
    )


def token_limit_field(settings: OpenAILLMSettings) -> TokenLimitField:
    """The name under which this target reads the answer's length limit."""
    if settings.max_tokens_field != "auto":
        return settings.max_tokens_field
    host = (urlsplit(settings.base_url).hostname or "").lower()
    return "max_completion_tokens" if host == OPENAI_HOST else "max_tokens"


def is_local_url(url: str) -> bool:
    """Loopback or private-network servers (Ollama, vLLM, llama.cpp) usually need no key."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def chat_body(
    model: str,
    messages: list[Message],
    settings: LLMSettings,
    extra: Mapping[str, Any],
    *,
    limit_field: TokenLimitField = "max_tokens",
) -> dict[str, Any]:
    """An OpenAI-style streaming chat-completions request body."""
    body: dict[str, Any] = {
        "model": model,
        "messages": api_messages(messages),
        "stream": True,
        "temperature": settings.temperature,
        limit_field: settings.max_tokens,
    }
    body.update(extra)
    return body


def api_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages in the chat-completions shape, tool calls and tool results included."""
    result: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            item["content"] = m.content or None  # the API's "no text, only calls"
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
                for call in m.tool_calls
            ]
        if m.tool_call_id is not None:
            item["tool_call_id"] = m.tool_call_id
        result.append(item)
    return result


async def chat_pieces(
    lines: AsyncIterable[str], fail: Callable[[str], ProviderError]
) -> AsyncIterator[str]:
    """Non-empty `choices[0].delta.content` texts of an OpenAI-style SSE stream, until [DONE]."""
    async for piece in chat_stream(lines, fail):
        if isinstance(piece, str):
            yield piece


class _CallParts:
    """One tool call as its stream fragments arrive."""

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []

    def add(self, fragment: dict[str, Any]) -> None:
        self.id = self.id or str(fragment.get("id") or "")
        function = fragment.get("function") or {}
        self.name = self.name or str(function.get("name") or "")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        if arguments:
            self.arguments.append(str(arguments))

    def call(self, fail: Callable[[str], ProviderError]) -> ToolCall:
        text = "".join(self.arguments).strip()
        if not self.name:
            raise fail("a tool call came without a function name")
        try:
            arguments = json.loads(text) if text else {}
        except ValueError:
            raise fail(f"tool call {self.name!r}: arguments are not JSON: {text[:200]!r}") from None
        if not isinstance(arguments, dict):
            raise fail(f"tool call {self.name!r}: arguments are not an object: {text[:200]!r}")
        return ToolCall(self.name, arguments, id=self.id or f"call_{secrets.token_hex(6)}")


async def chat_stream(
    lines: AsyncIterable[str], fail: Callable[[str], ProviderError]
) -> AsyncIterator[str | ToolCall]:
    """The text pieces of an OpenAI-style SSE stream, then the first tool call it made (its
    `delta.tool_calls` fragments joined by index), until [DONE]."""
    finished = False
    calls: dict[int, _CallParts] = {}
    async for event in iter_events(lines):
        if event.data.strip() == DONE:
            finished = True
            break
        try:
            chunk = json.loads(event.data)
        except ValueError as exc:
            raise fail(f"bad stream data {event.data[:100]!r}") from exc
        # Some servers send `"error": null` in every chunk: only a real error object counts.
        if event.event == "error" or (isinstance(chunk, dict) and chunk.get("error")):
            raise fail(f"error in stream: {cloud_http.message_of(chunk) or event.data[:200]}")
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices:
            continue  # usage-only or keep-alive chunks
        choice = choices[0]
        delta = choice.get("delta") or {}
        if content := delta.get("content"):
            yield content
        for fragment in delta.get("tool_calls") or []:
            if isinstance(fragment, dict):
                calls.setdefault(int(fragment.get("index") or 0), _CallParts()).add(fragment)
        if choice.get("finish_reason"):
            finished = True
    if not finished:
        raise fail("stream ended before the answer was complete (no [DONE])")
    if calls:
        yield calls[min(calls)].call(fail)  # one call a turn: the caller asks again after it


def choice_format(options: list[str]) -> dict[str, Any]:
    """A strict JSON-schema response format: an object whose only key `id` is one of `options`."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "choice",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"id": {"type": "string", "enum": list(options)}},
                "required": ["id"],
                "additionalProperties": False,
            },
        },
    }


def format_id(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:80]


@register("llm", "openai")
class OpenAILLM(HttpProvider, LLM):
    Settings = OpenAILLMSettings
    settings: OpenAILLMSettings

    @property
    def _api_key(self) -> str:
        return self.env.get(self.settings.api_key_env, "").strip()

    @property
    def url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/chat/completions"

    def problems(self) -> list[str]:
        found = cloud_http.options_problems(self.settings, self.env)
        if not self._api_key and not is_local_url(self.settings.base_url):
            found.append(
                f"{self.settings.api_key_env} is not set in {ROBOT_ENV_PLACEHOLDER} or .env"
            )
        return found

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", **self.settings.extra_headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _secrets(self) -> list[str]:
        return [self._api_key]  # masked even if a server echoed it

    def _error_prefix(self) -> str:
        return f"LLM {self.settings.model!r} at {self.url}"

    def _body(self, messages: list[Message]) -> dict[str, Any]:
        settings = self.settings
        return chat_body(
            settings.model,
            messages,
            settings,
            settings.extra_body,
            limit_field=token_limit_field(settings),
        )

    supports_tools = True

    async def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        async for piece in self._pieces(self._body(messages)):
            if isinstance(piece, str):
                yield piece

    async def respond(
        self, messages: list[Message], tools: list[ToolSpec] | None = None
    ) -> AsyncIterator[str | ToolCall]:
        body = self._body(messages)
        if tools:
            body["tools"] = tool_dicts(tools)
        async for piece in self._pieces(body):
            yield piece

    async def choose(self, messages: list[Message], options: list[str]) -> str:
        body = self._body(messages)
        body.update(temperature=0, response_format=choice_format(options))
        body[token_limit_field(self.settings)] = max(len(option) for option in options) + 32
        answer = "".join([piece async for piece in self._pieces(body) if isinstance(piece, str)])
        try:
            chosen = json.loads(answer)["id"]
        except (ValueError, TypeError, KeyError):
            return match_option(answer, options)  # a server that ignored response_format
        if chosen not in options:
            raise self._error(f"chose {format_id(chosen)}, not one of: {', '.join(options)}")
        return chosen

    async def _pieces(self, body: dict[str, Any]) -> AsyncIterator[str | ToolCall]:
        pieces = self._retrying_stream(lambda: self._attempt(body))
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                yield piece

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[str | ToolCall, None]:
        client = self._http.get()
        request = client.build_request("POST", self.url, json=body, headers=self._headers())
        try:
            response = await cloud_http.send(client, request)
        except cloud_http.HttpFailure as failure:
            if not self._api_key and failure.status in (401, 403):
                failure.message += f" ({self.settings.api_key_env} is not set)"
            raise
        try:
            async for piece in chat_stream(response.aiter_lines(), self._error):
                yield piece
        finally:
            await response.aclose()
