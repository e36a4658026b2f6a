"""Live calls: the /live page, /api/live (the calls in progress) and /api/live/events (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from voiceplat.web.context import WebContext, get_context
from voiceplat.web.templating import render

router = APIRouter()
Context = Annotated[WebContext, Depends(get_context)]

KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing an idle stream (and notices a gone
browser: writing to it fails)."""


async def live_body(context: WebContext) -> dict[str, Any]:
    calls = await context.live.calls()
    return {"source": context.live.name, "errors": dict(context.live.errors), "calls": calls}


@router.get("/live", response_class=HTMLResponse, include_in_schema=False)
async def live_page(request: Request, context: Context) -> HTMLResponse:
    return render(request, "live.html", nav="live", **await live_body(context))


@router.get("/api/live", tags=["live"], summary="Calls in progress, oldest first, with turns")
async def api_live(context: Context) -> dict[str, Any]:
    return await live_body(context)


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    lines = [f"event: {event}"] if event else []
    lines.append("data: " + json.dumps(data, ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode()


async def event_stream(context: WebContext, request: Request) -> AsyncIterator[bytes]:
    events = await context.live.subscribe()
    # A first comment once subscribed: the browser's EventSource reports "open" (and a test
    # knows every later event will arrive) before any call event exists.
    yield b": connected\n\n"
    pending: asyncio.Task[Any] | None = None
    try:
        while not await request.is_disconnected():
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_S)
            if not done:
                yield b": keepalive\n\n"
                continue
            pending = None
            try:
                event = done.pop().result()
            except StopAsyncIteration:
                return
            yield sse(event, "call")
    finally:
        if pending is not None:  # let the generator stop waiting before it is closed
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        closing = getattr(events, "aclose", None)
        if closing is not None:
            await closing()


@router.get(
    "/api/live/events",
    tags=["live"],
    summary="Server-sent events: call_started, call_updated, turn, barge_in, call_ended",
    response_class=StreamingResponse,
)
async def api_live_events(request: Request, context: Context) -> StreamingResponse:
    return StreamingResponse(
        event_stream(context, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
