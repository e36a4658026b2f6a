"""Voice-to-voice latency with the real local models, over the real protocol (prints; asserts nothing).

The shipped robots (robots/pipeline_russian, robots/pipeline_english) run in their own process on a
copy of their folder; the simulated caller speaks the telephone-band utterances of
benchmarks/data/asr/ (Russian and English), a few per call, and the call records give the parts:

    v2v = end-of-turn silence + ASR (minus what speculation hid) + LLM first sentence + TTS first audio

    python benchmarks/latency.py                      # ru + en, one call at a time
    python benchmarks/latency.py --variants           # also without speculative ASR
    python benchmarks/latency.py --concurrency 1,2,3  # calls at once, the degradation curve
    python benchmarks/latency.py --set vad.speculative_pause_ms=120   # try a setting
    python benchmarks/latency.py --halves             # ru: tuned vs held-out questions, starvation

--halves (benchmarks/latency_halves.py) runs the Russian robot on two halves of caller turns, the
tuned questions of benchmarks/data/asr/ru.tsv and the held-out ones of benchmarks/data/heldout/,
and prints v2v (caller side and robot side) and starvation inside the answers per half.
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
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks import latency_halves
from benchmarks.common import ROOT, RobotProcess, call_records, copy_robot, pct
from voiceplat.simulator import Say, run_calls

DATA = ROOT / "benchmarks" / "data" / "asr"
UTTERANCES_PER_CALL = 4


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """{"vad.silence_ms": 600, "llm": {...}} -> {"vad": {"silence_ms": 600}, "llm": {...}}."""
    tree: dict[str, Any] = {}
    for key, value in overrides.items():
        section, _, field = key.partition(".")
        if field:
            tree.setdefault(section, {})[field] = value
        else:
            tree[section] = value
    return tree


@contextmanager
def shipped_robot(name: str, overrides: dict[str, Any]) -> Iterator[tuple[RobotProcess, dict]]:
    """`voiceplat serve` on a copy of a shipped robot with config overrides (`nested`), in a
    temporary folder: the robot and its config."""
    tmp = Path(tempfile.mkdtemp(prefix="vp-latency-"))
    try:
        robot_dir = copy_robot(ROOT / "robots" / name, tmp / name, nested(overrides))
        config = json.loads((robot_dir / "config.json").read_text(encoding="utf-8"))
        # The local models take a while to load.
        with RobotProcess(robot_dir, start_timeout_s=180, stop_timeout_s=30) as robot:
            yield robot, config
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def utterances(language: str) -> list[Path]:
    lines = (DATA / f"{language}.tsv").read_text(encoding="utf-8").splitlines()
    return [DATA / line.split("\t")[0] for line in lines if line.strip()]


async def call_batches(url: str, wavs: list[Path], concurrency: int) -> tuple[list[float], int]:
    """Calls of UTTERANCES_PER_CALL utterances each, `concurrency` at a time: caller-side v2v and
    the number of calls."""
    heard: list[float] = []
    batches = [wavs[i : i + UTTERANCES_PER_CALL] for i in range(0, len(wavs), UTTERANCES_PER_CALL)]
    for start in range(0, len(batches), concurrency):
        group = batches[start : start + concurrency]
        results = await asyncio.gather(
            *(
                run_calls(url, [Say(w) for w in batch], 1, answer_timeout_s=30, timeout_s=300)
                for batch in group
            )
        )
        for result in results:
            heard += result.calls[0].v2v_ms
    return heard, len(batches)


def parts(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {
        k: [] for k in ("v2v", "asr", "llm_ttft", "first_sentence", "tts_ttfb")
    }
    for record in records:
        firsts = {
            e["data"]["turn"]: e["data"]["ms"]
            for e in record["pipeline_log"]
            if e["event"] == "first_sentence"
        }
        for turn in record["turns"]:
            if turn["role"] != "robot" or turn["v2v_ms"] is None:
                continue
            found["v2v"].append(turn["v2v_ms"])
            for key, field in (
                ("asr", "asr_ms"),
                ("llm_ttft", "llm_ttft_ms"),
                ("tts_ttfb", "tts_ttfb_ms"),
            ):
                if turn[field] is not None:
                    found[key].append(turn[field])
            if turn["idx"] in firsts:
                found["first_sentence"].append(firsts[turn["idx"]])
    return found


def silence_ms(config: dict[str, Any]) -> int:
    vad = config.get("vad", {})
    return vad.get("silence_ms") or vad.get("silence_frames", 25) * 32


async def measure(name: str, language: str, overrides: dict[str, Any], concurrency: int) -> dict:
    with shipped_robot(name, overrides) as (robot, config):
        heard, calls = await call_batches(robot.url, utterances(language), concurrency)
        found = parts(list(call_records(robot.robot, calls).values()))
        return {"heard": heard, "silence": silence_ms(config), **found}


def row(label: str, m: dict) -> str:
    med = lambda key: statistics.median(m[key]) if m[key] else None  # noqa: E731
    heard, v2v = pct(m["heard"]), pct(m["v2v"])
    return (
        f"| {label} | {len(m['heard'])} | {fmt(heard['p50'])} | {fmt(heard['p95'])} | "
        f"{m['silence']} | {fmt(med('asr'))} | {fmt(med('llm_ttft'))} | "
        f"{fmt(med('first_sentence'))} | {fmt(med('tts_ttfb'))} | {fmt(v2v['p50'])} |"
    )


VARIANTS: dict[str, dict[str, Any]] = {
    "no speculative ASR (nor prefill)": {"vad.speculative_pause_ms": 0},
    "speculation after 200 ms instead of 120": {"vad.speculative_pause_ms": 200},
    "first clause from 15 chars instead of 8": {"first_clause_min_chars": 15},
    "Qwen2.5 0.5B instead of 1.5B": {"llm.model": "qwen2.5-coder-0.5b"},
}
"""What each way to a faster answer buys: each variant turns one of them off (or swaps the model)."""

HEADER = (
    "| run | turns | v2v heard p50 | v2v heard p95 | end silence | ASR med | LLM first token med |"
    " LLM first sentence med | TTS first audio med | v2v robot-side p50 |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


async def measure_halves(
    overrides: dict[str, Any], per_half: int, settle_s: float
) -> dict[str, latency_halves.HalfRun]:
    """The Russian robot on the tuned and held-out halves (one robot process for both)."""
    sets = latency_halves.halves(per_half)
    with shipped_robot("pipeline_russian", overrides) as (robot, _config):
        calls = await latency_halves.run_halves(robot.url, sets, settle_s)
        records = call_records(robot.robot, sum(len(c) for c in calls.values()), timeout_s=60)
    return {half: latency_halves.collect(half, calls[half], records) for half in calls}


def print_halves(runs: dict[str, latency_halves.HalfRun], show: bool) -> None:
    print(latency_halves.HEADER)
    everything = latency_halves.HalfRun()
    for half, run in runs.items():
        print(latency_halves.half_row(half, run, parts(run.records)), flush=True)
        everything.samples += run.samples
        everything.records += run.records
        everything.caller_gap_source |= run.caller_gap_source
    print(latency_halves.half_row("both", everything, parts(everything.records)))
    if show:
        print()
        print(latency_halves.turn_table(runs))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", default="ru,en")
    parser.add_argument("--variants", action="store_true", help="also each of VARIANTS")
    parser.add_argument("--concurrency", default="1", help="e.g. 1,2,3: calls at once")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="config override for every run, e.g. vad.speculative_pause_ms=120 (repeatable)",
    )
    parser.add_argument(
        "--halves",
        action="store_true",
        help="Russian only: tuned vs held-out questions, v2v and starvation per half",
    )
    parser.add_argument("--per-half", type=int, default=20, help="turns per half (--halves)")
    parser.add_argument(
        "--settle",
        type=float,
        default=latency_halves.SETTLE_S,
        help="seconds of quiet the caller waits before its next utterance (--halves)",
    )
    parser.add_argument("--show", action="store_true", help="also every turn (--halves)")
    parser.add_argument("--json", type=Path, help="write every turn's figures here (--halves)")
    args = parser.parse_args()
    settings = {key: json.loads(value) for key, value in (s.split("=", 1) for s in args.set)}
    robots = {"ru": "pipeline_russian", "en": "pipeline_english"}
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(
        "all figures in ms; 'heard' = simulator: end of caller speech → first robot audio heard\n"
    )
    if args.halves:
        runs = await measure_halves(settings, args.per_half, args.settle)
        print_halves(runs, args.show)
        if args.json is not None:
            samples = [vars(s) for run in runs.values() for s in run.samples]
            args.json.write_text(json.dumps(samples, ensure_ascii=False, indent=1))
        return
    print(HEADER)
    for language in args.languages.split(","):
        for n in [int(x) for x in args.concurrency.split(",")]:
            m = await measure(robots[language], language, settings, n)
            print(row(f"{language}, {n} at once", m), flush=True)
        if args.variants:
            for label, overrides in VARIANTS.items():
                m = await measure(robots[language], language, {**settings, **overrides}, 1)
                print(row(f"{language}, {label}", m), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
