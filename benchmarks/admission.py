"""Admission control under overload with the real local models (prints; asserts nothing).

    python benchmarks/admission.py                                   # levels 1,2,4,8
    python benchmarks/admission.py --levels 1,2,4,8 --turns 2 --max-calls 3
    python benchmarks/admission.py --levels 4 --no-admission         # the same load, all taken

robots/pipeline_russian (faster-whisper, llama.cpp Qwen 1.5B, Festival) runs in its own process
(`voiceplat serve`) with `admission` set from the options; for each level N, N simulated callers
dial at once (spread over `--ramp` s) and each says `--turns` utterances of
benchmarks/data/asr/ru.tsv. Per level it prints the calls admitted and refused (the call records'
end_reason "refused"), the voice-to-voice latency the admitted callers heard (end of their speech
-> first robot audio, fillers included: that is what the caller hears), its p50/p95, and the
fillers the robot said (record events) and how many of them opened an answer (before its first
words). One uncounted call warms the robot up first; the after-call summaries are off unless
`--summaries` (on the local LLM they queue with the calls' answers).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file: the repository root goes first on sys.path, for `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import ROOT, RobotProcess, call_records, copy_robot, markdown, pct
from voiceplat.simulator import Say, run_calls
from voiceplat.simulator.report import CallResult

DATA = ROOT / "benchmarks" / "data" / "asr"
GOAL_P95_MS = 2500


@dataclass
class Level:
    callers: int
    admitted: int = 0
    refused: int = 0
    heard_v2v: list[float] = field(default_factory=list)
    fillers: int = 0
    opening_fillers: int = 0
    answers_missing: int = 0
    """Utterances of admitted calls that got no answer within the simulator's timeout."""
    errors: list[str] = field(default_factory=list)

    def row(self) -> list[Any]:
        v2v = pct(self.heard_v2v)
        p95 = v2v["p95"]
        goal = "-" if p95 is None else ("yes" if p95 <= GOAL_P95_MS else "no")
        return [
            self.callers,
            self.admitted,
            self.refused,
            v2v["n"],
            v2v["p50"],
            p95,
            goal,
            self.fillers,
            self.opening_fillers,
            self.answers_missing,
        ]


HEADER = [
    "callers at once",
    "admitted",
    "refused",
    "answers",
    "v2v p50 ms",
    "v2v p95 ms",
    f"p95 <= {GOAL_P95_MS}",
    "fillers",
    "of them before the answer",
    "unanswered",
]


def utterances() -> list[Path]:
    lines = (DATA / "ru.tsv").read_text(encoding="utf-8").splitlines()
    return [DATA / line.split("\t")[0] for line in lines if line.strip()]


async def one_call(url: str, wavs: list[Path], delay_s: float) -> CallResult:
    await asyncio.sleep(delay_s)  # the ramp: callers do not all dial in the same millisecond
    result = await run_calls(url, [Say(w) for w in wavs], 1, answer_timeout_s=30, timeout_s=300)
    return result.calls[0]


def fillers_of(record: dict[str, Any]) -> tuple[int, int]:
    """(fillers said, of them before the answer's first words) from a call record."""
    fillers = [e for e in record["pipeline_log"] if e["event"] == "filler"]
    return len(fillers), sum(1 for e in fillers if e["data"].get("opening"))


async def run_level(robot: RobotProcess, n: int, turns: int, ramp_s: float, offset: int) -> Level:
    wavs = utterances()
    scripts = [[wavs[(offset + i * turns + k) % len(wavs)] for k in range(turns)] for i in range(n)]
    calls = await asyncio.gather(
        *(one_call(robot.url, s, ramp_s * i / max(1, n)) for i, s in enumerate(scripts))
    )
    level = Level(n)
    return _collect(level, robot, list(calls))


