"""Platform benchmark: the robot's own latency per turn, and how many calls one process carries.

    .venv/bin/python benchmarks/platform_load.py                    # full run (about 10 minutes)
    .venv/bin/python benchmarks/platform_load.py --quick            # a smoke run (about 2 minutes)
    .venv/bin/python benchmarks/platform_load.py --skip-overhead --calls 300 --py-spy /tmp/prof

The robot is the `echo` test robot (fake ASR/LLM/TTS with zero delay, webrtc VAD, end of utterance
after `vad.silence_ms` = 600 ms), served by `voiceplat serve` in its own process; the callers are
the simulator (voiceplat.simulator) in this process, or in `--sim-procs` child processes, speaking
the real speech fixtures of tests/fixtures/. So every millisecond measured is the platform's.

1. Overhead: sequential calls of several turns. v2v minus silence_ms, caller side (end of the
   WAV's speech -> first robot audio arrived) and robot side (the call records' v2v_ms: end of
   speech as the endpointer saw it -> first robot audio queued); the VAD's hangover (how far the
   endpointer's end of speech lies after the WAV's) is computed offline per fixture.
2. Concurrency: N simultaneous multi-turn calls per row; robot CPU, jitter and underruns of the
   robot audio at the caller, v2v, and the simulator's own lag (rows where the simulator itself
   ran late are flagged: their jitter is not the robot's fault).

Prints Markdown tables (and `--json PATH` writes everything); asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from voiceplat.audio.pcm import FRAME_MS
from voiceplat.config import VadSettings, deep_merge
from voiceplat.simulator import CallResult, MultiResult, Say, run_call, run_calls
from voiceplat.turns.endpointer import Endpointer, SpeechEnded
from voiceplat.turns.vad import make_vad

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
ECHO_ROBOT = FIXTURES / "robots" / "echo"
SILENCE_MS = 600
OVERHEAD_CLIPS = ["ru_question.wav", "en_hello.wav", "ru_hello.wav", "ru_aga.wav", "ru_long.wav"]
CONCURRENCY_CLIPS = ["ru_hello.wav", "ru_question.wav"]
SIM_LATE_MS = 10.0
"""A row whose simulator clock ran later than this (p99) is flagged: its jitter is suspect."""

BENCH_CONFIG: dict[str, Any] = {
    "ws_host": "127.0.0.1",
    "asr": {"provider": "fake", "texts": ["@dur"], "cycle": True},
    "vad": {"silence_ms": SILENCE_MS},
    # No reprompts or time limits in the middle of a measurement.
    "no_input": {"reprompt_after_s": 3600},
    "max_call_s": 3600,
}


# --- the robot process ----------------------------------------------------------------------


def make_robot(parent: Path, name: str, overrides: dict[str, Any] | None = None) -> Path:
    """A copy of the echo robot with the benchmark's config (and `overrides`) in `parent/name`."""
    robot = parent / name
    shutil.copytree(ECHO_ROBOT, robot)
    config = json.loads((robot / "config.json").read_text(encoding="utf-8"))
    config = deep_merge(deep_merge(config, BENCH_CONFIG), overrides or {})
    (robot / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2))
    return robot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    """`voiceplat serve <robot>` on a free port, in its own process."""

    def __init__(self, robot: Path, *, gc_stats: bool = False) -> None:
        self.robot = robot
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.log_path = robot / "serve.log"
        self.gc_path = robot / "gc.json" if gc_stats else None
        self._log = self.log_path.open("wb")
        serve = ["serve", str(robot), "--host", "127.0.0.1", "--port", str(self.port)]
        serve += ["--grace", "2"]
        if self.gc_path is None:
            command = [sys.executable, "-m", "voiceplat.cli", *serve]
        else:
            command = [sys.executable, "-c", GC_BOOTSTRAP, str(self.gc_path), *serve]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_listening(timeout_s=60.0)

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

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def log_counts(self) -> Counter[str]:
        """WARNING/ERROR lines of the robot's log, by level."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return Counter(
            level for line in text.splitlines() for level in ("WARNING", "ERROR") if level in line
        )


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


# --- statistics and tables ------------------------------------------------------------------


def pct(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99, top = np.percentile(np.asarray(values, dtype=float), [50, 95, 99, 100])
    return {
        "n": len(values),
        "p50": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "p99": round(float(p99), 1),
        "max": round(float(top), 1),
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


# --- 1. platform overhead -------------------------------------------------------------------


def replay_hangover_ms(call: CallResult, vad: VadSettings) -> list[float | None]:
    """Per caller utterance: the endpointer's end of speech minus the WAV's end of speech.

    Replays the exact audio the caller sent (frame i went out at (i + 1) * 20 ms on the call's
    clock, the clock of `speech_end_ms`) through a fresh VAD and endpointer built like the
    robot's, so the VAD's history (adaptive noise model) is the same as in the call. None where
    the replay found no end of speech for that utterance.
    """
    detector = make_vad(vad.engine, aggressiveness=vad.aggressiveness)
    endpointer = Endpointer(vad.endpointer_settings())  # its pauses do not move the ends
    size = len(call.caller_audio) // max(1, call.frames_sent)
    ends: list[float] = []
    for i in range(call.frames_sent):
        frame = call.caller_audio[i * size : (i + 1) * size]
        for event in endpointer.push(frame, detector.is_speech(frame), (i + 1) * FRAME_MS / 1e3):
            if isinstance(event, SpeechEnded):
                ends.append(event.ended_at * 1000.0)
    values: list[float | None] = []
    spoken = [u for u in call.utterances if u.speech_end_ms is not None]
    for i, u in enumerate(spoken):
        until = spoken[i + 1].sent_start_ms if i + 1 < len(spoken) else float("inf")
        found = [e for e in ends if u.speech_start_ms <= e < until]  # type: ignore[operator]
        values.append(round(found[-1] - u.speech_end_ms, 1) if found else None)  # type: ignore[operator]
    return values


@dataclass
class TurnSample:
    call_id: str
    clip: str
    caller_ms: float | None
    """Caller side: v2v_arrival_ms - silence_ms."""
    robot_ms: float | None
    """Robot side: record v2v_ms - silence_ms."""
    hangover_ms: float | None
    """VAD hangover: the endpointer's end of speech minus the WAV's (replayed)."""
    asr_ms: float | None = None
    llm_ttft_ms: float | None = None
    tts_ttfb_ms: float | None = None

    @property
    def transport_ms(self) -> float | None:
        """caller - robot - hangover: caller audio in, robot audio out, and the robot's reading."""
        if self.caller_ms is None or self.robot_ms is None or self.hangover_ms is None:
            return None
        return round(self.caller_ms - self.robot_ms - self.hangover_ms, 1)


