"""The web service as one FastAPI app: pages, the API behind them, static files, access control."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voiceplat.web import (
    routes_calls,
    routes_live,
    routes_ops,
    routes_robots,
    routes_seed,
    routes_talk,
)
from voiceplat.web.auth import AuthMiddleware
from voiceplat.web.context import WebContext
from voiceplat.web.templating import WEB_DIR

DESCRIPTION = (
    "The HTTP API behind the voiceplat pages: calls (with transcripts, latency and recordings), "
    "robots, live calls, and the seed services (speech to text, text to speech, voice in / "
    "voice out). When VOICEPLAT_WEB_TOKEN is set every endpoint but /health wants "
    "`Authorization: Bearer <token>`."
)


def _where(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part != "body") or "request"


def readable_errors(errors: list[dict[str, Any]]) -> str:
    """One line a person can read, e.g. "query.per_page: Input should be less than or equal to
    200 (got '500')"."""
    lines = []
    for error in errors:
        line = f"{_where(tuple(error.get('loc', ())))}: {error.get('msg', 'invalid')}"
        if "input" in error and not isinstance(error["input"], dict | list):
            line += f" (got {error['input']!r})"
        lines.append(line)
    return "; ".join(lines)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {key: value for key, value in error.items() if key in ("loc", "msg", "type")}
        for error in exc.errors()
    ]
    return JSONResponse(
        {"detail": readable_errors(list(exc.errors())), "errors": errors}, status_code=422
    )


class RequestMetrics:
    """Counts each answered request for /metrics (by method, route template and status)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                routes_ops.observe_request(scope, status, time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, sending)


def create_app(context: WebContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await routes_seed.close_started(context)  # providers the seed services started
        await context.live.aclose()
        await context.calls.aclose()

    app = FastAPI(
        title="voiceplat",
        description=DESCRIPTION,
        version="1",
        docs_url=None,  # served below from the vendored Swagger UI: no CDN, works offline
        lifespan=lifespan,
    )
    app.state.context = context
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="voiceplat API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/vendor/favicon.svg",
        )

    for module in (routes_ops, routes_calls, routes_talk, routes_robots, routes_live, routes_seed):
        app.include_router(module.router)
    # The last added runs first: the metrics see every answer, auth's 401s and 403s too.
    app.add_middleware(AuthMiddleware, token=context.settings.token_value())
    app.add_middleware(RequestMetrics)
    return app