def _collect(level: Level, robot: RobotProcess, calls: list[CallResult]) -> Level:
    found = records_of(robot, {c.call_id for c in calls})
    for call in calls:
        record = found.get(call.call_id)
        if record is None:
            level.errors.append(f"call {call.call_id}: no final record within the timeout")
            continue
        if record["call"]["end_reason"] == "refused":
            level.refused += 1
            continue
        level.admitted += 1
        level.heard_v2v += call.v2v_ms
        level.answers_missing += sum(1 for u in call.utterances if not u.answered)
        level.errors += call.errors
        said, opening = fillers_of(record)
        level.fillers += said
        level.opening_fillers += opening
    return level


def records_of(robot: RobotProcess, ids: set[str], timeout_s: float = 120.0) -> dict[str, dict]:
    """The final records of these calls (the JSON sink writes them in its own time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = call_records(robot.robot, 0, timeout_s=0)
        final = {
            k: r for k, r in records.items() if k in ids and r["call"]["status"] != "in_progress"
        }
        if len(final) == len(ids) or time.monotonic() > deadline:
            return final
        time.sleep(0.5)


def wait_queues_empty(robot: RobotProcess, timeout_s: float = 180.0) -> None:
    """Until the robot's model queues are empty (the last level's jobs finished): each level
    starts on an idle robot. Reads its /metrics (voiceplat_model_queue_depth)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{robot.port}/metrics", timeout=10) as page:
            text = page.read().decode()
        depths = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("voiceplat_model_queue_depth{")
        ]
        if not any(depths):
            return
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,2,4,8", help="callers at once, e.g. 1,2,4,8")
    parser.add_argument("--turns", type=int, default=2, help="utterances per call")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which callers dial")
    parser.add_argument("--max-calls", type=int, default=3, help="admission.max_calls")
    parser.add_argument(
        "--max-queue-wait-ms", type=int, default=1500, help="admission.max_queue_wait_ms"
    )
    parser.add_argument("--filler-after-ms", type=int, default=2500)
    parser.add_argument("--no-admission", action="store_true", help="take every call")
    parser.add_argument(
        "--summaries",
        action="store_true",
        help="keep the after-call summaries (they run on the same local LLM once no call is up, "
        "and a call that comes meanwhile waits behind one: the first level's figures then "
        "measure that)",
    )
    parser.add_argument(
        "--robot",
        type=Path,
        default=ROOT / "robots" / "pipeline_russian",
        help="robot folder (a fake-provider one makes a smoke run of the script)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the robot's folder and logs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    settings: dict[str, Any] = {"filler_after_ms": args.filler_after_ms}
    if not args.no_admission:
        settings |= {"max_calls": args.max_calls, "max_queue_wait_ms": args.max_queue_wait_ms}
    load = os.getloadavg()
    print(
        f"# admission control, {args.robot.name}\n\nmachine: {os.cpu_count()} CPUs, load "
        f"average at start {load[0]:.2f}; admission {json.dumps(settings)}; {args.turns} turns "
        f"per call, ramp {args.ramp:g} s\n",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="vp-admission-"))
    levels: list[Level] = []
    try:
        robot_dir = copy_robot(
            args.robot,
            tmp / args.robot.name,
            {"ws_host": "127.0.0.1", "admission": settings},
            {} if args.summaries else {"reports": {"summary": {"enabled": False}}},
        )
        with RobotProcess(robot_dir, start_timeout_s=300, stop_timeout_s=60) as robot:
            # One call first, not counted: the first answers after a start evaluate the whole
            # system prompt and warm the models' caches (seconds, not what load does).
            wait_queues_empty(robot)
            asyncio.run(run_level(robot, 1, 1, 0.0, len(utterances()) - 1))
            offset = 0
            for n in [int(x) for x in args.levels.split(",")]:
                wait_queues_empty(robot)
                level = asyncio.run(run_level(robot, n, args.turns, args.ramp, offset))
                offset += n * args.turns
                levels.append(level)
                print(f"- {n} at once: {level.row()}", flush=True)
                for error in level.errors[:3]:
                    print(f"  ERROR: {error}", flush=True)
    finally:
        if args.keep:
            print(f"robot and call records kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\n" + markdown(HEADER, [level.row() for level in levels]) + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps([vars(level) for level in levels], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
