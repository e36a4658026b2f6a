"""Operations: /metrics (Prometheus), /health (liveness), /ready (readiness), / (to the calls)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import Scope

from voiceplat.web.calls.store import CallQuery
from voiceplat.web.context import WebContext, get_context

router = APIRouter()
Context = Annotated[WebContext, Depends(get_context)]

READY_TIMEOUT_S = 5.0
"""A store that takes longer to answer one query is not ready for the pages."""

REQUESTS = Counter(
    "voiceplat_web_requests_total",
    "HTTP requests the web service answered",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "voiceplat_web_request_seconds",
    "Time to the first byte of a web service answer",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    # The route's template (/api/calls/{call_id}), never the raw path: one series per route,
    # not per call id. A request no route matched (a 404, or one auth refused) is "other".
    route = scope.get("route")
    template = getattr(route, "path", None) or "other"
    REQUESTS.labels(scope.get("method", "GET"), template, str(status)).inc()
    REQUEST_SECONDS.labels(template).observe(seconds)


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/calls", status_code=307)


@router.get("/health", tags=["operations"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", tags=["operations"], summary="Readiness: robots loaded, call store answers")
async def ready(context: Context) -> JSONResponse:
    checks: dict[str, Any] = {"robots": sorted(context.robots)}
    problems = [] if context.robots else ["no robots loaded"]
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await context.calls.list_calls(CallQuery(per_page=1))
        checks["call_store"] = "ok"
    except Exception as exc:  # any store failure means "not ready", with the reason shown
        checks["call_store"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        problems.append(f"call store: {checks['call_store']}")
    body = {"ready": not problems, "problems": problems, "checks": checks}
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics of this process")
async def metrics() -> Response:
    # The default registry: inside `voiceplat serve` it holds the robot's metrics as well.
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
