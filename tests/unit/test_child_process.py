"""tests/child_process.py: a child that dies or hangs before listening fails the test with its
own output, not with a "connection refused" further on."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.child_process import wait_listening
from tests.storage_servers import free_port


@pytest.fixture
async def child(tmp_path: Path) -> AsyncIterator[Callable[[str], object]]:
    """Starts `python -c CODE` with its output in tmp_path/child.log; kills it at the end."""
    started: list[asyncio.subprocess.Process] = []

    async def start(code: str) -> asyncio.subprocess.Process:
        with (tmp_path / "child.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, stdout=log, stderr=subprocess.STDOUT
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_a_child_that_exits_at_once_fails_with_its_output(child, tmp_path: Path) -> None:
    code = "import sys; print('config.json: ws_port: is not allowed', flush=True); sys.exit(3)"
    process = await child(code)
    with pytest.raises(AssertionError) as caught:
        await wait_listening(process, free_port(), tmp_path / "child.log")
    message = str(caught.value)
    assert "exited with 3" in message
    assert "config.json: ws_port: is not allowed" in message


async def test_a_child_that_never_listens_fails_when_the_time_is_up(child, tmp_path: Path) -> None:
    process = await child("import time; time.sleep(600)")
    with pytest.raises(
        AssertionError, match=r"did not listen on 127\.0\.0\.1:[0-9]+ within 0\.2 s"
    ):
        await wait_listening(process, free_port(), tmp_path / "child.log", timeout_s=0.2)
    assert process.returncode is None  # still running: it was the wait that gave up


async def test_a_listening_child_is_waited_for(child, tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import socket, time; s = socket.socket(); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
    )
    process = await child(code)
    await wait_listening(process, port, tmp_path / "child.log")
    assert process.returncode is None
