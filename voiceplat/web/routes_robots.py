"""Robots: each robot's mode, providers, `voiceplat check` result, ports and call statistics."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from voiceplat.errors import RobotError
from voiceplat.web.calls.store import RobotStats
from voiceplat.web.context import WebContext, get_context
from voiceplat.web.routes_talk import ROBOT_ADDRESSES
from voiceplat.web.templating import render

if TYPE_CHECKING:
    from voiceplat.robot import Robot

router = APIRouter()
Context = Annotated[WebContext, Depends(get_context)]

LAST_CALLS = 100
BIN_WIDTHS_MS = (50, 100, 200, 250, 500, 1000, 2000)
MAX_BINS = 16


class HistogramBin(BaseModel):
    from_ms: float
    to_ms: float | None
    """None: the last bin, open-ended."""
    count: int


class RobotView(BaseModel):
    name: str
    directory: str
    mode: str
    providers: dict[str, str]
    """By kind (asr, llm, tts, realtime): the provider's name."""
    check_ok: bool
    problems: list[str]
    """What `voiceplat check` prints for this robot (empty: OK)."""
    ws_host: str
    ws_port: int
    sip: str | None
    calls_in_progress: int
    stats: RobotStats | None
    stats_error: str | None = None
    v2v_histogram: list[HistogramBin]


def check_problems(robot: Robot) -> list[str]:
    """The lines `voiceplat check` prints for a loaded robot (cli.cmd_check)."""
    try:
        problems = robot.problems()
        if robot.config.sip is not None:
            config_file = robot.directory / "config.json"
            sip_problems = robot.config.sip.problems(robot.env, robot.directory)
            problems += [f"{config_file}: {line}" for line in sip_problems]
    except RobotError as exc:
        problems = list(exc.problems)
    return problems


def histogram(values: list[float]) -> list[HistogramBin]:
    """Equal-width bins of a round width (ms), at most MAX_BINS; the last one open-ended."""
    if not values:
        return []
    top = max(values)
    width = next((w for w in BIN_WIDTHS_MS if math.ceil((top + 1) / w) <= MAX_BINS), 0)
    if width == 0:  # long tails: fixed bins, the rest in the last one
        width = BIN_WIDTHS_MS[-1]
    count = min(MAX_BINS, math.floor(top / width) + 1)
    counts = [0] * count
    for value in values:
        counts[min(count - 1, int(max(0.0, value) // width))] += 1
    return [
        HistogramBin(
            from_ms=i * width,
            to_ms=(i + 1) * width if i < count - 1 or top < count * width else None,
            count=n,
        )
        for i, n in enumerate(counts)
    ]


async def robot_view(context: WebContext, name: str, robot: Robot, last_calls: int) -> RobotView:
    stats: RobotStats | None = None
    stats_error = None
    try:
        stats = await context.calls.robot_stats(name, last_calls=last_calls)
    except Exception as exc:  # a store that is down: the page still shows the robot
        stats_error = f"{type(exc).__name__}: {exc}"
    config = robot.config
    # Where it really listens (`serve --host/--port`), else its config.
    ws_host, ws_port = context.extra.get(ROBOT_ADDRESSES, {}).get(
        name, (config.ws_host, config.ws_port)
    )
    return RobotView(
        name=name,
        directory=str(robot.directory),
        mode=config.mode,
        providers={kind: settings.provider for kind, settings in robot.settings.items()},
        check_ok=not (problems := check_problems(robot)),
        problems=problems,
        ws_host=ws_host,
        ws_port=int(ws_port),
        sip=config.sip.summary() if config.sip is not None and config.sip.enabled else None,
        calls_in_progress=robot.calls_in_progress,
        stats=stats,
        stats_error=stats_error,
        v2v_histogram=histogram(stats.v2v_ms) if stats else [],
    )


async def robot_views(context: WebContext, last_calls: int) -> list[RobotView]:
    return list(
        await asyncio.gather(
            *(robot_view(context, n, r, last_calls) for n, r in context.robots.items())
        )
    )


LastCalls = Annotated[
    int, Query(ge=1, le=10_000, description="How many recent calls the statistics cover.")
]


@router.get("/robots", response_class=HTMLResponse, include_in_schema=False)
async def robots_page(
    request: Request, context: Context, last_calls: LastCalls = LAST_CALLS
) -> HTMLResponse:
    views = await robot_views(context, last_calls)
    data: list[dict[str, Any]] = [view.model_dump(mode="json") for view in views]
    return render(
        request, "robots.html", nav="robots", robots=views, data=data, last_calls=last_calls
    )


@router.get("/api/robots", tags=["robots"], summary="Every robot with its check and statistics")
async def api_robots(
    context: Context, last_calls: LastCalls = LAST_CALLS
) -> dict[str, list[RobotView]]:
    return {"robots": await robot_views(context, last_calls)}


@router.get("/api/robots/{name}", tags=["robots"], summary="One robot (404: no such robot)")
async def api_robot(name: str, context: Context, last_calls: LastCalls = LAST_CALLS) -> RobotView:
    return await robot_view(context, name, context.robot(name), last_calls)
