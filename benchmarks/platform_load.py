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
   endpointer's end of speech lies after the WAV's) is computed offline per fixture
   (platform_overhead.py).
2. Concurrency: N simultaneous multi-turn calls per row; robot CPU, jitter and underruns of the
   robot audio at the caller, v2v, and the simulator's own lag (rows where the simulator itself
   ran late are flagged: their jitter is not the robot's fault) (platform_concurrency.py).

Prints Markdown tables (and `--json PATH` writes everything); asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file: the repository root goes first on sys.path, for `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from typing import Any

from benchmarks.platform_concurrency import concurrency_table, hot_spots, measure_concurrency
from benchmarks.platform_overhead import measure_overhead, overhead_tables


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
