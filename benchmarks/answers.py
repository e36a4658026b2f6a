"""Answer quality of a robot's text path: the clinic evaluation set through the same prompt,
retrieval, tools and forms a call uses, judged by the facts each answer must and must not hold.

    .venv/bin/python benchmarks/answers.py [--robot robots/pipeline_russian]
        [--data benchmarks/data/answers/clinic.jsonl] [--half tune|heldout|fresh] [--limit N]
        [--no-grounding | --compare] [--show] [--json out.json]

Each case starts a fresh dialog (its `history`, if any, seeded first), says the caller's words
and judges the reply with `benchmarks/answer_judge.py`; numbers are checked against those the
robot's knowledge files and prompt say (a number in neither is an invented fact). Prints, per
half and category: correct %, invented %, tool right %, FAQ answers spoken directly, and the
latency to the first clause (p50/p95 ms). `--no-grounding` runs without the knowledge passages
(the prompt alone), `--compare` runs both, so the gain is visible. `--show` prints each case the
robot got wrong with its reply and why. Asserts nothing; tests/unit/test_answer_judge.py tests
the judge. The set's `heldout` half was written without looking at any model's answers: do not
tune prompts or knowledge on it. `clinic_fresh.jsonl` (half `fresh`, balanced like the other two) is
a second such set, written later and blind too: `--data benchmarks/data/answers/clinic_fresh.jsonl`.

The text path is `voiceplat.dialog.text_dialog.TextDialog` (webhooks answered by its dry-run
stand-in, so a case judges which tool the robot chose, not a CRM): the robot is loaded once and
each case gets a new `TextDialog(robot, grounding=...)` (its own history, which starts with the
greeting, and its own form state); a case's `history` is the turns after the greeting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `voiceplat` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.answer_judge import CATEGORIES, HALVES, Case, Verdict, judge, load_cases, numbers
from benchmarks.common import ROOT, markdown, pct

if TYPE_CHECKING:
    from voiceplat.dialog.text_dialog import TextDialog

DEFAULT_ROBOT = ROOT / "robots" / "pipeline_russian"
DEFAULT_DATA = ROOT / "benchmarks" / "data" / "answers" / "clinic.jsonl"
KNOWLEDGE_GLOBS = ("knowledge.md", "knowledge/*.md", "knowledge/*.txt", "prompt.txt")
"""Where the facts a reply may state live (the knowledge settings' default files and the prompt)."""


@dataclass
class Outcome:
    id: str
    half: str
    category: str
    grounding: bool
    say: str
    reply: str
    actions: list[str]
    direct: bool
    first_clause_ms: float | None
    answer_clause_ms: float | None
    wall_ms: float
    correct: bool
    invented: bool
    tool_right: bool
    missing: list[str]
    claimed: list[str]


def known_numbers(robot_dir: Path) -> set[str]:
    """Every number the robot's knowledge files and prompt say."""
    found: set[str] = set()
    for pattern in KNOWLEDGE_GLOBS:
        for path in sorted(robot_dir.glob(pattern)):
            found |= numbers(path.read_text(encoding="utf-8"))
    return found


def form_tool(dialog: TextDialog) -> str | None:
    """The tool the robot's booking form fills (None: no form)."""
    form = getattr(dialog.robot.config, "form", None)
    return getattr(form, "tool", None)


async def run_cases(
    robot_dir: Path, cases: Sequence[Case], groundings: Sequence[bool], show: bool
) -> list[Outcome]:
    """Every case once per grounding mode, on one loaded robot."""
    # Imported here so the judge and --help work without the models.
    from voiceplat.dialog.text_dialog import TextDialog

    allowed = known_numbers(robot_dir)
    outcomes: list[Outcome] = []
    first = await TextDialog.open(robot_dir, grounding=groundings[0])
    try:
        booking_tool = form_tool(first)
        for grounding in groundings:
            print(f"{len(cases)} cases, grounding {_on(grounding)}", file=sys.stderr)
            for case in cases:
                dialog = TextDialog(first.robot, grounding=grounding)
                if case.history:
                    dialog.seed(list(case.history))
                started = time.perf_counter()
                reply = await dialog.say(case.say)
                wall_ms = (time.perf_counter() - started) * 1000
                verdict = judge(case, reply, known_numbers=allowed, form_tool=booking_tool)
                outcome = _outcome(case, grounding, reply, verdict, wall_ms)
                outcomes.append(outcome)
                mark = "ok " if verdict.correct else "BAD"
                print(f"  {mark} {case.id}: {outcome.reply[:90]!r}", file=sys.stderr, flush=True)
                if show and not verdict.correct:
                    _show(outcome)
    finally:
        await first.close()
    return outcomes


def _on(grounding: bool) -> str:
    return "on" if grounding else "off"


def _outcome(case: Case, grounding: bool, reply: Any, verdict: Verdict, wall_ms: float) -> Outcome:
    first = getattr(reply, "first_clause_ms", None)
    own = getattr(reply, "answer_clause_ms", first)
    return Outcome(
        id=case.id,
        half=case.half,
        category=case.category,
        grounding=grounding,
        say=case.say,
        reply=str(getattr(reply, "text", reply) or ""),
        actions=verdict.actions,
        direct=bool(getattr(reply, "direct", False)),
        first_clause_ms=None if first is None else float(first),
        answer_clause_ms=None if own is None else float(own),
        wall_ms=round(wall_ms, 1),
        correct=verdict.correct,
        invented=verdict.invented,
        tool_right=verdict.tool_right,
        missing=verdict.missing,
        claimed=verdict.claimed,
    )


def _show(outcome: Outcome) -> None:
    print(f"      said:    {outcome.say}", file=sys.stderr)
    print(f"      reply:   {outcome.reply}", file=sys.stderr)
    print(f"      actions: {outcome.actions or '-'}", file=sys.stderr)
    if outcome.missing:
        print(f"      missing: {outcome.missing}", file=sys.stderr)
    if outcome.claimed:
        print(f"      claimed: {outcome.claimed}", file=sys.stderr)


def _share(flags: list[bool]) -> float | None:
    return round(100 * sum(flags) / len(flags), 1) if flags else None


def summary_rows(outcomes: Sequence[Outcome]) -> list[list[Any]]:
    """One row per half and category, a row per half and one for everything."""
    groups: list[tuple[str, str, list[Outcome]]] = []
    for half in HALVES:
        in_half = [o for o in outcomes if o.half == half]
        for category in CATEGORIES:
            group = [o for o in in_half if o.category == category]
            if group:
                groups.append((half, category, group))
        if in_half:
            groups.append((half, "all", in_half))
    if outcomes:
        groups.append(("both", "all", list(outcomes)))
    rows = []
    for half, category, group in groups:
        latency = pct([o.first_clause_ms for o in group if o.first_clause_ms is not None])
        own = pct([o.answer_clause_ms for o in group if o.answer_clause_ms is not None])
        rows.append(
            [
                half,
                category,
                len(group),
                _share([o.correct for o in group]),
                _share([o.invented for o in group]),
                _share([o.tool_right for o in group]),
                sum(o.direct for o in group),
                latency["p50"],
                latency["p95"],
                own["p50"],
                own["p95"],
            ]
        )
    return rows


HEADER = [
    "half",
    "category",
    "n",
    "correct %",
    "invented %",
    "tool right %",
    "direct",
    "first words p50 ms",
    "p95 ms",
    "answer's first clause p50 ms",
    "p95 ms",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--robot", type=Path, default=DEFAULT_ROBOT)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--half", choices=HALVES)
    parser.add_argument("--limit", type=int, help="at most N cases (after --half)")
    grounding = parser.add_mutually_exclusive_group()
    grounding.add_argument("--no-grounding", action="store_true", help="the prompt alone")
    grounding.add_argument("--compare", action="store_true", help="with and without grounding")
    parser.add_argument("--show", action="store_true", help="print each wrong answer and why")
    parser.add_argument("--json", type=Path, help="write every case's outcome here")
    args = parser.parse_args(argv)

    cases = load_cases(args.data)
    if args.half:
        cases = [c for c in cases if c.half == args.half]
    if args.limit is not None:
        cases = cases[: args.limit]
    modes = [True, False] if args.compare else [not args.no_grounding]

    results = asyncio.run(run_cases(args.robot, cases, modes, args.show))
    for mode in modes:
        print(f"\n### grounding {_on(mode)} ({args.robot.name}, {len(cases)} cases)\n")
        print(markdown(HEADER, summary_rows([o for o in results if o.grounding == mode])))
    if args.json:
        args.json.write_text(
            json.dumps([asdict(o) for o in results], ensure_ascii=False, indent=1), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
