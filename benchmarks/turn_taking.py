"""Turn-taking over the real protocol: false barge-ins, resumes, talk-over, noise answered,
starvation inside the robot's turns (prints a Markdown table; asserts nothing).

A robot (default: the shipped robots/pipeline_russian with its local models) runs in its own
process on a copy of its folder; the simulated caller asks questions (benchmarks/data/asr/ru_*)
and, over each answer, `--offset` s after it starts, says one burst:

- backchannels (tests/fixtures/ru_aga, ru_ugu, ru_da, ru_mm, ru_nu) and noises (cough, click,
  noise_burst): a *false barge-in* is the robot's audio cut (killAudio) and not resumed, or the
  robot answering the burst (a new robot turn before the caller's next question); a *resume* is
  the cut turn heard again (its marks `t{idx}s{n}`);
- a real interruption (ru_wait, "Подождите, подождите."): talk-over = caller speech start ->
  the end of the robot's audio as heard (killAudio), p50/p95;
- noises in silence (after the answer has played): answered or not;

and starvation: per robot turn, the longest silence heard inside it where the playout ran dry
(simulator's `robot_turns`), p50/p95/max over all turns.

    python benchmarks/turn_taking.py                      # the shipped Russian robot
    python benchmarks/turn_taking.py --echo-robot --answers 1 --quiet 1.5   # smoke, fake models
    python benchmarks/turn_taking.py --echo-db -20        # with the robot's echo on the line
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file: the repository root goes first on sys.path, for `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import FIXTURES, ROOT, RobotProcess, copy_robot, echo_robot, markdown, pct
from voiceplat.simulator import BargeIn, CallResult, Say, Step, WaitQuiet, run_call
from voiceplat.simulator.report import UtteranceReport

QUESTIONS = sorted((ROOT / "benchmarks" / "data" / "asr").glob("ru_*.wav"))
BACKCHANNELS = ["ru_aga", "ru_ugu", "ru_da", "ru_mm", "ru_nu"]
NOISES = ["cough", "click", "noise_burst"]
INTERRUPTION = "ru_wait"
ECHO_SMOKE: dict[str, Any] = {
    # A long answer to talk over, for every question; the fake ASR hears the same text always.
    "llm": {
        "provider": "fake",
        "reply": "Конечно. Мы работаем с девяти до шести, по субботам до трёх. "
        "Записаться можно по телефону или на сайте. Что-нибудь ещё?",
    },
    "tts": {"provider": "fake", "ms_per_char": 60},
}


@dataclass
class Row:
    """One burst's trials over the robot's answers."""

    burst: str
    trials: int = 0
    over_robot: int = 0
    cut: int = 0
    resumed: int = 0
    answered: int = 0
    false_barge_ins: int = 0
    resume_ms: list[float] = field(default_factory=list)
    talk_over_ms: list[float] = field(default_factory=list)


def wav(name: str) -> Path:
    return FIXTURES / f"{name}.wav"


def answered_before_next(call: CallResult, u: UtteranceReport) -> bool:
    """A robot turn not heard before `u` began after it, before the caller's next utterance."""
    if u.next_turn_start_ms is None:
        return False
    later = [x.speech_start_ms for x in call.utterances[u.index + 1 :] if x.speech_start_ms]
    return not later or u.next_turn_start_ms < later[0]


