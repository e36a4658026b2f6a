"""A small Telegram Bot API client: a report as sendMessage, or as sendDocument when too long.

Requests go to `<api>/bot<token>/<method>` (the Bot API's shape; `api` may be a local Bot API
server). Every answer is JSON {"ok": ..., "result" | "description", "error_code", "parameters"}.
Retries: 429 waits the `parameters.retry_after` seconds the API asks for; 5xx answers, timeouts
and network errors back off exponentially; any other 4xx (a wrong token, an unknown chat) is not
retried, as sending it again cannot help. A request that timed out may still have been delivered,
so a retry can rarely duplicate a report: reports are at-least-once.

The token is part of every URL, so it is masked in everything this module says (errors, logs)
and in httpx's own request log lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from voiceplat.reports.format import Report
from voiceplat.reports.settings import DEFAULT_API_URL, TelegramSettings

log = logging.getLogger(__name__)

MASK = "***"
MAX_BACKOFF_S = 60.0

Sleep = Callable[[float], Awaitable[None]]


class TelegramError(Exception):
    """A report could not be delivered; the text never holds the token."""


class _MaskToken(logging.Filter):
    """httpx logs every request's URL at INFO ("HTTP Request: POST https://.../bot<token>/...")."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, MASK), None
        return True


def _chat_id(chat: str) -> int | str:
    """A numeric chat id goes as a number, a channel's @username as a string."""
    try:
        return int(chat)
    except ValueError:
        return chat


class TelegramClient:
    def __init__(
        self,
        token: str,
        chat_id: str,
        settings: TelegramSettings,
        *,
        api_url: str = DEFAULT_API_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`sleep` waits between attempts (tests pass one that only records the waits)."""
        self._token = token
        self._chat = _chat_id(chat_id)
        self._settings = settings
        self._base = f"{api_url.rstrip('/')}/bot{token}"
        self._sleep = sleep
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s), transport=transport
        )
        self._log_filter = _MaskToken(token)
        logging.getLogger("httpx").addFilter(self._log_filter)

    def _mask(self, text: str) -> str:
        return text.replace(self._token, MASK)

    async def send_report(self, report: Report) -> int:
        """Sends the report; its message_id. TelegramError when every attempt failed."""
        if report.document is None:
            return await self.send_message(report.text)
        return await self.send_document(report.filename, report.document, caption=report.text)

    async def send_message(self, text: str) -> int:
        # Plain text: no parse_mode, so a caller's "*" or "<" in the transcript is shown as is.
        result = await self._call("sendMessage", json={"chat_id": self._chat, "text": text})
        return _message_id(result)

    async def send_document(self, filename: str, data: bytes, *, caption: str = "") -> int:
        fields = {"chat_id": str(self._chat)}
        if caption:
            fields["caption"] = caption
        files = {"document": (filename, data, "text/plain; charset=utf-8")}
        result = await self._call("sendDocument", data=fields, files=files)
        return _message_id(result)

    async def _call(self, method: str, **request: Any) -> Any:
        attempts = self._settings.attempts
        problem = ""
        for attempt in range(1, attempts + 1):
            backoff = min(self._settings.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
            try:
                response = await self._client.post(f"{self._base}/{method}", **request)
            except httpx.TimeoutException:
                problem, wait = f"no answer within {self._settings.timeout_s:g} s", backoff
            except httpx.TransportError as exc:
                problem = f"cannot reach the Bot API ({type(exc).__name__}: {exc})"
                wait = backoff
            else:
                body = _json(response)
                if response.status_code == 200 and body.get("ok") is True:
                    return body.get("result")
                problem = f"HTTP {response.status_code}: {_description(response, body)}"
                status = response.status_code
                if status == 429:
                    wait = _retry_after(body, default=backoff)
                    if wait > self._settings.max_retry_after_s:
                        raise TelegramError(
                            self._mask(
                                f"{method}: {problem}; the Bot API asks to wait {wait:g} s, "
                                f"more than max_retry_after_s ({self._settings.max_retry_after_s:g})"
                            )
                        )
                elif status < 500:
                    raise TelegramError(self._mask(f"{method}: {problem}{_hint(body)}"))
                else:
                    wait = backoff
            if attempt == attempts:
                break
            log.warning(
                "telegram %s failed (attempt %d of %d): %s; retrying in %g s",
                method,
                attempt,
                attempts,
                self._mask(problem),
                wait,
            )
            await self._sleep(wait)
        raise TelegramError(self._mask(f"{method}: {problem} (after {attempts} attempts)"))

    async def aclose(self) -> None:
        await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._log_filter)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _description(response: httpx.Response, body: dict[str, Any]) -> str:
    description = body.get("description")
    if isinstance(description, str) and description:
        return description[:300]
    if response.status_code == 200:
        return "the answer is not ok"
    return response.text.strip()[:300] or response.reason_phrase


def _retry_after(body: dict[str, Any], *, default: float) -> float:
    parameters = body.get("parameters")
    value = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return default


def _hint(body: dict[str, Any]) -> str:
    """What to do about an error that a setting fixes."""
    if body.get("error_code") in (401, 404):
        # The real API answers 401 for a revoked token and 404 for one of a wrong shape.
        return " (TG_TOKEN is wrong or revoked, or TG_API_URL is not a Bot API server)"
    parameters = body.get("parameters")
    if isinstance(parameters, dict) and parameters.get("migrate_to_chat_id"):
        new_id = parameters["migrate_to_chat_id"]
        return f" (the group became a supergroup: set TG_CHAT_ID={new_id})"
    return ""


def _message_id(result: Any) -> int:
    if isinstance(result, dict) and isinstance(result.get("message_id"), int):
        return int(result["message_id"])
    raise TelegramError("the Bot API answered ok without a message_id")
