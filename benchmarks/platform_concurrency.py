"""platform_load.py, part 2: N simultaneous multi-turn calls on one robot process, per row.

Robot CPU, jitter and underruns of the robot audio at the caller, v2v, and the simulator's own lag
(rows where the simulator itself ran late are flagged: their jitter is not the robot's fault). The
callers run in this process or in child processes; `--py-spy` profiles the robot of each row.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from benchmarks.common import (
    FIXTURES,
    MACHINE,
    SILENCE_MS,
    WAIT,
    CpuSampler,
    RobotProcess,
    call_records,
    cell,
    markdown,
    pct,
    platform_robot,
)
from voiceplat.audio.pcm import FRAME_MS
from voiceplat.simulator import CallResult, MultiResult, Say, Step, run_calls

CONCURRENCY_CLIPS = ["ru_hello.wav", "ru_question.wav"]
SIM_LATE_MS = 10.0
"""A row whose simulator clock ran later than this (p99) is flagged: its jitter is suspect."""


def concurrency_steps(turns: int) -> list[Step]:
    return [Say(FIXTURES / CONCURRENCY_CLIPS[i % len(CONCURRENCY_CLIPS)]) for i in range(turns)]


def steady_window(calls: list[CallResult]) -> tuple[float, float, bool]:
    """Wall-clock span when every call was live (after the ramp, before the first hangup).

    Falls back to the whole run when that span is under 2 s; the flag says which one it is.
    """
    starts = [c.started_at.timestamp() for c in calls]
    ends = [s + c.duration_ms / 1000.0 for s, c in zip(starts, calls, strict=True)]
    start, end = max(starts) + 0.5, min(ends) - 0.5
    if end - start >= 2.0:
        return start, end, True
    return min(starts), max(ends), False


async def _run_in_process(
    url: str, turns: int, n: int, ramp_s: float
) -> tuple[list[CallResult], list[float]]:
    from voiceplat.simulator.ticker import get_ticker

    ticker = get_ticker(FRAME_MS)
    first = len(ticker.lags)
    multi = await run_calls(url, concurrency_steps(turns), n, ramp_s=ramp_s, timeout_s=600)
    return multi.calls, ticker.lags[first:]


def _child_batch(url: str, turns: int, n: int, ramp_s: float, conn: Any, go: Any) -> None:
    """A simulator child process: waits for the start signal, places its calls, sends results."""
    conn.send("ready")
    go.wait()
    conn.send(asyncio.run(_run_in_process(url, turns, n, ramp_s)))
    conn.close()


def run_simulators(
    url: str, turns: int, n: int, ramp_s: float, procs: int, sampler_pids: dict[str, int]
) -> tuple[list[CallResult], list[float], CpuSampler, float]:
    """N calls from `procs` simulator processes (1: this one); samples CPU meanwhile."""
    calls: list[CallResult] = []
    lags: list[float] = []
    if procs <= 1:
        sampler = CpuSampler({**sampler_pids, "sim": os.getpid()})
        sampler.start()
        started = time.monotonic()
        try:
            calls, lags = asyncio.run(_run_in_process(url, turns, n, ramp_s))
        finally:
            sampler.stop()
        return calls, lags, sampler, time.monotonic() - started
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    children: list[tuple[BaseProcess, Connection]] = []
    sim_pids: dict[str, int] = {}
    for i in range(procs):
        share = n // procs + (1 if i < n % procs else 0)
        if share:
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(
                target=_child_batch, args=(url, turns, share, ramp_s, sender, go), daemon=True
            )
            child.start()
            assert child.pid is not None  # start() sets it
            sim_pids[f"sim{len(children)}"] = child.pid
            children.append((child, receiver))
    # Children import the simulator first; the calls start together once all are ready.
    for _, receiver in children:
        receiver.recv()
    sampler = CpuSampler({**sampler_pids, **sim_pids})
    sampler.start()
    started = time.monotonic()
    go.set()
    try:
        for process, receiver in children:
            batch_calls, batch_lags = receiver.recv()
            calls += batch_calls
            lags += batch_lags
            process.join()
    finally:
        sampler.stop()
    return calls, lags, sampler, time.monotonic() - started


@dataclass
class ConcurrencyRow:
    calls: int
    load_1m: float
    robot_cpu_pct: float | None
    robot_cpu_peak_pct: float | None
    robot_wait_pct: float | None
    """Time the robot's event loop was runnable but had no CPU (other processes had them)."""
    sim_cpu_pct: float | None
    machine_cpu_pct: float | None
    steady: bool
    steady_s: float
    wall_s: float
    jitter_ms: dict[str, Any]
    underruns: int
    calls_with_underruns: int
    underrun_gap_ms: dict[str, Any]
    errored_calls: int
    unanswered: int
    v2v_ms: dict[str, Any]
    robot_v2v_minus_silence_ms: dict[str, Any]
    sim_lag_ms: dict[str, Any]
    robot_rss_mb: float | None
    robot_log: dict[str, int]
    robot_gc: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)

    @property
    def cpu_ms_per_call_s(self) -> float | None:
        """Robot CPU per second of one call: the platform's cost of a call (10 ms = 1 % core)."""
        if self.robot_cpu_pct is None:
            return None
        return round(self.robot_cpu_pct * 10.0 / self.calls, 2)

    @property
    def sim_late(self) -> bool:
        return (self.sim_lag_ms["p99"] or 0.0) > SIM_LATE_MS