def over_answers_script(bursts: list[str], answers: int, offset: float, quiet: float) -> list[Step]:
    steps: list[Step] = [WaitQuiet(quiet)]  # the greeting
    questions = iter(QUESTIONS * (1 + len(bursts) * answers // max(1, len(QUESTIONS))))
    for _ in range(answers):
        for burst in bursts:
            steps += [Say(next(questions)), BargeIn(wav(burst), after_s=offset), WaitQuiet(quiet)]
    return steps


def in_silence_script(noises: list[str], answers: int, quiet: float) -> list[Step]:
    steps: list[Step] = [WaitQuiet(quiet)]
    for i in range(answers):
        for noise in noises:
            steps += [Say(QUESTIONS[i % len(QUESTIONS)]), Say(wav(noise)), WaitQuiet(quiet)]
    return steps


def score_over(call: CallResult, rows: dict[str, Row]) -> None:
    for u in call.utterances:
        if u.kind != "barge_in":
            continue
        row = rows.setdefault(Path(u.source).stem, Row(Path(u.source).stem))
        row.trials += 1
        if not u.robot_talking_at_start:
            continue  # the robot had finished (or not begun): no overlap to judge
        row.over_robot += 1
        answered = answered_before_next(call, u)
        row.cut += bool(u.kill_audio)
        row.resumed += bool(u.resumed)
        row.answered += answered
        if u.resume_after_ms is not None:
            row.resume_ms.append(u.resume_after_ms)
        if (u.kill_audio and not u.resumed) or answered:
            row.false_barge_ins += 1
        if u.kill_audio and u.talk_over_ms is not None:
            row.talk_over_ms.append(u.talk_over_ms)


def score_silence(call: CallResult, rows: dict[str, Row]) -> None:
    for u in call.utterances:
        stem = Path(u.source).stem
        if u.kind != "say" or stem not in NOISES:
            continue
        row = rows.setdefault(stem, Row(stem))
        row.trials += 1
        row.answered += answered_before_next(call, u)


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "answer_timeout_s": args.answer_timeout,
        "timeout_s": args.call_timeout,
        "echo_db": args.echo_db,
        "echo_ms": args.echo_ms,
    }
    calls: list[CallResult] = []
    over: dict[str, Row] = {}
    interrupt: dict[str, Row] = {}
    silence: dict[str, Row] = {}
    plans = [
        (
            "over answers",
            over_answers_script(BACKCHANNELS + NOISES, args.answers, args.offset, args.quiet),
            over,
        ),
        (
            "interruptions",
            over_answers_script([INTERRUPTION], args.answers * 2, args.offset, args.quiet),
            interrupt,
        ),
        ("noise in silence", in_silence_script(NOISES, args.answers, args.quiet), silence),
    ]
    for name, steps, rows in plans:
        print(f"{name}: {len(steps)} steps ...", file=sys.stderr, flush=True)
        call = await run_call(url, steps, **options)
        calls.append(call)
        for problem in call.errors + call.warnings:
            print(f"  {name}: {problem}", file=sys.stderr)
        (score_silence if rows is silence else score_over)(call, rows)
    turns = [t for c in calls for t in c.robot_turns]
    return {
        "over": list(over.values()),
        "interrupt": interrupt.get(INTERRUPTION, Row(INTERRUPTION)),
        "silence": list(silence.values()),
        "starvation": pct([t.starved_max_ms for t in turns]),
        "starved_total": pct([t.starved_ms for t in turns]),
        "calls": calls,
    }


def report(results: dict[str, Any]) -> str:
    over: list[Row] = results["over"]
    rows = [[r.burst, r.over_robot, r.cut, r.resumed, r.answered, r.false_barge_ins] for r in over]
    total = [
        sum(getattr(r, f) for r in over)
        for f in ("over_robot", "cut", "resumed", "answered", "false_barge_ins")
    ]
    rows.append(["**all**", *total])
    parts = [
        "Bursts over the robot's answers (false barge-in: cut and not resumed, or answered):",
        "",
        markdown(
            ["burst", "over the robot", "cut", "resumed", "answered", "false barge-ins"], rows
        ),
    ]
    resume = pct([ms for r in over for ms in r.resume_ms])
    parts += [
        "",
        f"resume after the cut, ms: p50 {resume['p50']} / max {resume['max']} (n={resume['n']})",
    ]
    stop: Row = results["interrupt"]
    talk = pct(stop.talk_over_ms)
    silence: list[Row] = results["silence"]
    starvation = results["starvation"]
    summary = [
        ["real interruptions stopped", f"{stop.cut} / {stop.over_robot}"],
        ["talk-over ms p50 / p95 (stopped ones)", f"{talk['p50']} / {talk['p95']}"],
        [
            "noise in silence answered",
            f"{sum(r.answered for r in silence)} / {sum(r.trials for r in silence)}",
        ],
        ["robot turns", starvation["n"]],
        [
            "starvation per turn (longest gap) ms p50 / p95 / max",
            f"{starvation['p50']} / {starvation['p95']} / {starvation['max']}",
        ],
    ]
    parts += ["", markdown(["measure", "value"], summary)]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--robot", default="pipeline_russian", help="a robot under robots/ (or a folder)"
    )
    parser.add_argument(
        "--echo-robot", action="store_true", help="the test robot with fake models (smoke)"
    )
    parser.add_argument("--answers", type=int, default=3, help="answers per burst (default 3)")
    parser.add_argument(
        "--offset", type=float, default=1.0, help="burst this long into the answer (s)"
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=3.5,
        help="quiet that ends a trial (s): longer than the robot's v2v",
    )
    parser.add_argument("--answer-timeout", type=float, default=30.0)
    parser.add_argument("--call-timeout", type=float, default=1800.0)
    parser.add_argument("--echo-db", type=float, default=None, help="mix the robot's echo in (dB)")
    parser.add_argument("--echo-ms", type=float, default=120.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the robot's folder and records")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vp-turns-"))
    try:
        if args.echo_robot:
            robot_dir = echo_robot(tmp / "echo", ECHO_SMOKE)
        else:
            source = Path(args.robot) if Path(args.robot).is_dir() else ROOT / "robots" / args.robot
            # One long call per group: it must not meet the robot's max_call_s goodbye.
            robot_dir = copy_robot(source, tmp / source.name, {"max_call_s": 7200})
        with RobotProcess(robot_dir, start_timeout_s=180, stop_timeout_s=30) as robot:
            results = asyncio.run(run(args, robot.url))
    finally:
        if args.keep:
            print(f"robot folder and call records kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(results))
    if args.json is not None:
        figures = {k: v for k, v in results.items() if k != "calls"}
        args.json.write_text(
            json.dumps(figures, default=lambda o: o.__dict__, ensure_ascii=False, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
