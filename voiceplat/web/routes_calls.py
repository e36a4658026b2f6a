"""The calls pages (a filtered list, one call with its transcript, recording and latency) and the
API behind them: /api/calls, /api/calls/{call_id}, /api/calls/{call_id}/recording."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import ValidationError

from voiceplat.storage.records import END_REASONS, CallSnapshot
from voiceplat.web.calls.recording import media_type, recording_file
from voiceplat.web.calls.store import CallPage, CallQuery, CallStoreError
from voiceplat.web.calls.view import is_error_event, turn_views
from voiceplat.web.context import WebContext, get_context
from voiceplat.web.templating import render

router = APIRouter()
Context = Annotated[WebContext, Depends(get_context)]
CALL_ID_MAX = 200
STATUSES = ("completed", "failed", "in_progress")
# Recordings and transcripts are personal data: no shared cache keeps a copy.
PRIVATE = {"Cache-Control": "private, no-store"}


def checked_call_id(call_id: str) -> str:
    """A call id as the stores know them: never a path (ids are matched, not joined to paths,
    but an id that looks like one is refused outright)."""
    if (
        not call_id
        or len(call_id) > CALL_ID_MAX
        or ".." in call_id
        or "/" in call_id
        or "\\" in call_id
        or not call_id.isprintable()
    ):
        raise HTTPException(422, f"not a call id: {call_id[:CALL_ID_MAX]!r}")
    return call_id


def unavailable(exc: CallStoreError) -> HTTPException:
    return HTTPException(503, f"the call store cannot answer now: {exc}")


async def snapshot_or_404(context: WebContext, call_id: str) -> CallSnapshot:
    checked_call_id(call_id)
    try:
        snapshot = await context.calls.get_call(call_id)
    except CallStoreError as exc:
        raise unavailable(exc) from exc
    if snapshot is None:
        raise HTTPException(404, f"no call {call_id!r}")
    return snapshot


def query_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


# --- API ---------------------------------------------------------------------------------------


@router.get("/api/calls", response_model=CallPage, tags=["calls"])
async def api_calls(context: Context, query: Annotated[CallQuery, Query()]) -> CallPage:
    """Finished and current calls, newest first, filtered; `total` counts every match."""
    try:
        return await context.calls.list_calls(query)
    except CallStoreError as exc:
        raise unavailable(exc) from exc


@router.get("/api/calls/{call_id}", response_model=CallSnapshot, tags=["calls"])
async def api_call(context: Context, call_id: str) -> CallSnapshot:
    """One call: its record, turns and pipeline log."""
    return await snapshot_or_404(context, call_id)


@router.get(
    "/api/calls/{call_id}/recording",
    tags=["calls"],
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}, "audio/flac": {}}}, 206: {}, 404: {}},
)
async def api_recording(context: Context, call_id: str) -> FileResponse:
    """The call's recording (stereo: caller left, robot right); Range requests are answered."""
    snapshot = await snapshot_or_404(context, call_id)
    robot = context.robots.get(snapshot.call.robot)
    path = recording_file(robot, snapshot.call) if robot is not None else None
    if path is None:
        raise HTTPException(404, f"call {call_id!r} has no recording")
    return FileResponse(
        path,
        media_type=media_type(path),
        filename=path.name,
        content_disposition_type="inline",
        headers=PRIVATE,
    )


# --- pages -------------------------------------------------------------------------------------


def page_link(query: CallQuery, page: int) -> str:
    return "/calls?" + urlencode({**query.filters(), "page": str(page)})


@router.get("/calls", response_class=HTMLResponse, include_in_schema=False)
async def calls_page(request: Request, context: Context) -> HTMLResponse:
    # Parsed here, not by FastAPI: a bad filter shows the form again with the reason.
    form = {key: value for key, value in request.query_params.items()}
    error, status, result = None, 200, None
    try:
        query = CallQuery.model_validate(form)
    except ValidationError as exc:
        error, status, query = query_errors(exc), 422, CallQuery()
    if error is None:
        try:
            result = await context.calls.list_calls(query)
        except CallStoreError as exc:
            error, status = f"the call store cannot answer now: {exc}", 503
    return render(
        request,
        "calls.html",
        status_code=status,
        nav="calls",
        form=form,
        query=query,
        result=result,
        error=error,
        robots=list(context.robots),
        statuses=STATUSES,
        end_reasons=END_REASONS,
        prev_link=page_link(query, query.page - 1) if result and query.page > 1 else None,
        next_link=page_link(query, query.page + 1)
        if result and query.page < result.pages
        else None,
        quote=quote_id,
    )


def quote_id(call_id: str) -> str:
    return quote(call_id, safe="")


def as_json(value: object) -> str:
    """JSON as a person reads it: Cyrillic as letters, not \\u escapes (Jinja escapes the HTML)."""
    return json.dumps(value, ensure_ascii=False, default=str)


@router.get("/calls/{call_id}", response_class=HTMLResponse, include_in_schema=False)
async def call_page(request: Request, context: Context, call_id: str) -> HTMLResponse:
    snapshot = await snapshot_or_404(context, call_id)
    call = snapshot.call
    robot = context.robots.get(call.robot)
    has_recording = robot is not None and recording_file(robot, call) is not None
    views = turn_views(snapshot)
    scale = max((v.waterfall.total_ms for v in views if v.waterfall), default=0.0)
    return render(
        request,
        "call.html",
        nav="calls",
        call=call,
        snapshot=snapshot,
        views=views,
        scale_ms=scale,
        has_recording=has_recording,
        recording_url=f"/api/calls/{quote_id(call.call_id)}/recording",
        is_error_event=is_error_event,
        as_json=as_json,
        duration_s=call.duration_sec,
    )
