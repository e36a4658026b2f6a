"""Shared fixtures: paths, robot folders made on the fly, a running robot server.

Under CI=true a skipped test fails (tests/ci_skips.py): a missing model or server is a broken setup.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from voiceplat.config_sources import deep_merge

pytest_plugins = ["tests.ci_skips"]

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
ECHO_ROBOT = FIXTURES / "robots" / "echo"


@pytest.fixture
def make_robot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Copies the echo test robot into tmp_path with config overrides; returns its folder."""
    monkeypatch.chdir(tmp_path)  # the root .env is the current directory's

    def make(name: str = "robot", prompt: str | None = None, **overrides: Any) -> Path:
        robot = tmp_path / "robots" / name
        shutil.copytree(ECHO_ROBOT, robot, ignore=shutil.ignore_patterns("logs"))
        config = json.loads((robot / "config.json").read_text())
        config = deep_merge(config, overrides)
        (robot / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2))
        if prompt is not None:
            (robot / "prompt.txt").write_text(prompt)
        return robot

    return make


@pytest.fixture
async def robot_server() -> AsyncIterator[Callable[..., Any]]:
    """Starts robots on 127.0.0.1:<free port>; yields a starter returning (url, server, recorder)."""
    from voiceplat.robot import load_robot
    from voiceplat.storage.recorder import Recorder
    from voiceplat.storage.sinks import sinks_from_env
    from voiceplat.telephony.server import RobotServer

    started: list[tuple[RobotServer, Recorder]] = []

    async def start(robot_dir: Path) -> tuple[str, RobotServer, Recorder]:
        robot = load_robot(robot_dir)
        recorder = Recorder(sinks_from_env(robot.env, robot.logs_dir, robot.directory / "spool"))
        await recorder.start()
        await robot.start()
        server = RobotServer(robot, recorder)
        await server.start("127.0.0.1", 0)
        started.append((server, recorder))
        return f"ws://127.0.0.1:{server.port}/", server, recorder

    yield start
    for server, recorder in started:
        await server.shutdown(grace_s=5)
        await recorder.aclose()
        await server.robot.aclose()


def read_call_records(robot_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((robot_dir / "logs").glob("*.json"))]
