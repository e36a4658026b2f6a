"""Jinja2 templates of the pages (no build step: server-rendered HTML, small vendored scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=WEB_DIR / "templates")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Renders templates/<name> (which extends base.html) with `context`."""
    return templates.TemplateResponse(request, name, context, status_code=status_code)
