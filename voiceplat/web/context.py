"""What every route of the web service reads: its settings, the robots it shows, the call store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, Request

if TYPE_CHECKING:
    from voiceplat.robot import Robot
    from voiceplat.storage.live import LiveCalls
    from voiceplat.web.calls.store import CallStore
    from voiceplat.web.live_source import LiveSource
    from voiceplat.web.settings import WebSettings


@dataclass
class WebContext:
    settings: WebSettings
    robots: dict[str, Robot]
    """By robot name (its folder's name), in the order given on the command line."""
    calls: CallStore
    live: LiveSource
    in_process_live: LiveCalls | None = None
    """Set when the web service runs inside `voiceplat serve` (the robot's own live calls)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def robot(self, name: str) -> Robot:
        robot = self.robots.get(name)
        if robot is None:
            known = ", ".join(self.robots) or "none"
            raise HTTPException(404, f"no robot named {name!r} (known: {known})")
        return robot


def get_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.context
    return context
