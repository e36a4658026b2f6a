"""Per-call CPU of each streaming ingress: N concurrent calls on one robot process, fake providers.

    .venv/bin/python benchmarks/ingress_load.py                      # every ingress, 100 calls
    .venv/bin/python benchmarks/ingress_load.py --calls 50 --only twilio --only audiosocket

Per ingress (mod_audio_fork first, as the baseline) a fresh `echo` robot (fake ASR/LLM/TTS that
answer at once, `vad.silence_ms` = 600) is served by `voiceplat serve` in its own process with that
ingress enabled; the simulator in this process plays the PBX's side (`voiceplat call <scheme>://`)
of `--calls` calls started over `--ramp` seconds, each: greeting, one Russian utterance, answer,
silence, hang up (~10 s). SIP is measured by `sip_load.py` (SIPp, root).

Columns: robot CPU ms per call-second = the robot process's CPU time (user + system, from the
first call's start to the last one's end) / the sum of the calls' durations (10 ms = 1 % of a core
per call); robot CPU % = one-core % while every call was live (steady window); v2v heard by the
caller (end of its speech -> first robot audio, includes the 600 ms end-of-utterance silence);
underruns of the robot's audio at the caller; the simulator's tick lag p95 (a late simulator
makes the other columns suspect; rows over 10 ms are flagged). Asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file: the repository root goes first on sys.path, for `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from benchmarks.common import (
    FIXTURES,
    CpuSampler,
    RobotProcess,
    cell,
    free_port,
    markdown,
    platform_robot,
)
from benchmarks.platform_concurrency import SIM_LATE_MS, steady_window
from voiceplat.simulator import MultiResult, Pause, Say, Step, run_calls
from voiceplat.simulator.driver import CallOptions
from voiceplat.simulator.peers.runner import run_peer_calls

PAUSE_S = 4.0
"""Silence after the answer, before the caller hangs up: with the greeting and the utterance
a call lasts ~10 s."""


@dataclass(frozen=True)
class Ingress:
    name: str
    config: Callable[[int], dict[str, Any]]
    """The robot's config overrides, given a free port for the ingress's own listener."""
    url: Callable[[str, int], str]
    """The simulator's URL, given the robot's ws://127.0.0.1:port/ and that port."""
    ready_line: str | None = None
    """A line the robot prints once the ingress listens (else: listening on its ws port)."""


def _ws(scheme: str, path: str) -> Callable[[str, int], str]:
    return lambda ws, _port: ws.replace("ws://", f"{scheme}://").rstrip("/") + path


INGRESSES = [
    Ingress("mod_audio_fork", lambda _: {}, lambda ws, _: ws),
    Ingress(
        "audiosocket",
        lambda port: {"audiosocket": {"host": "127.0.0.1", "port": port}},
        lambda _, port: f"audiosocket://127.0.0.1:{port}",
        ready_line="audiosocket: listening on",
    ),
    Ingress("asterisk_ws_slin", lambda _: {}, _ws("asterisk+ws", "/asterisk?format=slin")),
    Ingress("asterisk_ws_ulaw", lambda _: {}, _ws("asterisk+ws", "/asterisk?format=ulaw")),
    Ingress(
        "audio_stream",
        lambda port: {"audio_stream": {"esl_host": "127.0.0.1", "esl_port": port}},
        lambda ws, port: _ws("audio_stream+ws", f"/audio_stream?esl=127.0.0.1:{port}")(ws, port),
    ),
    Ingress("twilio", lambda _: {}, _ws("twilio+ws", "/twilio")),
]
NAMES = [i.name for i in INGRESSES]


@dataclass
class Row:
    ingress: str
    calls: int
    ok: int
    cpu_ms_per_call_s: float | None
    cpu_pct: float | None
    steady: bool
    sim_cpu_pct: float | None
    multi: MultiResult
    wall_s: float

    @property
    def sim_late(self) -> bool:
        return (self.multi.sim_lag_ms.p95 or 0.0) > SIM_LATE_MS


