"""The soak's robot: `voiceplat serve` in its own process under benchmarks/soak_probe.py, and what
the soak reads of it: RSS, open file descriptors and threads (psutil, from /proc), asyncio tasks
(the probe's file) and the errors in its log.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import ROOT, free_port

PROBE = Path(__file__).with_name("soak_probe.py")
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback ")
"""A process error: a log record at ERROR or above, or a traceback printed by anything."""
LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


@dataclass(frozen=True)
class ProcessSample:
    rss_mb: float
    cpu_pct: float
    fds: int
    threads: int
    tasks: int | None
    top_tasks: list[tuple[str, int]]


class ProbedRobot:
    """The robot on a free port of 127.0.0.1, its output in `serve.log`, probed every
    `probe_period_s`."""

    def __init__(
        self,
        robot: Path,
        *,
        probe_period_s: float,
        objects_period_s: float = 60.0,
        grace_s: float = 5.0,
    ) -> None:
        self.robot = robot
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.log_path = robot / "serve.log"
        self.probe_path = robot / "probe.jsonl"
        self._log = self.log_path.open("ab")
        command = [sys.executable, str(PROBE), str(self.probe_path), f"{probe_period_s:g}"]
        command.append(f"{objects_period_s:g}")
        command += ["serve", str(robot), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--grace", f"{grace_s:g}"]
        # From the robot's parent folder: no .env of the checkout adds to the robot's env.
        self.proc = subprocess.Popen(
            command,
            cwd=robot.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.ps = psutil.Process(self.proc.pid)
        self.exit_code: int | None = None

    def wait_listening(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the robot exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the robot did not listen within {timeout_s:g} s: {self.log_tail()}")

    def sample(self) -> ProcessSample:
        try:
            with self.ps.oneshot():
                rss = self.ps.memory_info().rss
                cpu = self.ps.cpu_percent(interval=None)  # since the previous sample (100: a core)
                fds = self.ps.num_fds()
                threads = self.ps.num_threads()
        except psutil.Error:  # it exited: the soak reports its exit code
            rss, cpu, fds, threads = 0, 0.0, 0, 0
        probe = self.last_probe()
        return ProcessSample(
            round(rss / 2**20, 1),
            cpu,
            fds,
            threads,
            None if probe is None else int(probe["tasks"]),
            [] if probe is None else [(str(n), int(c)) for n, c in probe["top_tasks"]],
        )

    def last_probe(self) -> dict[str, Any] | None:
        try:
            lines = self.probe_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            try:
                return json.loads(line)
            except ValueError:
                continue  # the line being written
        return None

    def ask_objects(self) -> None:
        """The next probe counts the live objects by type."""
        self.probe_path.with_suffix(".objects").touch()

    def last_objects(self) -> dict[str, int]:
        """The latest probe's live objects by type ({} before the first count)."""
        try:
            lines = self.probe_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return {}
        for line in reversed(lines):
            if '"objects"' in line:
                try:
                    return {str(k): int(v) for k, v in json.loads(line)["objects"].items()}
                except (ValueError, KeyError):
                    continue
        return {}

    def probes(self) -> int:
        try:
            return len(self.probe_path.read_text(encoding="utf-8").splitlines())
        except OSError:
            return 0

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def errors(self) -> list[str]:
        """The log's error lines (a traceback counts once, by its first line)."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if ERROR_LINE.search(line)]

    def warnings(self) -> Counter[str]:
        """WARNING lines by message, with the time stamp and numbers taken out."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        found: Counter[str] = Counter()
        for line in text.splitlines():
            if " WARNING " in line:
                found[re.sub(r"\d+", "N", LOG_TIME.sub("", line))[:160]] += 1
        return found

    def stop(self, timeout_s: float = 120.0) -> int:
        """Ctrl-C, as an operator stops it; its exit code (killed after `timeout_s`: -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.exit_code = self.proc.returncode
        return self.exit_code
