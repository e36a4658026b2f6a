"""`openai` LLM: any OpenAI-compatible chat-completions endpoint, streamed over SSE.

Works with OpenAI, YandexGPT's OpenAI-compatible API, Ollama, vLLM and the llama.cpp server. The
API key is read from the robot's env files under the name `api_key_env`; it never appears in
config.json, and error messages never contain it.

Timeouts: `timeout_s` bounds the wait for the first token (connect, retries and the model's
thinking included) and then every gap between chunks. Retries: connect failures and 5xx answers are
retried up to `retries` times, but only before any token was yielded — a half-spoken answer must not
be repeated.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field

from voiceplat.providers.base import LLM, LLMSettings, Message, ProviderError, register
from voiceplat.providers.sse import iter_events

DONE = "[DONE]"
ERROR_TEXT_LIMIT = 300


class OpenAILLMSettings(LLMSettings):
    """Settings of the `openai` LLM (any OpenAI-compatible /chat/completions endpoint)."""

    base_url: str = Field(
        "https://api.openai.com/v1", description="API root; /chat/completions is appended."
    )
    model: str = Field(description="Model name, e.g. gpt-4o-mini, llama3.1:8b.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="NAME of the env variable (robot .env or .env) with the key."
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="TCP/TLS connect timeout.")
    timeout_s: float = Field(
        20.0, gt=0, description="Wait for the first token, then for each following chunk."
    )
    retries: int = Field(2, ge=0, le=5, description="Retries on connect errors/5xx before tokens.")
    retry_backoff_s: float = Field(0.25, ge=0, description="Pause before retry n is n times this.")
    extra_headers: dict[str, str] = Field(
        default_factory=dict, description="Added to every request (e.g. a project or folder id)."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Merged into the request JSON (e.g. top_p, stop)."
    )


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


def error_message(body: bytes) -> str:
    """The human part of an error body: OpenAI's {"error": {"message"}}, or common variants."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:ERROR_TEXT_LIMIT]
    return _message_of(data) or text[:ERROR_TEXT_LIMIT]


def _message_of(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)[:ERROR_TEXT_LIMIT]
    if isinstance(error, str):
        return error[:ERROR_TEXT_LIMIT]
    for key in ("message", "detail"):
        if data.get(key):
            return str(data[key])[:ERROR_TEXT_LIMIT]
    return None


# Transport failures before any token: the request can safely be sent again. A pooled keep-alive
# connection that the server already closed shows up as RemoteProtocolError.
_RETRYABLE_ERRORS = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class _Retryable(Exception):
    """An attempt failed before any token in a way worth retrying."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@register("llm", "openai")
class OpenAILLM(LLM):
    Settings = OpenAILLMSettings
    settings: OpenAILLMSettings

    def __init__(self, settings: OpenAILLMSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._client: httpx.AsyncClient | None = None

    @property
    def _api_key(self) -> str:
        return self.env.get(self.settings.api_key_env, "").strip()

    @property
    def url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/chat/completions"

    def problems(self) -> list[str]:
        if self._api_key or is_local_url(self.settings.base_url):
            return []
        return [f"{self.settings.api_key_env} is not set in robots/<robot>/.env or .env"]

    async def start(self) -> None:
        self._ensure_client()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _ensure_client(self) -> httpx.AsyncClient:
        # One client per provider: its connection pool keeps TLS sessions warm across calls.
        if self._client is None:
            timeout = httpx.Timeout(
                self.settings.timeout_s,
                connect=self.settings.connect_timeout_s,
                pool=self.settings.connect_timeout_s,
            )
            self._client = httpx.AsyncClient(timeout=timeout)
        return self._client

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", **self.settings.extra_headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _body(self, messages: list[Message]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
        body.update(self.settings.extra_body)
        return body

    def _error(self, message: str) -> ProviderError:
        """A ProviderError naming the endpoint; the key is masked even if a server echoed it."""
        key = self._api_key
        if key:
            message = message.replace(key, "***")
        return ProviderError(f"LLM {self.settings.model!r} at {self.url}: {message}")

    async def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        client = self._ensure_client()
        request = client.build_request(
            "POST", self.url, json=self._body(messages), headers=self._headers()
        )
        response, pieces, first = await self._first_piece(client, request)
        try:
            if first is None:
                return
            yield first
            while True:
                try:
                    piece = await anext(pieces)
                except StopAsyncIteration:
                    return
                except httpx.TimeoutException as exc:
                    raise self._error(
                        f"no data for {self.settings.timeout_s:g} s mid-answer"
                    ) from exc
                except httpx.HTTPError as exc:
                    raise self._error(f"stream broken mid-answer ({exc!r})") from exc
                yield piece
        finally:
            await pieces.aclose()
            await response.aclose()

    async def _first_piece(
        self, client: httpx.AsyncClient, request: httpx.Request
    ) -> tuple[httpx.Response, AsyncIterator[str], str | None]:
        """Sends the request (with retries) and waits for the first text piece, all in timeout_s."""
        attempts = self.settings.retries + 1
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                for attempt in range(attempts):
                    if attempt:
                        await asyncio.sleep(self.settings.retry_backoff_s * attempt)
                    try:
                        return await self._attempt(client, request)
                    except _Retryable as failure:
                        last = failure
                raise self._error(f"{last.message} (after {attempts} attempts)")
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise self._error(f"no first token within {self.settings.timeout_s:g} s") from exc

    async def _attempt(
        self, client: httpx.AsyncClient, request: httpx.Request
    ) -> tuple[httpx.Response, AsyncIterator[str], str | None]:
        try:
            response = await client.send(request, stream=True)
        except _RETRYABLE_ERRORS as exc:
            raise _Retryable(f"cannot connect ({exc!r})") from exc
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise self._error(f"request failed ({exc!r})") from exc
        if response.status_code >= 400:
            try:
                body = await response.aread()
            except httpx.HTTPError:
                body = b""
            finally:
                await response.aclose()
            message = f"HTTP {response.status_code}: {error_message(body)}"
            if not self._api_key and response.status_code in (401, 403):
                message += f" ({self.settings.api_key_env} is not set)"
            if response.status_code >= 500:
                raise _Retryable(message)
            raise self._error(message)
        pieces = self._pieces(response)
        try:
            first = await anext(pieces, None)
        except BaseException as exc:
            await response.aclose()
            if isinstance(exc, _RETRYABLE_ERRORS):
                raise _Retryable(f"stream broken before the first token ({exc!r})") from exc
            raise
        return response, pieces, first

    async def _pieces(self, response: httpx.Response) -> AsyncIterator[str]:
        """Non-empty `choices[0].delta.content` texts until [DONE]."""
        finished = False
        async for event in iter_events(response.aiter_lines()):
            if event.data.strip() == DONE:
                return
            try:
                chunk = json.loads(event.data)
            except ValueError as exc:
                raise self._error(f"bad stream data {event.data[:100]!r}") from exc
            if event.event == "error" or (isinstance(chunk, dict) and "error" in chunk):
                raise self._error(f"error in stream: {_message_of(chunk) or event.data[:200]}")
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            if not choices:
                continue  # usage-only or keep-alive chunks
            choice = choices[0]
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield content
            if choice.get("finish_reason"):
                finished = True
        if not finished:
            raise self._error("stream ended before the answer was complete (no [DONE])")
