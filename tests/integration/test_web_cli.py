"""`voiceplat web` and `voiceplat serve --web-port` as processes: where they listen, what they
refuse, and a clean stop on SIGTERM. (The service itself over HTTP: test_web_api.py.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.storage_servers import free_port
from voiceplat.cli import main

TOKEN = "test-token-0123456789abcdef"
HANG_S = 60.0
"""Only a hang reaches this."""


async def run_web(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voiceplat",
        "web",
        *args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def wait_line(process: asyncio.subprocess.Process, prefix: str) -> tuple[str, str]:
    """The first line starting with `prefix`, and everything printed before it."""
    assert process.stdout is not None
    before = ""
    async with asyncio.timeout(HANG_S):
        while line := (await process.stdout.readline()).decode():
            if line.startswith(prefix):
                return line.strip(), before
            before += line
    raise AssertionError(f"exited ({await process.wait()}) without {prefix!r}:\n{before}")


async def test_voiceplat_web_runs_asks_for_its_token_and_answers_health(
    make_robot: Callable[..., Path],
) -> None:
    robot = make_robot("alpha")
    port = free_port()
    process = await run_web([str(robot), "--port", str(port)], {"VOICEPLAT_WEB_TOKEN": TOKEN})
    try:
        line, _ = await wait_line(process, "web: listening on ")
        assert line == f"web: listening on http://127.0.0.1:{port}/"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health = await client.get("/health")
            refused = await client.get("/api/robots")
            robots = await client.get("/api/robots", headers={"Authorization": f"Bearer {TOKEN}"})
        assert health.json() == {"status": "ok"}
        assert refused.status_code == 401
        assert [r["name"] for r in robots.json()["robots"]] == ["alpha"]
    finally:
        process.terminate()
        async with asyncio.timeout(HANG_S):
            assert await process.wait() == 0  # SIGTERM: a clean stop


async def test_serve_with_web_port_runs_the_pages_in_the_robots_process(
    make_robot: Callable[..., Path],
) -> None:
    robot = make_robot("alpha")
    port, web_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "voiceplat", "serve", str(robot), "--host", "127.0.0.1", "--port", str(port)),
        *("--web-port", str(web_port)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        line, _ = await wait_line(process, "web: listening on ")
        assert line == f"web: listening on http://127.0.0.1:{web_port}/"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web_port}") as client:
            live = (await client.get("/api/live")).json()
            metrics = (await client.get("/metrics")).text
            listed = (await client.get("/api/robots")).json()["robots"]
        assert (live["source"], live["calls"]) == ("in-process", [])  # the robot's LiveCalls
        # Where the robot really listens (--host/--port), not its config's 0.0.0.0:5299.
        assert [(r["ws_host"], r["ws_port"]) for r in listed] == [("127.0.0.1", port)]
        names = {family.name for family in text_string_to_metric_families(metrics)}
        assert {"voiceplat_v2v_seconds", "voiceplat_web_requests"} <= names  # one registry
    finally:
        process.terminate()
        async with asyncio.timeout(HANG_S):
            assert await process.wait() == 0


def test_voiceplat_web_refuses_another_host_without_a_token(
    make_robot: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("VOICEPLAT_WEB_TOKEN", raising=False)
    robot = make_robot("alpha")
    assert main(["web", str(robot), "--host", "0.0.0.0", "--port", "1"]) == 1
    assert capsys.readouterr().err.strip() == (
        "refusing to listen on 0.0.0.0: the pages show call recordings and transcripts "
        "(personal data); set VOICEPLAT_WEB_TOKEN to a secret of at least 16 characters "
        "(e.g. `openssl rand -hex 24`), or listen on 127.0.0.1 (the default)"
    )


def test_voiceplat_web_on_a_taken_port_says_so(
    make_robot: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    robot = make_robot("alpha")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["web", str(robot), "--port", str(port)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"web service: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
