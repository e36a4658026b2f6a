"""The `reports` part of config.json: Telegram call reports and the after-call summary.

The bot's token and the chat come from the env (robot .env, root .env or the process), never from
config.json: TG_TOKEN, TG_CHAT_ID, and TG_API_URL for a local Bot API server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOKEN_ENV = "TG_TOKEN"
CHAT_ENV = "TG_CHAT_ID"
API_URL_ENV = "TG_API_URL"
DEFAULT_API_URL = "https://api.telegram.org"
ENV_FILES = "robots/<robot>/.env or the root .env"

TELEGRAM_MESSAGE_LIMIT = 4096
"""sendMessage: 'text ... 1-4096 characters after entities parsing' (Bot API)."""
TELEGRAM_CAPTION_LIMIT = 1024
"""sendDocument: 'caption ... 0-1024 characters after entities parsing'."""

# What a bot token looks like (`123456:ABC-DEF...`); checked so that a pasted chat id or a URL
# in TG_TOKEN is reported by `check`, not by a 404 after the first call.
TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TelegramSettings(_Settings):
    enabled: bool = Field(
        True, description="Send a report after each call (when TG_TOKEN and TG_CHAT_ID are set)."
    )
    only_failed: bool = Field(
        False,
        description="Report only failed calls: status 'failed' or outcome 'failed'.",
    )
    outcomes: list[str] | None = Field(
        None,
        description="Report only calls with one of these outcomes (e.g. ['booked', "
        "'no_answer_given']); null: every outcome.",
    )
    max_message_chars: int = Field(
        TELEGRAM_MESSAGE_LIMIT,
        ge=500,
        le=TELEGRAM_MESSAGE_LIMIT,
        description="A longer report is sent as a .txt file with a short caption "
        "(Telegram's limit is 4096).",
    )
    attempts: int = Field(
        5, ge=1, le=20, description="Tries per report (429, 5xx and network errors are retried)."
    )
    timeout_s: float = Field(15.0, gt=0, description="Bound of one request to the Bot API.")
    backoff_s: float = Field(
        1.0, ge=0, description="Pause before the first retry after a 5xx or network error; doubled."
    )
    max_retry_after_s: float = Field(
        120.0,
        ge=0,
        description="A 429 asking to wait longer than this gives the report up (logged).",
    )
    timezone: str = Field("UTC", description="Time zone of the call's start time in the report.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. 'Europe/Moscow')") from None
        return value


class SummarySettings(_Settings):
    enabled: bool = Field(
        True, description="After each call the LLM writes a one-two sentence summary."
    )
    max_tokens: int = Field(80, ge=10, le=400, description="Bound of the summary's length.")
    timeout_s: float = Field(
        60.0, gt=0, description="A summary not written in this time is given up (logged)."
    )


class ReportsSettings(_Settings):
    telegram: TelegramSettings = Field(
        default_factory=TelegramSettings, description="Call reports to a Telegram chat."
    )
    summary: SummarySettings = Field(
        default_factory=SummarySettings, description="The call's summary (record and report)."
    )
    queue_size: int = Field(
        200,
        ge=1,
        description="Finished calls waiting for after-call work; when full the "
        "oldest is dropped (logged).",
    )
    close_timeout_s: float = Field(
        20.0, ge=0, description="At shutdown, how long waiting calls may still be reported."
    )


def telegram_env(env: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(token, chat id, API base URL), or None when the token or the chat is not set."""
    token = env.get(TOKEN_ENV, "").strip()
    chat = env.get(CHAT_ENV, "").strip()
    if not token or not chat:
        return None
    api = env.get(API_URL_ENV, "").strip() or DEFAULT_API_URL
    return token, chat, api.rstrip("/")


def reports_problems(settings: ReportsSettings, env: Mapping[str, str]) -> list[str]:
    """What stops the reports from working, for `voiceplat check` (the token is never shown)."""
    if not settings.telegram.enabled:
        return []
    token = env.get(TOKEN_ENV, "").strip()
    chat = env.get(CHAT_ENV, "").strip()
    found = []
    if token and not chat:
        found.append(
            f"{CHAT_ENV} is not set, so no call reports are sent: put {CHAT_ENV}=... "
            f"(the chat's id, e.g. -1001234567890) in {ENV_FILES}"
        )
    if chat and not token:
        found.append(
            f"{TOKEN_ENV} is not set, so no call reports are sent: put {TOKEN_ENV}=... "
            f"(the bot's token from @BotFather) in {ENV_FILES}"
        )
    if token and not TOKEN_SHAPE.match(token):
        found.append(f"{TOKEN_ENV} does not look like a bot token (digits:letters from @BotFather)")
    api = env.get(API_URL_ENV, "").strip()
    if api:
        parts = urlsplit(api)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            found.append(f"{API_URL_ENV} must be an http:// or https:// URL, not {api!r}")
    return found
