"""Access control of the web service: the token on every request, and no cross-site writes.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware): it never buffers a response, so the
live page's event stream and a recording's byte ranges pass straight through.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from voiceplat.web.settings import is_loopback

OPEN_PATHS = frozenset({"/health"})
"""Liveness probes carry no credentials and learn nothing from the answer."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = "voiceplat"


def presented_token(authorization: str) -> str | None:
    """The secret in an Authorization header: a Bearer token, or a Basic password (any user)."""
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, colon, password = decoded.partition(":")
        return password if colon else None
    return None


def token_matches(authorization: str | None, token: str) -> bool:
    presented = presented_token(authorization or "")
    if presented is None:
        return False
    # Constant time: how long a wrong guess takes says nothing about the token.
    return hmac.compare_digest(presented.encode(), token.encode())


def cross_origin(headers: dict[str, str]) -> str | None:
    """Why a state-changing request looks like it came from another site's page, or None."""
    origin = headers.get("origin")
    host = headers.get("host", "")
    if origin is not None:
        if origin == "null":  # a sandboxed frame or a file:// page
            return "Origin: null"
        if urlsplit(origin).netloc.lower() != host.lower():
            return f"Origin {origin} is not this service ({host})"
        return None
    if headers.get("sec-fetch-site") == "cross-site":
        return "Sec-Fetch-Site: cross-site"
    return None


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8000" -> "::1")."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}


class AuthMiddleware:
    """401 without the token (when one is set); without one, 403 for a Host that is not this
    machine's; 403 for a cross-origin unsafe request."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope.get("headers", []))
        path = scope.get("path", "")
        if self.token is None and path not in OPEN_PATHS:
            # Without a token only this machine's names: a page whose domain an attacker
            # re-points at 127.0.0.1 (DNS rebinding) is same-origin to the browser, not to us.
            name = host_name(headers.get("host", "127.0.0.1"))
            if not is_loopback(name):
                await self._deny(
                    scope,
                    send,
                    403,
                    f"Host {name!r} refused: without VOICEPLAT_WEB_TOKEN this service answers "
                    "only as 127.0.0.1 or localhost",
                )
                return
        if self.token is not None and path not in OPEN_PATHS:
            if not token_matches(headers.get("authorization"), self.token):
                await self._deny(
                    scope,
                    send,
                    401,
                    "this service needs its token: "
                    "Authorization: Bearer <VOICEPLAT_WEB_TOKEN>, or basic auth "
                    "with the token as the password",
                )
                return
        method = scope.get("method", "GET")
        if scope["type"] == "http" and method not in SAFE_METHODS:
            reason = cross_origin(headers)
            if reason is not None:
                await self._deny(scope, send, 403, f"cross-site request refused: {reason}")
                return
        await self.app(scope, receive, send)

    async def _deny(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:  # the browser's own login prompt; the token goes in as the password
            headers.append((b"www-authenticate", f'Basic realm="{REALM}"'.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