def pair_turns(
    calls: list[CallResult], records: dict[str, dict], vad: VadSettings
) -> tuple[list[TurnSample], int]:
    """Caller utterances matched in order with the robot's answers (turns with a v2v_ms)."""
    samples: list[TurnSample] = []
    unpaired = 0
    for call in calls:
        record = records.get(call.call_id)
        answers = [
            t for t in (record or {}).get("turns", []) if t["role"] == "robot" and t["v2v_ms"]
        ]
        utterances = [u for u in call.utterances if u.speech_end_ms is not None]
        hangovers = replay_hangover_ms(call, vad)
        if len(answers) != len(utterances):
            unpaired += len(utterances)
            answers = []
        for i, u in enumerate(utterances):
            turn = answers[i] if answers else {}
            samples.append(
                TurnSample(
                    call_id=call.call_id,
                    clip=u.source,
                    caller_ms=None if u.v2v_arrival_ms is None else u.v2v_arrival_ms - SILENCE_MS,
                    robot_ms=round(turn["v2v_ms"] - SILENCE_MS, 1) if turn else None,
                    hangover_ms=hangovers[i],
                    asr_ms=turn.get("asr_ms"),
                    llm_ttft_ms=turn.get("llm_ttft_ms"),
                    tts_ttfb_ms=turn.get("tts_ttfb_ms"),
                )
            )
    return samples, unpaired


async def _sequential_calls(url: str, steps: list[Say], count: int, parallel: int) -> list:
    results: list[CallResult] = []
    for start in range(0, count, parallel):
        batch = range(start, min(count, start + parallel))
        # keep_audio: the caller's audio is replayed through the VAD afterwards (hangover).
        results += await asyncio.gather(*(run_call(url, steps, timeout_s=300) for _ in batch))
    return results


