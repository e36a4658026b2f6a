"""Talk to a robot from the browser: pick a robot, then a page whose microphone calls it.

The page's audio goes straight to the robot's own port (WebSocket path `/web`,
`telephony/ingress/web.py`); this service only serves the page. The page connects to
`ws://<host>:<ws_port>/web`, where host is the page's own host name when the robot listens on
every address (ws_host 0.0.0.0 / ::), else the robot's ws_host.
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

Context = Annotated[WebContext, Depends(get_context)]


def ws_host(robot: Robot) -> str:
    """The host the page connects to: "" means the page's own host name."""
    host = robot.config.ws_host
    return "" if host in WILDCARD_HOSTS else host


@router.get("/talk", response_class=HTMLResponse, summary="Pick a robot to talk to")
async def talk_pick(request: Request, context: Context) -> HTMLResponse:
    robots = [
        {
            "name": name,
            "mode": robot.config.mode,
            "ws_host": ws_host(robot),
            "ws_port": robot.config.ws_port,
        }
        for name, robot in context.robots.items()
    ]
    return render(request, "talk_pick.html", nav="talk", robots=robots)


@router.get("/talk/{robot}", response_class=HTMLResponse, summary="Talk to a robot")
async def talk(request: Request, robot: str, context: Context) -> HTMLResponse:
    found = context.robot(robot)  # 404 with the known names
    return render(
        request,
        "talk.html",
        nav="talk",
        robot=found.name,
        mode=found.config.mode,
        greeting=found.config.greeting_text,
        ws_host=ws_host(found),
        ws_port=found.config.ws_port,
    )
