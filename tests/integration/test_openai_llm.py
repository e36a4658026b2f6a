"""The `openai` LLM against a local fake OpenAI-compatible server (raw asyncio HTTP/1.1).

The server streams the way OpenAI, vLLM, Ollama and llama.cpp do: chunked transfer encoding,
`data: {json}` events split across chunks at odd places, a role-only first delta, empty deltas, a
usage-only chunk and `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from voiceplat.providers.base import Message, ProviderError
from voiceplat.providers.cloud_http.sse import SseEvent, SseParser
from voiceplat.providers.llm.openai import OpenAILLM, is_local_url

KEY = "sk-test-secret-0123456789"
MESSAGES = [Message("system", "Ты вежливый робот."), Message("user", "Привет!")]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> Request:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, body)


class FakeOpenAIServer:
    """Answers each request with the next responder of `script`; every response closes the
    connection."""

    def __init__(self, *script: Responder) -> None:
        self.script = list(script)
        self.requests: list[Request] = []
        self.release = asyncio.Event()  # lets hanging responders go at teardown
        self._handlers: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> FakeOpenAIServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release.set()
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await read_request(reader)
            self.requests.append(request)
            await self.script.pop(0)(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


# Responders


def chunk(content: str | None = None, role: str | None = None, finish: str | None = None) -> dict:
    delta: dict[str, str] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def tokens_then_done(*tokens: str) -> list[Any]:
    return [
        chunk(role="assistant", content=""),  # role-only first delta
        *(chunk(content=token) for token in tokens),
        chunk(),  # empty delta
        chunk(finish="stop"),
        {"id": "chatcmpl-1", "choices": [], "usage": {"total_tokens": 9}},
        "[DONE]",
    ]


def sse_bytes(event: Any) -> bytes:
    data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


async def write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


async def start_sse(writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    await write_chunk(writer, b": keep-alive comment\n\n")


async def send_events(writer: asyncio.StreamWriter, events: list[Any]) -> None:
    for event in events:
        data = sse_bytes(event)
        # Split each event across two chunks, mid-line: the client must reassemble lines.
        middle = len(data) // 2
        await write_chunk(writer, data[:middle])
        await write_chunk(writer, data[middle:])


def stream(events: list[Any], *, end: str = "complete") -> Responder:
    """SSE response; `end`: 'complete' (final chunk) or 'drop' (close mid-body)."""

    async def respond(request: Request, writer: asyncio.StreamWriter) -> None:
        await start_sse(writer)
        await send_events(writer, events)
        if end == "complete":
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return respond


def hang_until(release: asyncio.Event, events: list[Any]) -> Responder:
    """SSE response that sends `events`, then nothing until `release` is set."""

    async def respond(request: Request, writer: asyncio.StreamWriter) -> None:
        await start_sse(writer)
        await send_events(writer, events)
        await release.wait()

    return respond


def error(status: int, body: dict | str) -> Responder:
    async def respond(request: Request, writer: asyncio.StreamWriter) -> None:
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        reason = {401: "Unauthorized", 500: "Internal Server Error", 503: "Unavailable"}
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()

    return respond


def make_llm(base_url: str, env: dict[str, str] | None = None, **settings: Any) -> OpenAILLM:
    options = {
        "provider": "openai",
        "model": "test-model",
        "base_url": base_url,
        "retry_backoff_s": 0,
        "temperature": 0.3,
        "max_tokens": 64,
    }
    options.update(settings)
    return OpenAILLM(
        OpenAILLM.Settings(**options), env={"OPENAI_API_KEY": KEY} if env is None else env
    )


async def collect(llm: OpenAILLM, got: list[str] | None = None) -> list[str]:
    got = [] if got is None else got
    async for piece in llm.stream(MESSAGES):
        got.append(piece)
    return got


# Tests


async def test_normal_stream_and_request_shape():
    server = FakeOpenAIServer(stream(tokens_then_done("Здрав", "ствуйте", "!")))
    async with server:
        llm = make_llm(
            server.base_url,
            extra_headers={"X-Folder-Id": "b1g"},
            extra_body={"top_p": 0.9},
        )
        try:
            assert await collect(llm) == ["Здрав", "ствуйте", "!"]  # no start(): lazy client
        finally:
            await llm.aclose()

    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-folder-id"] == "b1g"
    assert request.json() == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Ты вежливый робот."},
            {"role": "user", "content": "Привет!"},
        ],
        "stream": True,
        "temperature": 0.3,
        "max_tokens": 64,
        "top_p": 0.9,
    }


async def test_shared_client_across_streams_after_start():
    server = FakeOpenAIServer(stream(tokens_then_done("a")), stream(tokens_then_done("b")))
    async with server:
        llm = make_llm(server.base_url)
        await llm.start()
        assert await collect(llm) == ["a"]
        assert await collect(llm) == ["b"]
        await llm.aclose()
    assert len(server.requests) == 2


async def test_empty_answer_yields_nothing():
    server = FakeOpenAIServer(stream(tokens_then_done()))
    async with server:
        assert await collect(make_llm(server.base_url)) == []


async def test_401_reports_the_server_message_without_the_key():
    body = {
        "error": {
            "message": f"Incorrect API key provided: {KEY}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    server = FakeOpenAIServer(error(401, body))
    async with server:
        with pytest.raises(ProviderError) as caught:
            await collect(make_llm(server.base_url))
    message = str(caught.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message
    assert KEY not in message
    assert len(server.requests) == 1  # client errors are not retried


async def test_500_then_success_is_retried():
    server = FakeOpenAIServer(
        error(500, {"error": {"message": "overloaded"}}), stream(tokens_then_done("ок"))
    )
    async with server:
        assert await collect(make_llm(server.base_url)) == ["ок"]
    assert len(server.requests) == 2


async def test_5xx_gives_up_after_retries():
    server = FakeOpenAIServer(*(error(503, "upstream down") for _ in range(3)))
    async with server:
        with pytest.raises(ProviderError, match=r"HTTP 503: upstream down \(after 3 attempts\)"):
            await collect(make_llm(server.base_url, retries=2))
    assert len(server.requests) == 3


async def test_error_object_mid_stream_after_tokens():
    events = [
        chunk(role="assistant", content=""),
        chunk(content="Один"),
        chunk(content=" два"),
        {"error": {"message": f"model crashed (key {KEY})", "type": "server_error"}},
    ]
    server = FakeOpenAIServer(stream(events))
    got: list[str] = []
    async with server:
        with pytest.raises(ProviderError, match="model crashed") as caught:
            await collect(make_llm(server.base_url), got)
    assert got == ["Один", " два"]
    assert KEY not in str(caught.value)
    assert len(server.requests) == 1  # never retried once tokens were out


async def test_connection_dropped_mid_stream():
    events = [chunk(role="assistant", content=""), chunk(content="Здрав")]
    server = FakeOpenAIServer(stream(events, end="drop"), stream(tokens_then_done("x")))
    got: list[str] = []
    async with server:
        with pytest.raises(ProviderError, match="mid-answer"):
            await collect(make_llm(server.base_url), got)
    assert got == ["Здрав"]
    assert len(server.requests) == 1


async def test_first_token_timeout():
    server = FakeOpenAIServer()
    server.script.append(hang_until(server.release, [chunk(role="assistant", content="")]))
    async with server:
        with pytest.raises(ProviderError, match=r"no first token within 0\.3 s"):
            await collect(make_llm(server.base_url, timeout_s=0.3))
    assert len(server.requests) == 1


async def test_connect_refused_is_retried_then_reported():
    with socket.socket() as probe:  # a free port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = make_llm(f"http://127.0.0.1:{port}/v1", retries=1)
    with pytest.raises(ProviderError, match=r"cannot connect .*after 2 attempts"):
        await collect(llm)
    await llm.aclose()


def test_problems_report_a_missing_key_unless_local():
    remote = make_llm("https://api.openai.com/v1", env={})
    assert remote.problems() == ["OPENAI_API_KEY is not set in robots/<robot>/.env or .env"]
    assert make_llm("https://api.openai.com/v1").problems() == []
    assert make_llm("http://localhost:11434/v1", env={}).problems() == []
    assert make_llm("http://127.0.0.1:8080/v1", env={}).problems() == []
    assert is_local_url("http://192.168.1.5:8000/v1")
    assert not is_local_url("https://llm.api.cloud.yandex.net/v1")


def test_model_is_required_and_typos_rejected():
    with pytest.raises(ValueError, match="model"):
        OpenAILLM.Settings(provider="openai")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="api_key"):
        OpenAILLM.Settings(provider="openai", model="m", api_key="sk-in-config")  # type: ignore[call-arg]


def test_sse_parser_follows_the_event_stream_format():
    parser = SseParser()
    lines = [": comment", "event: error", 'data:{"a":', "data: 1}", "id: 7", "", "data: x", ""]
    events = [event for line in lines if (event := parser.feed_line(line)) is not None]
    assert events == [SseEvent('{"a":\n1}', event="error", id="7"), SseEvent("x", id="7")]
    parser.feed_line("data: unterminated")
    assert parser.flush() == SseEvent("unterminated", id="7")
    assert parser.flush() is None


# The token limit's name: OpenAI deprecated `max_tokens` (o-series models reject it) for
# `max_completion_tokens`; Ollama reads only `max_tokens` and would ignore the new name.


async def test_openai_itself_is_sent_max_completion_tokens():
    server = FakeOpenAIServer(stream(tokens_then_done("ok")))
    async with server:
        # The fake server is the proxy of a plain-http "api.openai.com": the real host is never
        # reached, and the provider believes it talks to OpenAI.
        proxy = server.base_url.removesuffix("/v1")
        llm = make_llm("http://api.openai.com/v1", proxy=proxy)
        try:
            assert await collect(llm) == ["ok"]
        finally:
            await llm.aclose()
    (request,) = server.requests
    assert request.path == "http://api.openai.com/v1/chat/completions"
    body = request.json()
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body


async def test_the_token_limit_name_can_be_chosen():
    server = FakeOpenAIServer(stream(tokens_then_done("a")), stream(tokens_then_done("b")))
    async with server:
        newer = make_llm(server.base_url, max_tokens_field="max_completion_tokens")
        older = make_llm(server.base_url, max_tokens_field="max_tokens")
        assert await collect(newer) == ["a"]
        assert await collect(older) == ["b"]
    first, second = (request.json() for request in server.requests)
    assert (first["max_completion_tokens"], "max_tokens" in first) == (64, False)
    assert (second["max_tokens"], "max_completion_tokens" in second) == (64, False)


async def test_chunks_with_a_null_error_field_are_not_errors():
    events = [{**event, "error": None} for event in tokens_then_done("Да", ", конечно")[:-1]]
    server = FakeOpenAIServer(stream([*events, "[DONE]"]))
    async with server:
        assert await collect(make_llm(server.base_url)) == ["Да", ", конечно"]
