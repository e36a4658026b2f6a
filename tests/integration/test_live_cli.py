"""`voiceplat calls --live`: one terminal view of the calls of several robot processes, through
the Redis sink's hashes and `call_events` channel on a real Redis (tests/storage_servers.py)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.storage_servers import StoreEnv, free_port
from voiceplat.cli import main
from voiceplat.storage.recorder import CallLog, Recorder
from voiceplat.storage.records import CallRecord, TurnRecord
from voiceplat.storage.redis import RedisSink

HANG_S = 60.0


class Terminal:
    """The command's stdout, read line by line as it prints."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def wait_for(self, *parts: str) -> str:
        """The first new line containing every part; AssertionError with all output if the
        command exits first."""
        assert self.process.stdout is not None
        async with asyncio.timeout(HANG_S):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    await self.process.wait()
                    raise AssertionError(
                        f"exited {self.process.returncode} before a line with {parts}:\n"
                        + "\n".join(self.lines)
                    )
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if all(part in line for part in parts):
                    return line


@asynccontextmanager
async def calls_command(*args: str) -> AsyncIterator[Terminal]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voiceplat",
        "calls",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield Terminal(process)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def robot_process(url: str, spool: Path) -> Recorder:
    """What one robot process records to: its own Redis sink (and connection)."""
    recorder = Recorder([RedisSink(url, spool)])
    await recorder.start()
    return recorder


def open_call(recorder: Recorder, robot: str, call_id: str, caller: str) -> CallLog:
    return recorder.open_call(
        CallRecord(call_id=call_id, robot=robot, mode="pipeline", source="sip", caller=caller)
    )


async def test_the_live_view_shows_the_calls_of_two_robot_processes(
    stores: StoreEnv, tmp_path: Path
) -> None:
    url = stores.env["REDIS_URL"]
    first = await robot_process(url, tmp_path / "a")
    second = await robot_process(url, tmp_path / "b")
    try:
        earlier = open_call(first, "robot_a", "a-earlier", "+79160000001")
        earlier.add_turn(TurnRecord(call_id="a-earlier", idx=0, role="robot", text="Алло!"))
        await first.aclose()  # written: the command finds the call in progress when it starts
        first = await robot_process(url, tmp_path / "a")

        async with calls_command("--live", "--redis", url) as terminal:
            await terminal.wait_for("1 call(s) in progress")
            await terminal.wait_for("robot_a/a-earlier", "+79160000001", "1 turn(s): robot: Алло!")
            await terminal.wait_for("following call_events")

            a = open_call(first, "robot_a", "a1", "+79161111111")
            b = open_call(second, "robot_b", "b1", "+79162222222")
            await terminal.wait_for("robot_a/a1 started", "+79161111111")
            await terminal.wait_for("robot_b/b1 started", "+79162222222")
            b.add_turn(TurnRecord(call_id="b1", idx=0, role="user", text="Хочу записаться"))
            await terminal.wait_for("robot_b/b1 #0 user: Хочу записаться")
            a.finish("completed", "caller_hangup")
            b.finish("completed", "robot_goodbye")
            ended = [
                await terminal.wait_for("robot_a/a1 ended", "completed caller_hangup"),
                await terminal.wait_for("robot_b/b1 ended", "completed robot_goodbye"),
            ]
        assert all("turn(s)" in line for line in ended)
    finally:
        await first.aclose()
        await second.aclose()


async def test_masked_callers_and_a_redis_that_is_down(
    stores: StoreEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = stores.env["REDIS_URL"]
    recorder = await robot_process(url, tmp_path / "a")
    open_call(recorder, "robot_a", "a1", "+79161234567")
    await recorder.aclose()
    # Without --live: the calls in progress now, then it exits (in this process: no start-up).
    assert await asyncio.to_thread(main, ["calls", "--redis", url, "--mask-callers"]) == 0
    out = capsys.readouterr().out
    assert "robot_a/a1" in out and "+7***67" in out and "+79161234567" not in out

    down = f"redis://127.0.0.1:{free_port()}/0"
    assert await asyncio.to_thread(main, ["calls", "--live", "--redis", down]) == 1
    captured = capsys.readouterr()
    assert f"Redis {down}: ConnectionError" in captured.out
    assert "Traceback" not in captured.out + captured.err


@pytest.fixture(autouse=True)
def _no_redis_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