def measure_overhead(work: Path, calls: int, turns: int, parallel: int) -> dict[str, Any]:
    clips = [OVERHEAD_CLIPS[i % len(OVERHEAD_CLIPS)] for i in range(turns)]
    steps = [Say(FIXTURES / name) for name in clips]
    # A short answer: the overhead is about the first audio, not how long the robot talks.
    robot_dir = make_robot(work, "overhead", {"llm": {"reply": "Хорошо."}})
    robot = RobotProcess(robot_dir)
    try:
        results = asyncio.run(_sequential_calls(robot.url, steps, calls, parallel))
        records = call_records(robot_dir, calls)
    finally:
        robot.stop()
    config = json.loads((robot_dir / "config.json").read_text(encoding="utf-8"))
    samples, unpaired = pair_turns(results, records, VadSettings.model_validate(config["vad"]))

    def stats(values: list[float | None]) -> dict[str, Any]:
        return pct([v for v in values if v is not None])

    caller_net = [
        None if s.caller_ms is None or s.hangover_ms is None else s.caller_ms - s.hangover_ms
        for s in samples
    ]
    per_clip: dict[str, list[TurnSample]] = {}
    for s in samples:
        per_clip.setdefault(s.clip, []).append(s)
    return {
        "calls": calls,
        "turns_per_call": turns,
        "parallel": parallel,
        "silence_ms": SILENCE_MS,
        "errors": [e for c in results for e in c.errors],
        "unanswered": sum(1 for c in results for u in c.utterances if not u.answered),
        "unpaired": unpaired,
        "robot_ms": stats([s.robot_ms for s in samples]),
        "caller_ms": stats([s.caller_ms for s in samples]),
        "hangover_ms": stats([s.hangover_ms for s in samples]),
        "caller_minus_hangover_ms": stats(caller_net),
        "transport_ms": stats([s.transport_ms for s in samples]),
        "asr_ms": stats([s.asr_ms for s in samples]),
        "llm_ttft_ms": stats([s.llm_ttft_ms for s in samples]),
        "tts_ttfb_ms": stats([s.tts_ttfb_ms for s in samples]),
        "per_clip": {
            name: {
                "hangover_ms": sorted({s.hangover_ms for s in group if s.hangover_ms is not None}),
                "robot_ms": stats([s.robot_ms for s in group]),
                "caller_ms": stats([s.caller_ms for s in group]),
            }
            for name, group in sorted(per_clip.items())
        },
        "turns": [asdict(s) for s in samples],
    }


def overhead_tables(o: dict[str, Any]) -> str:
    def row(name: str, stats: dict[str, Any]) -> list[Any]:
        return [name, stats["n"], stats["p50"], stats["p95"], stats["max"]]

    header = ["metric (ms)", "n", "p50", "p95", "max"]
    rows = [
        row("**robot side**: record v2v_ms − silence_ms", o["robot_ms"]),
        row("**caller side**: v2v_arrival_ms − silence_ms", o["caller_ms"]),
        row("VAD hangover (endpointer end − WAV speech end)", o["hangover_ms"]),
        row("caller side − VAD hangover", o["caller_minus_hangover_ms"]),
        row("caller − robot − hangover (transport)", o["transport_ms"]),
        row("asr_ms (fake, no delay)", o["asr_ms"]),
        row("llm_ttft_ms (fake, no delay)", o["llm_ttft_ms"]),
        row("tts_ttfb_ms (fake, no delay)", o["tts_ttfb_ms"]),
    ]
    per_clip = [
        [
            name,
            ", ".join(f"{v:g}" for v in c["hangover_ms"]),
            f"{cell(c['robot_ms']['p50'])} / {cell(c['robot_ms']['max'])}",
            f"{cell(c['caller_ms']['p50'])} / {cell(c['caller_ms']['max'])}",
            c["caller_ms"]["n"],
        ]
        for name, c in o["per_clip"].items()
    ]
    text = [
        f"Platform overhead: {o['calls']} calls × {o['turns_per_call']} turns "
        f"({o['parallel']} at a time), silence_ms = {o['silence_ms']}; "
        f"errors {len(o['errors'])}, unanswered {o['unanswered']}, unpaired {o['unpaired']}",
        "",
        markdown(header, rows),
        "",
        markdown(
            [
                "fixture",
                "VAD hangover ms",
                "robot side p50 / max",
                "caller side p50 / max",
                "turns",
            ],
            per_clip,
        ),
    ]
    return "\n".join(text)


# --- 2. concurrency -------------------------------------------------------------------------


def concurrency_steps(turns: int) -> list[Say]:
    return [Say(FIXTURES / CONCURRENCY_CLIPS[i % len(CONCURRENCY_CLIPS)]) for i in range(turns)]


