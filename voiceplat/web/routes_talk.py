"""Talk to a robot from the browser: pick a robot, then a page whose microphone calls it.

The page's audio goes straight to the robot's own port (WebSocket path `/web`,
`telephony/ingress/web.py`); this service only serves the page. The page connects to
`ws://<host>:<ws_port>/web`, where host is the page's own host name when the robot listens on
every address (ws_host 0.0.0.0 / ::), else the robot's ws_host. Where a robot listens elsewhere
than its config says (`voiceplat serve --host/--port`), `WebContext.extra[ROBOT_ADDRESSES]` says
where.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from voiceplat.robot import Robot
from voiceplat.web.context import WebContext, get_context
from voiceplat.web.templating import render

router = APIRouter()

WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
ROBOT_ADDRESSES = "robot_addresses"
"""WebContext.extra key: {robot name: (ws_host, ws_port)} it really listens on."""

Context = Annotated[WebContext, Depends(get_context)]


def ws_address(context: WebContext, name: str, robot: Robot) -> tuple[str, int]:
    """Where the page connects: (host, port); host "" means the page's own host name."""
    configured = (robot.config.ws_host, robot.config.ws_port)
    host, port = context.extra.get(ROBOT_ADDRESSES, {}).get(name, configured)
    return ("" if host in WILDCARD_HOSTS else host), int(port)


@router.get("/talk", response_class=HTMLResponse, summary="Pick a robot to talk to")
async def talk_pick(request: Request, context: Context) -> HTMLResponse:
    robots = []
    for name, robot in context.robots.items():
        host, port = ws_address(context, name, robot)
        robots.append({"name": name, "mode": robot.config.mode, "ws_host": host, "ws_port": port})
    return render(request, "talk_pick.html", nav="talk", robots=robots)


@router.get("/talk/{robot}", response_class=HTMLResponse, summary="Talk to a robot")
async def talk(request: Request, robot: str, context: Context) -> HTMLResponse:
    found = context.robot(robot)  # 404 with the known names
    host, port = ws_address(context, robot, found)
    # Browsers cannot send Basic credentials on a WebSocket: the page gets media_auth's token
    # (the page itself is behind the web service's own auth).
    auth = found.config.media_auth
    ws_token = (found.env.get(auth.token_env) or "") if auth.token_env else ""
    return render(
        request,
        "talk.html",
        nav="talk",
        robot=found.name,
        mode=found.config.mode,
        greeting=found.config.greeting_text,
        ws_host=host,
        ws_port=port,
        ws_token=ws_token,
        ws_tls=found.config.tls is not None,
    )
