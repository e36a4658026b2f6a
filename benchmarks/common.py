"""What the benchmark scripts share: a robot served in its own process, its call records, the CPU
use of processes, percentiles and Markdown tables.

The scripts run as files (`python benchmarks/<script>.py`), so each puts the repository root at
the head of sys.path before it imports `benchmarks.common`.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from voiceplat.config_sources import deep_merge
from voiceplat.simulator.report import Stats

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
ECHO_ROBOT = FIXTURES / "robots" / "echo"
"""The test robot with fake ASR, LLM and TTS that answer at once: what is measured is the platform."""
ECHO_CONFIG: dict[str, Any] = {
    "ws_host": "127.0.0.1",
    "asr": {"provider": "fake", "texts": ["@dur"], "cycle": True},
    # No reprompts or time limits in the middle of a measurement.
    "no_input": {"reprompt_after_s": 3600},
    "max_call_s": 3600,
}
"""What the benchmarks change in the echo robot's config."""
SILENCE_MS = 600
"""platform_load.py's end-of-utterance silence (`vad.silence_ms`), subtracted from its v2v figures."""


# --- a robot in its own process -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_robot(source: Path, dest: Path, *overrides: Mapping[str, Any]) -> Path:
    """A copy of the robot folder `source` (without its logs) at `dest`, with each of `overrides`
    merged in turn into its config.json."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("logs"))
    config = json.loads((dest / "config.json").read_text(encoding="utf-8"))
    for top in overrides:
        config = deep_merge(config, top)
    (dest / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2))
    return dest


def echo_robot(dest: Path, *overrides: Mapping[str, Any]) -> Path:
    """A copy of the echo robot at `dest` with ECHO_CONFIG, then `overrides`, in its config."""
    return copy_robot(ECHO_ROBOT, dest, ECHO_CONFIG, *overrides)


def platform_robot(parent: Path, name: str, overrides: Mapping[str, Any] | None = None) -> Path:
    """platform_load.py's robot: the echo robot with `vad.silence_ms` = SILENCE_MS."""
    return echo_robot(parent / name, {"vad": {"silence_ms": SILENCE_MS}}, overrides or {})


GC_BOOTSTRAP = """
import atexit, gc, json, sys, time
pauses, started = [], [0.0]
def on_gc(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        ms = (time.perf_counter() - started[0]) * 1000.0
        gen = info["generation"]
        pauses.append([gen, ms, len(gc.get_objects(2)) if gen == 2 else 0])
gc.callbacks.append(on_gc)
def dump():
    with open(sys.argv[1], "w") as file:
        json.dump(pauses, file)
atexit.register(dump)
from voiceplat.cli import main
sys.exit(main(sys.argv[2:]))
"""
"""`voiceplat serve` with a log of the garbage collector's pauses (--gc-stats): the GC stops the
event loop, and with it every call's audio. A full (gen2) collection also counts the objects it
keeps, which is what makes it long."""