async def _run_in_process(url: str, turns: int, n: int, ramp_s: float) -> tuple[list, list]:
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
    children = []
    for i in range(procs):
        share = n // procs + (1 if i < n % procs else 0)
        if share:
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(
                target=_child_batch, args=(url, turns, share, ramp_s, sender, go), daemon=True
            )
            child.start()
            children.append((child, receiver))
    # Children import the simulator first; the calls start together once all are ready.
    for _, receiver in children:
        receiver.recv()
    sampler = CpuSampler(
        {**sampler_pids, **{f"sim{i}": c.pid for i, (c, _) in enumerate(children)}}
    )
    sampler.start()
    started = time.monotonic()
    go.set()
    calls: list[CallResult] = []
    lags: list[float] = []
    try:
        for child, receiver in children:
            batch_calls, batch_lags = receiver.recv()
            calls += batch_calls
            lags += batch_lags
            child.join()
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
    robot_dir = make_robot(work, f"calls{n}")
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


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--overhead-calls", type=int, help="calls for the overhead (default 10)")
    parser.add_argument("--overhead-turns", type=int, help="turns per call (default 5)")
    parser.add_argument("--overhead-parallel", type=int, default=1, help="calls at a time")
    parser.add_argument("--calls", help="concurrency rows, e.g. 50,100,200,300,500")
    parser.add_argument("--turns", type=int, help="turns per concurrent call (default 3)")
    parser.add_argument("--ramp", type=float, help="seconds over which calls start (default 5)")
    parser.add_argument("--sim-procs", type=int, default=1, help="simulator processes")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the robot and the simulator (negative: ahead of other "
        "work on a shared machine; needs root)",
    )
    parser.add_argument(
        "--gc-stats", action="store_true", help="log the robot's garbage-collector pauses"
    )
    parser.add_argument("--py-spy", type=Path, help="profile the robot of each row into this dir")
    parser.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the robots' folders and logs")
    args = parser.parse_args(argv)
    quick = args.quick
    args.overhead_calls = args.overhead_calls or (3 if quick else 10)
    args.overhead_turns = args.overhead_turns or (3 if quick else 5)
    args.calls = [
        int(x) for x in (args.calls or ("50,100" if quick else "50,100,200,300,500")).split(",")
    ]
    args.turns = args.turns or (2 if quick else 3)
    args.ramp = args.ramp if args.ramp is not None else (2.0 if quick else 5.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    print(
        f"# voiceplat platform benchmark\n\nmachine: {os.cpu_count()} CPUs, load average at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; python {sys.version.split()[0]}; "
        f"nice {args.nice}\n",
        flush=True,
    )
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # the robot and the children inherit it
    work = Path(tempfile.mkdtemp(prefix="voiceplat-bench-"))
    report: dict[str, Any] = {"load_average_at_start": load, "cpus": os.cpu_count()}
    try:
        if not args.skip_overhead:
            overhead = measure_overhead(
                work, args.overhead_calls, args.overhead_turns, args.overhead_parallel
            )
            report["overhead"] = overhead
            print("## 1. Platform overhead\n\n" + overhead_tables(overhead) + "\n", flush=True)
            for error in overhead["errors"][:10]:
                print(f"ERROR: {error}")
        if not args.skip_concurrency:
            rows = []
            print(
                f"## 2. Concurrency ({args.turns} turns per call, ramp {args.ramp:g} s, "
                f"{args.sim_procs} simulator process(es))\n",
                flush=True,
            )
            for n in args.calls:
                row = measure_concurrency(
                    work, n, args.turns, args.ramp, args.sim_procs, args.py_spy, args.gc_stats
                )
                rows.append(row)
                print(f"- {n} calls done in {row.wall_s:g} s", flush=True)
                for error in row.errors[:5]:
                    print(f"  ERROR: {error}")
                if row.robot_gc is not None:
                    print(f"  robot GC pauses: {row.robot_gc}", flush=True)
            print("\n" + concurrency_table(rows) + "\n")
            report["concurrency"] = [
                {**asdict(r), "cpu_ms_per_call_s": r.cpu_ms_per_call_s, "sim_late": r.sim_late}
                for r in rows
            ]
            steady = {r.calls: (r.steady_s, r.steady) for r in rows}
            print(f"steady windows (s, all calls live): {steady}\n")
        if args.py_spy is not None:
            for path in sorted(args.py_spy.glob("robot_*.txt")):
                print("## Robot profile\n\n" + hot_spots(path) + "\n")
    finally:
        if args.keep:
            print(f"robots and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
