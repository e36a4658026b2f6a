"""What a cloud provider's failures look like: `HttpFailure`, error bodies, secret masking.

- `HttpFailure`: a failed request, and whether sending it again is safe.
- `error_message` / `message_of`: the human part of a vendor's JSON error body.
- `mask`: removes secrets from any text that may reach a log, a call record or an exception.
- `missing_env`: the `check` line for a secret that is not set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from voiceplat.providers.base import ROBOT_ENV_PLACEHOLDER

ERROR_TEXT_LIMIT = 300
MASK = "***"
ENV_FILES = f"{ROBOT_ENV_PLACEHOLDER} or the root .env"


class HttpFailure(Exception):
    """A request failed; `retryable` when sending it again is safe and may help."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


def error_message(body: bytes) -> str:
    """The human part of an error body: {"error": {"message"}}, {"error_message"}, {"detail"}…"""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:ERROR_TEXT_LIMIT]
    return message_of(data) or text[:ERROR_TEXT_LIMIT]


def message_of(data: Any) -> str | None:
    """The message inside a JSON error object, in the shapes the cloud APIs use."""
    if not isinstance(data, dict):
        return None
    for key in ("error", "detail"):
        inner = data.get(key)
        if isinstance(inner, dict):
            found = message_of(inner)
            return (found or json.dumps(inner, ensure_ascii=False))[:ERROR_TEXT_LIMIT]
        if isinstance(inner, str) and inner:
            return inner[:ERROR_TEXT_LIMIT]
    for key in ("message", "error_message", "msg", "code", "status"):
        if data.get(key):
            return str(data[key])[:ERROR_TEXT_LIMIT]
    return None


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by ***; longest first, so no fragment survives."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def missing_env(name: str, *, alternative: str | None = None, what: str = "") -> str:
    """The `check` line for an unset env variable, saying where to put it."""
    names = f"{name} (or {alternative})" if alternative else name
    about = f" ({what})" if what else ""
    return f"{names}{about} is not set: put {name}=... in {ENV_FILES}"