class RobotProcess:
    """`voiceplat serve <robot>` on a free port, in its own process, its output in `serve.log`.

    `cwd` is where the robot looks for the root .env (its own .env is in its folder). Also a
    context manager that stops the robot on exit.
    """

    def __init__(
        self,
        robot: Path,
        *,
        grace_s: float = 2.0,
        gc_stats: bool = False,
        cwd: Path = ROOT,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.robot = robot
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.log_path = robot / "serve.log"
        self.gc_path = robot / "gc.json" if gc_stats else None
        self.stop_timeout_s = stop_timeout_s
        self._log = self.log_path.open("ab")  # a robot restarted on the same folder appends
        serve = ["serve", str(robot), "--host", "127.0.0.1", "--port", str(self.port)]
        serve += ["--grace", f"{grace_s:g}"]
        if self.gc_path is None:
            command = [sys.executable, "-m", "voiceplat.cli", *serve]
        else:
            command = [sys.executable, "-c", GC_BOOTSTRAP, str(self.gc_path), *serve]
        self.proc = subprocess.Popen(command, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_listening(start_timeout_s)

    def __enter__(self) -> RobotProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def gc_pauses(self) -> dict[str, Any] | None:
        """Per generation: collections and their pauses in ms (after stop(); None without)."""
        if self.gc_path is None or not self.gc_path.exists():
            return None
        pauses = json.loads(self.gc_path.read_text(encoding="utf-8"))
        stats: dict[str, Any] = {
            f"gen{gen}": {
                "count": sum(1 for g, _, _ in pauses if g == gen),
                "total_ms": round(sum(ms for g, ms, _ in pauses if g == gen), 1),
                "max_ms": max((round(ms, 1) for g, ms, _ in pauses if g == gen), default=None),
            }
            for gen in (0, 1, 2)
        }
        stats["gen2"]["max_objects"] = max((n for g, _, n in pauses if g == 2), default=None)
        return stats

    def _wait_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"the robot exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the robot did not listen within {timeout_s:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def log_counts(self) -> Counter[str]:
        """WARNING/ERROR lines of the robot's log, by level."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return Counter(
            level for line in text.splitlines() for level in ("WARNING", "ERROR") if level in line
        )

    def stop(self) -> None:
        """Stops the robot as Ctrl-C would (live calls get `grace_s`); kills it after
        `stop_timeout_s`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def call_records(robot: Path, expected: int, timeout_s: float = 20.0) -> dict[str, dict]:
    """The robot's JSON call records by call_id, once `expected` of them are final (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = {}
        for path in (robot / "logs").glob("*.json"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            records[record["call"]["call_id"]] = record
        final = sum(1 for r in records.values() if r["call"]["status"] != "in_progress")
        if final >= expected or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


# --- CPU sampling ---------------------------------------------------------------------------


MACHINE = "machine"
"""The sampler's name for the whole machine: busy time of all cores (200 % = two cores busy)."""


WAIT = ":wait"
"""Suffix of the sampler's series of a process's run-queue wait (main thread)."""


def run_queue_wait_s(pid: int) -> float | None:
    """Seconds the process's main thread (the event loop) has been runnable but not running.

    The second field of /proc/<pid>/schedstat: time spent waiting for a CPU. When it grows, the
    loop is late because other processes hold the cores, not because of its own work.
    """
    try:
        fields = Path(f"/proc/{pid}/schedstat").read_text().split()
    except OSError:
        return None
    return int(fields[1]) / 1e9 if len(fields) >= 2 else None


class CpuSampler(threading.Thread):
    """Samples the CPU time (user + system, all threads) and RSS of some processes."""

    def __init__(self, pids: dict[str, int], period_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in pids}
        self.samples[MACHINE] = []
        self.samples.update({f"{name}{WAIT}": [] for name in pids})
        self.period_s = period_s
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            now = time.time()
            machine = psutil.cpu_times()
            # guest time is already counted in user time.
            idle = sum(getattr(machine, f, 0.0) for f in ("idle", "iowait", "guest", "guest_nice"))
            self.samples[MACHINE].append((now, sum(machine) - idle, 0))
            for name, proc in self.procs.items():
                try:
                    times = proc.cpu_times()
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                self.samples[name].append((now, times.user + times.system, rss))
                wait = run_queue_wait_s(proc.pid)
                if wait is not None:
                    self.samples[f"{name}{WAIT}"].append((now, wait, 0))
            self._done.wait(self.period_s)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def cpu_percent(self, name: str, start: float, end: float) -> float | None:
        """Average CPU % (100 = one core) between the first and last sample in [start, end]."""
        inside = [s for s in self.samples[name] if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.5:
            return None
        (t0, c0, _), (t1, c1, _) = inside[0], inside[-1]
        return round(100.0 * (c1 - c0) / (t1 - t0), 1)

    def cpu_peak(self, name: str, start: float, end: float, window_s: float = 1.0) -> float | None:
        """The busiest `window_s` in [start, end], in CPU % (a saturated loop shows ~100)."""
        inside = [s for s in self.samples[name] if start <= s[0] <= end]
        peaks = []
        j = 0
        for i, (t1, c1, _) in enumerate(inside):
            while j < i and t1 - inside[j + 1][0] >= window_s:
                j += 1
            t0, c0, _ = inside[j]
            if t1 - t0 >= window_s * 0.9:
                peaks.append(100.0 * (c1 - c0) / (t1 - t0))
        return round(max(peaks), 1) if peaks else None

    def max_rss_mb(self, name: str) -> float | None:
        values = [s[2] for s in self.samples[name]]
        return round(max(values) / 2**20, 1) if values else None


# --- statistics and tables ------------------------------------------------------------------


def pct(values: list[float]) -> dict[str, float | int | None]:
    """n, p50, p95, p99 and max (ms, 0.1 ms), as the simulator's figures are computed."""
    stats = Stats.of(values)
    return {
        "n": stats.count,
        "p50": stats.p50,
        "p95": stats.p95,
        "p99": stats.p99,
        "max": stats.max,
    }


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