def measure_concurrency(
    work: Path,
    n: int,
    turns: int,
    ramp_s: float,
    procs: int,
    py_spy: Path | None,
    gc_stats: bool = False,
) -> ConcurrencyRow:
    robot_dir = platform_robot(work, f"calls{n}")
    load = os.getloadavg()[0]
    robot = RobotProcess(robot_dir, gc_stats=gc_stats)
    spy: subprocess.Popen[bytes] | None = None
    try:
        if py_spy is not None:
            spy = start_py_spy(robot.pid, py_spy / f"robot_{n}.txt", ramp_s)
        calls, lags, sampler, wall = run_simulators(
            robot.url, turns, n, ramp_s, procs, {"robot": robot.pid}
        )
        records = call_records(robot_dir, n)
    finally:
        if spy is not None:
            spy.wait()
        robot.stop()
    multi = MultiResult.of(calls, wall, lags)
    start, end, steady = steady_window(calls)
    sim_names = [n for n in sampler.samples if n.startswith("sim") and not n.endswith(WAIT)]
    sim_cpu = [sampler.cpu_percent(name, start, end) for name in sim_names]
    robot_v2v = [
        t["v2v_ms"] - SILENCE_MS
        for r in records.values()
        for t in r["turns"]
        if t["role"] == "robot" and t["v2v_ms"]
    ]
    return ConcurrencyRow(
        calls=n,
        load_1m=round(load, 2),
        robot_cpu_pct=sampler.cpu_percent("robot", start, end),
        robot_cpu_peak_pct=sampler.cpu_peak("robot", start, end),
        robot_wait_pct=sampler.cpu_percent(f"robot{WAIT}", start, end),
        machine_cpu_pct=sampler.cpu_percent(MACHINE, start, end),
        sim_cpu_pct=None if None in sim_cpu else round(sum(sim_cpu), 1),  # type: ignore[arg-type]
        steady=steady,
        steady_s=round(end - start, 1),
        wall_s=round(wall, 1),
        jitter_ms=multi.jitter_ms.model_dump(),
        underruns=multi.underruns,
        calls_with_underruns=multi.calls_with_underruns,
        underrun_gap_ms=pct([g for c in calls for g in c.quality.underrun_gaps_ms]),
        errored_calls=multi.errored,
        unanswered=sum(1 for c in calls for u in c.utterances if not u.answered),
        v2v_ms=multi.v2v_ms.model_dump(),
        robot_v2v_minus_silence_ms=pct(robot_v2v),
        sim_lag_ms=multi.sim_lag_ms.model_dump(),
        robot_rss_mb=sampler.max_rss_mb("robot"),
        robot_log=dict(robot.log_counts()),
        robot_gc=robot.gc_pauses(),
        errors=multi.errors[:20],
    )


