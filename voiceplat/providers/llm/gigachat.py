"""`gigachat` LLM: Sber GigaChat chat completions, streamed over SSE (OpenAI-like events).

Authorization is two-step. The authorization key (Base64 of client id and secret, from the GigaChat
project page) buys an access token: `POST https://ngw.devices.sberbank.ru:9443/api/v2/oauth`,
headers `Authorization: Basic <key>` and `RqUID: <uuid4>`, form `scope=GIGACHAT_API_PERS` (or
_B2B, _CORP), answer `{"access_token", "expires_at": <ms since epoch>}`. The token (valid 30 min)
is cached and shared by all calls, renewed `token_refresh_margin_s` before it expires, and at once
when the API answers 401. Chat: `POST https://gigachat.devices.sberbank.ru/api/v1/chat/completions`
with an OpenAI-style body; the events are parsed by the `openai` provider's `chat_pieces`.

Sber's hosts use certificates of the Russian Trusted Root CA, which is not in the usual bundles:
set `ca_bundle` to that root's PEM file (or `verify: false`, not recommended). Corporate setups with
a client certificate (`client_cert`, `client_key`) may leave the authorization key out: requests
then carry no token and the certificate authenticates. Retries: up to `retries` (3) times on
network errors and 5xx with exponential backoff, only before the first token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Literal

import httpx
from pydantic import Field

from voiceplat.providers import cloud_http
from voiceplat.providers.base import LLM, LLMSettings, Message, register
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.llm.openai import chat_body, chat_pieces

OAUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
BASE_URL = "https://gigachat.devices.sberbank.ru/api/v1"


class GigaChatSettings(LLMSettings, cloud_http.HttpOptions):
    """Settings of the `gigachat` LLM."""

    model: str = Field("GigaChat-Pro", description="GigaChat, GigaChat-Pro, GigaChat-Max, …")
    scope: Literal["GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP"] = Field(
        "GIGACHAT_API_PERS", description="API version of the account (personal, B2B, corporate)."
    )
    credentials_env: str = Field(
        "GIGACHAT_CREDENTIALS", description="NAME of the env var with the authorization key."
    )
    oauth_url: str = Field(OAUTH_URL, description="Token endpoint.")
    base_url: str = Field(BASE_URL, description="API root; /chat/completions is appended.")
    timeout_s: float = Field(
        20.0, gt=0, description="Wait for the first token (token fetch included), then each chunk."
    )
    retries: int = Field(3, ge=0, le=5, description="Retries on network errors and 5xx.")
    retry_backoff_s: float = Field(0.5, ge=0, description="First pause; doubled each retry.")
    token_refresh_margin_s: float = Field(
        60.0, ge=0, description="Renew the access token this long before it expires."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged into the request JSON (top_p, repetition_penalty).",
    )


class _Token:
    def __init__(self, value: str, expires_at: float) -> None:
        self.value = value
        self.expires_at = expires_at  # seconds since the epoch


@register("llm", "gigachat")
class GigaChatLLM(HttpProvider, LLM):
    Settings = GigaChatSettings
    settings: GigaChatSettings

    def __init__(self, settings: GigaChatSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self.clock: Callable[[], float] = time.time  # injectable for tests
        self.token_fetches = 0

    @property
    def _auth_key(self) -> str:
        return self.env.get(self.settings.credentials_env, "").strip()

    @property
    def url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/chat/completions"

    def problems(self) -> list[str]:
        found = cloud_http.options_problems(self.settings, self.env)
        if not self._auth_key and not self.settings.client_cert:
            found.append(
                cloud_http.missing_env(
                    self.settings.credentials_env, what="GigaChat authorization key"
                )
            )
        return found

    def _secrets(self) -> list[str]:
        token = self._token.value if self._token else ""
        return [self._auth_key, token]

    def _error_prefix(self) -> str:
        return f"GigaChat {self.settings.model!r} at {self.url}"

    # Access token

    async def _access_token(self, *, renew: bool = False) -> str | None:
        """The cached token, fetched when missing, (nearly) expired or `renew`ed after a 401."""
        if not self._auth_key:
            return None  # mTLS-only authentication
        stale = self._token
        async with self._token_lock:
            # Another call may have renewed it while this one waited for the lock.
            token = self._token
            if (
                token is not None
                and (not renew or token is not stale)
                and self.clock() < token.expires_at - self.settings.token_refresh_margin_s
            ):
                return token.value
            self._token = await self._fetch_token()
            return self._token.value

    async def _fetch_token(self) -> _Token:
        client = self._http.get()
        request = client.build_request(
            "POST",
            self.settings.oauth_url,
            data={"scope": self.settings.scope},
            headers={
                "Authorization": f"Basic {self._auth_key}",
                "RqUID": str(uuid.uuid4()),
                "Accept": "application/json",
            },
        )
        self.token_fetches += 1
        try:
            body = await cloud_http.read_body(client, request, 1 << 16)
        except cloud_http.HttpFailure as failure:
            if failure.status in (400, 401, 403):  # an answer's status; a too long body has none
                failure.message = (
                    f"authorization failed ({failure.message}); check "
                    f"{self.settings.credentials_env} and scope {self.settings.scope}"
                )
            raise
        try:
            answer = json.loads(body)
            value = str(answer["access_token"])
            expires_at = float(answer["expires_at"]) / 1000.0
        except (ValueError, KeyError, TypeError):
            raise cloud_http.HttpFailure(f"malformed token answer {body[:60]!r}") from None
        return _Token(value, expires_at)

    # Chat

    async def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        body = chat_body(self.settings.model, messages, self.settings, self.settings.extra_body)
        pieces = self._retrying_stream(lambda: self._attempt(body))
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                yield piece

    async def _send_chat(self, body: dict[str, Any], token: str | None) -> httpx.Response:
        client = self._http.get()
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = client.build_request("POST", self.url, json=body, headers=headers)
        return await cloud_http.send(client, request)

    def _not_served_hint(self) -> str:
        base = self.settings.base_url.rstrip("/")
        return (
            f" (model {self.settings.model!r} is not served at {base}: GET {base}/models lists "
            "the models there; check `model`, or set `base_url` to the API host of your account)"
        )

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[str, None]:
        token = await self._access_token()
        try:
            response = await self._send_chat(body, token)
        except cloud_http.HttpFailure as failure:
            if failure.status == 404:
                failure.message += self._not_served_hint()
            if failure.status != 401 or token is None:
                raise
            # The token was revoked or expired early: renew it once and send again.
            response = await self._send_chat(body, await self._access_token(renew=True))
        try:
            async for piece in chat_pieces(response.aiter_lines(), self._error):
                yield piece
        finally:
            await response.aclose()