def wait_for_line(robot: RobotProcess, line: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in robot.log_path.read_text(encoding="utf-8", errors="replace"):
        if time.monotonic() > deadline or robot.proc.poll() is not None:
            raise RuntimeError(f"the robot never printed {line!r}: {robot.log_tail()}")
        time.sleep(0.1)


async def place_calls(url: str, n: int, ramp_s: float) -> MultiResult:
    steps: list[Step] = [Say(FIXTURES / "ru_hello.wav"), Pause(PAUSE_S)]
    if url.startswith("ws://"):  # mod_audio_fork: the simulator's original caller
        return await run_calls(url, list(steps), n, ramp_s=ramp_s, timeout_s=120)
    return await run_peer_calls(
        url, list(steps), n, options=CallOptions(timeout_s=120), ramp_s=ramp_s
    )


def measure(work: Path, ingress: Ingress, n: int, ramp_s: float) -> Row:
    port = free_port()
    robot_dir = platform_robot(work, f"{ingress.name}_{n}", ingress.config(port))
    with RobotProcess(robot_dir) as robot:
        if ingress.ready_line is not None:
            wait_for_line(robot, ingress.ready_line)
        url = ingress.url(robot.url, port)
        proc = psutil.Process(robot.pid)
        sampler = CpuSampler({"robot": robot.pid, "sim": os.getpid()})
        sampler.start()
        before = proc.cpu_times()
        started = time.monotonic()
        try:
            multi = asyncio.run(place_calls(url, n, ramp_s))
        finally:
            after = proc.cpu_times()
            wall = time.monotonic() - started
            sampler.stop()
    cpu_s = (after.user + after.system) - (before.user + before.system)
    call_s = sum(c.duration_ms for c in multi.calls) / 1000.0
    start, end, steady = steady_window(multi.calls)
    return Row(
        ingress=ingress.name,
        calls=n,
        ok=multi.completed,
        cpu_ms_per_call_s=round(1000.0 * cpu_s / call_s, 2) if call_s else None,
        cpu_pct=sampler.cpu_percent("robot", start, end),
        steady=steady,
        sim_cpu_pct=sampler.cpu_percent("sim", start, end),
        multi=multi,
        wall_s=round(wall, 1),
    )


def table(rows: list[Row]) -> str:
    header = [
        "ingress",
        "calls ok",
        "robot CPU ms per call·s",
        "robot CPU % of one core",
        "v2v p50 / p95 ms",
        "underruns (calls)",
        "sim lag p95 ms",
        "sim CPU %",
    ]
    body = [
        [
            r.ingress,
            f"{r.ok} / {r.calls}",
            r.cpu_ms_per_call_s,
            cell(r.cpu_pct) + ("" if r.steady else " (whole run)"),
            f"{cell(r.multi.v2v_ms.p50)} / {cell(r.multi.v2v_ms.p95)}",
            f"{r.multi.underruns} ({r.multi.calls_with_underruns})",
            cell(r.multi.sim_lag_ms.p95) + (" **SIM LATE**" if r.sim_late else ""),
            r.sim_cpu_pct,
        ]
        for r in rows
    ]
    return markdown(header, body)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="concurrent calls (default 100)")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which calls start")
    parser.add_argument(
        "--only", action="append", choices=NAMES, help="this ingress only (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the robots' folders and logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    print(
        f"# voiceplat ingress benchmark: {args.calls} calls, ramp {args.ramp:g} s\n\n"
        f"machine: {os.cpu_count()} CPUs, load average at start {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f}; python {sys.version.split()[0]}\n",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="voiceplat-ingress-"))
    rows = []
    try:
        for ingress in INGRESSES:
            if args.only and ingress.name not in args.only:
                continue
            row = measure(work, ingress, args.calls, args.ramp)
            rows.append(row)
            print(f"- {ingress.name}: {row.ok}/{row.calls} ok in {row.wall_s:g} s", flush=True)
            for error in row.multi.errors[:5]:
                print(f"  ERROR: {error}", flush=True)
    finally:
        if args.keep:
            print(f"robots and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