def concurrency_table(rows: list[ConcurrencyRow]) -> str:
    header = [
        "calls",
        "robot CPU % avg / peak 1 s",
        "robot CPU ms per call·s",
        "robot waits for CPU %",
        "jitter p50 / p99 / max ms",
        "underruns (calls)",
        "errors",
        "no answer",
        "v2v p50 / p95 ms",
        "robot v2v−silence p95 ms",
        "sim lag p99 ms",
        "sim CPU %",
        "machine CPU % (of 200)",
        "load 1m",
    ]

    def three(s: dict[str, Any], keys: tuple[str, ...]) -> str:
        return " / ".join(cell(s[k]) for k in keys)

    body = [
        [
            r.calls,
            f"{cell(r.robot_cpu_pct)} / {cell(r.robot_cpu_peak_pct)}"
            + ("" if r.steady else " (whole run)"),
            r.cpu_ms_per_call_s,
            r.robot_wait_pct,
            three(r.jitter_ms, ("p50", "p99", "max")),
            f"{r.underruns} ({r.calls_with_underruns})",
            r.errored_calls,
            r.unanswered,
            three(r.v2v_ms, ("p50", "p95")),
            r.robot_v2v_minus_silence_ms["p95"],
            cell(r.sim_lag_ms["p99"]) + (" **SIM LATE**" if r.sim_late else ""),
            r.sim_cpu_pct,
            r.machine_cpu_pct,
            r.load_1m,
        ]
        for r in rows
    ]
    return markdown(header, body)


# --- profiling ------------------------------------------------------------------------------


PY_SPY_RATE = 200
PY_SPY_SECONDS = 15


def start_py_spy(pid: int, out: Path, delay_s: float) -> subprocess.Popen[bytes]:
    """py-spy on the robot for 15 s from `delay_s` on, as collapsed stacks (`--format raw`).

    `--nonblocking` reads the stacks without pausing the robot, so the profile barely changes
    what it measures (an occasional torn stack is the price).
    """
    exe = Path(sys.executable).with_name("py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = (
        f"sleep {delay_s:g}; exec {exe} record --pid {pid} --duration {PY_SPY_SECONDS} "
        f"--rate {PY_SPY_RATE} --nonblocking --format raw -o {out}"
    )
    return subprocess.Popen(["sh", "-c", command], stdout=subprocess.DEVNULL)


def _function(frame: str) -> str:
    """'f (file.py:12)' -> 'f (file.py)': lines of one function are summed."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def hot_spots(collapsed: Path, top: int = 20) -> str:
    """Self and inclusive shares of the busiest functions in a py-spy `raw` profile.

    Percentages are of the CPU samples (py-spy leaves idle ones out); "core %" is the share of
    one core, i.e. samples / (rate x duration).
    """
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    lines_self: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        lines_self[frames[-1]] += count
        self_time[_function(frames[-1])] += count
        for function in {_function(f) for f in frames}:
            inclusive[function] += count
    if not total:
        return f"{collapsed}: no samples"
    budget = PY_SPY_RATE * PY_SPY_SECONDS

    def rows(counter: Counter[str], n: int, skip_root: bool = False) -> list[list[str]]:
        root = max(counter.values())  # the interpreter's entry frames are in every whole stack
        chosen = [(f, c) for f, c in counter.most_common() if not (skip_root and c >= root * 0.97)]
        return [
            [f"{100 * c / total:.1f}", f"{100 * c / budget:.1f}", f"`{f}`"] for f, c in chosen[:n]
        ]

    header = ["% of samples", "core %"]
    return "\n".join(
        [
            f"{collapsed.name}: {total} CPU samples in {PY_SPY_SECONDS} s at {PY_SPY_RATE} Hz "
            f"= {100 * total / budget:.0f} % of one core",
            "",
            markdown([*header, "function (self)"], rows(self_time, top)),
            "",
            markdown([*header, "line (self)"], rows(lines_self, top // 2)),
            "",
            markdown([*header, "function (inclusive)"], rows(inclusive, top + 5, skip_root=True)),
        ]
    )
