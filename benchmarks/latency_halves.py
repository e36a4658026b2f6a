"""latency.py --halves: v2v and starvation of the shipped Russian robot, tuned vs held-out questions.

Two halves of Russian caller turns on one robot process (the local models load once):

- tuned: the first `--per-half` utterances of benchmarks/data/asr/ru.tsv, the questions the
  latency work was measured and tuned on (Festival's msu_ru_nsh_clunits, the robot's own voice);
- held-out: benchmarks/data/heldout/ru.tsv (make_heldout.sh): other wording, long sentences with
  no early comma, the voice shifted in pitch and tempo.

Calls of UTTERANCES_PER_CALL utterances each, one half's call then the other's in turn (so
warm-up and machine load fall on both alike). Per half:

- v2v heard: the simulator's v2v_ms (end of the caller's speech -> the answer's first audio
  heard); v2v robot: the call records' robot turns' v2v_ms;
- starvation, robot side: the records' per-turn `starved_ms` (total silence the robot had
  nothing to send inside the turn) and `starved_max_ms` (longest), where the records have them;
- starvation, caller side: each answer turn's longest silence heard inside it (the playout ran
  dry), from the simulator report's `robot_turns` (turns found by the robot's marks) where it
  has them; else from the report's answers: the gaps between the answer pieces heard after an
  utterance and before the next one, plus the underrun gaps inside them (the "answers" source).
  The greeting is left out.

The caller waits `settle_s` of quiet before its next utterance: 2 s by default here (the
simulator's default is 0.6 s), so that a long gap inside an answer is measured as a gap rather
than taken for the answer's end and spoken over.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, pct
from voiceplat.simulator import CallResult, Say, Step, run_calls

TUNED = ROOT / "benchmarks" / "data" / "asr" / "ru.tsv"
HELDOUT = ROOT / "benchmarks" / "data" / "heldout" / "ru.tsv"
UTTERANCES_PER_CALL = 4
SETTLE_S = 2.0


def tsv_wavs(tsv: Path) -> list[Path]:
    """The WAVs a `file \\t text ...` list names, in order (next to the list)."""
    lines = tsv.read_text(encoding="utf-8").splitlines()
    return [tsv.parent / line.split("\t")[0] for line in lines if line.strip()]


def halves(per_half: int) -> dict[str, list[Path]]:
    return {"tuned": tsv_wavs(TUNED)[:per_half], "held-out": tsv_wavs(HELDOUT)[:per_half]}


@dataclass
class TurnSample:
    """One caller utterance and the robot's answer to it."""

    half: str
    wav: str
    heard_v2v: float | None
    caller_gap_max: float | None = None
    caller_gap_total: float | None = None
    robot_v2v: float | None = None
    starved_ms: float | None = None
    starved_max_ms: float | None = None
    interrupted: bool = False
    """The record says the caller's next utterance cut the answer (e.g. spoken into a gap)."""
    asr_text: str | None = None
    answer: str | None = None


@dataclass
class HalfRun:
    samples: list[TurnSample] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    caller_gap_source: set[str] = field(default_factory=set)


def interleaved(batches: dict[str, list[list[Path]]]) -> Iterable[tuple[str, list[Path]]]:
    """tuned call 0, held-out call 0, tuned call 1, ..."""
    for i in range(max(len(b) for b in batches.values())):
        for half, calls in batches.items():
            if i < len(calls):
                yield half, calls[i]


async def run_halves(url: str, sets: dict[str, list[Path]], settle_s: float) -> dict[str, Any]:
    """Places the calls; returns per half the simulator's CallResults, in order."""
    batches = {
        half: [wavs[i : i + UTTERANCES_PER_CALL] for i in range(0, len(wavs), UTTERANCES_PER_CALL)]
        for half, wavs in sets.items()
    }
    calls: dict[str, list[CallResult]] = {half: [] for half in sets}
    for half, batch in interleaved(batches):
        steps: list[Step] = [Say(w) for w in batch]
        result = await run_calls(
            url, steps, 1, answer_timeout_s=30, timeout_s=300, settle_s=settle_s
        )
        calls[half] += result.calls
    return calls


# --- the caller side ------------------------------------------------------------------------


def _number(obj: Any, name: str) -> float | None:
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return float(value) if isinstance(value, int | float) else None


def caller_gaps_from_turns(call: CallResult) -> list[tuple[float, float]] | None:
    """Per utterance (longest, total) silence inside the answer turn heard after it, from the
    report's `robot_turns` (the simulator's per-turn starvation); None when the report has none."""
    turns = getattr(call, "robot_turns", None)
    if not turns:
        return None
    by_index = {_number(t, "turn"): t for t in turns}
    gaps: list[tuple[float, float]] = []
    for i, utterance in enumerate(call.utterances):
        next_turn = getattr(utterance, "next_turn", None)  # the turn that answered it
        if next_turn is not None:
            inside = [by_index[next_turn]] if next_turn in by_index else []
        else:  # the turns that started after its speech and before the next utterance
            end = utterance.speech_end_ms if utterance.speech_end_ms is not None else 0.0
            later = call.utterances[i + 1].sent_start_ms if i + 1 < len(call.utterances) else None
            inside = [
                t
                for t in turns
                if (_number(t, "start_ms") or 0.0) >= end
                and (later is None or (_number(t, "start_ms") or 0.0) < later)
            ]
        longest = max((_number(t, "starved_max_ms") or 0.0 for t in inside), default=0.0)
        total = sum(_number(t, "starved_ms") or 0.0 for t in inside)
        gaps.append((longest, total))
    return gaps


def caller_gaps_from_answers(call: CallResult) -> list[tuple[float, float]]:
    """Per utterance (longest, total) silence heard between the answer pieces after it (the
    report splits an answer at 300 ms gaps) and in the underruns inside them (gaps < 300 ms)."""
    underrun_gaps = list(call.quality.underrun_gaps_ms)
    per_answer: dict[int, list[float]] = {}
    for answer in call.answers:  # underrun gaps are listed in time order, as the answers
        per_answer[answer.index] = underrun_gaps[: answer.underruns]
        underrun_gaps = underrun_gaps[answer.underruns :]
    gaps: list[tuple[float, float]] = []
    for i, utterance in enumerate(call.utterances):
        end = utterance.speech_end_ms if utterance.speech_end_ms is not None else 0.0
        later = call.utterances[i + 1].sent_start_ms if i + 1 < len(call.utterances) else None
        pieces = [
            a for a in call.answers if a.start_ms >= end and (later is None or a.start_ms < later)
        ]
        silences = [g for a in pieces for g in per_answer.get(a.index, [])]
        for before, after in itertools.pairwise(pieces):
            if before.end_ms is not None and not before.cut_by_kill_audio:
                silences.append(after.start_ms - before.end_ms)
        gaps.append((max(silences, default=0.0), sum(silences)))
    return gaps


def tail_silence(call: CallResult, i: int) -> float | None:
    """Silence heard from the last answer audio after utterance i to the caller's next speech
    (an answer the caller cut by speaking into a gap: the gap it heard before it spoke)."""
    if i + 1 >= len(call.utterances):
        return None
    end = call.utterances[i].speech_end_ms or 0.0
    spoke = call.utterances[i + 1].speech_start_ms
    if spoke is None:
        return None
    pieces = [a for a in call.answers if end <= a.start_ms < spoke]
    if not pieces or pieces[-1].end_ms is None or pieces[-1].cut_by_kill_audio:
        return None
    silence = spoke - pieces[-1].end_ms
    return silence if silence > 0 else None


# --- the robot side -------------------------------------------------------------------------


def answer_pairs(record: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each user turn of a call record with the robot turn that answered it (None: none)."""
    turns = record["turns"]
    pairs = []
    for i, turn in enumerate(turns):
        if turn["role"] != "user":
            continue
        reply = next((t for t in turns[i + 1 :] if t["role"] == "robot"), None)
        if reply is not None and reply["v2v_ms"] is None:
            reply = None
        pairs.append((turn, reply))
    return pairs


def collect(half: str, calls: list[CallResult], records: dict[str, dict]) -> HalfRun:
    run = HalfRun()
    for call in calls:
        from_turns = caller_gaps_from_turns(call)
        gaps = from_turns if from_turns is not None else caller_gaps_from_answers(call)
        run.caller_gap_source.add("robot_turns" if from_turns is not None else "answers")
        record = records.get(call.call_id)
        pairs = answer_pairs(record) if record else []
        if record:
            run.records.append(record)
        for i, utterance in enumerate(call.utterances):
            sample = TurnSample(half, Path(utterance.source).name, utterance.v2v_ms)
            if utterance.v2v_ms is not None:  # answered: its gaps are the answer's
                sample.caller_gap_max, sample.caller_gap_total = gaps[i]
            if i < len(pairs):
                user, robot = pairs[i]
                sample.asr_text = user["text"]
                if robot is not None:
                    sample.robot_v2v = robot["v2v_ms"]
                    sample.starved_ms = robot.get("starved_ms")
                    sample.starved_max_ms = robot.get("starved_max_ms")
                    sample.interrupted = bool(robot.get("interrupted"))
                    sample.answer = robot["text"]
            tail = tail_silence(call, i) if sample.interrupted else None
            if tail is not None and sample.caller_gap_max is not None:
                sample.caller_gap_max = max(sample.caller_gap_max, tail)
                sample.caller_gap_total = (sample.caller_gap_total or 0.0) + tail
            run.samples.append(sample)
    return run


# --- tables ---------------------------------------------------------------------------------


def _f(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _values(samples: list[TurnSample], name: str) -> list[float]:
    return [v for s in samples if (v := getattr(s, name)) is not None]


def _p50_p95(values: list[float]) -> str:
    stats = pct(values)
    return f"{_f(stats['p50'])} / {_f(stats['p95'])}"


def _p95_max(values: list[float]) -> str:
    stats = pct(values)
    return f"{_f(stats['p95'])} / {_f(stats['max'])}" if values else "-"


HEADER = (
    "| half | turns | no answer | cut by the caller | v2v heard p50 / p95 | v2v robot p50 / p95 |"
    " starved robot p95 / max | longest gap robot p95 / max | longest gap heard p95 / max |"
    " ASR med | LLM first token med | LLM first sentence med | TTS first audio med |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def half_row(label: str, run: HalfRun, parts: dict[str, list[float]]) -> str:
    samples = run.samples
    med = lambda key: statistics.median(parts[key]) if parts[key] else None  # noqa: E731
    source = "+".join(sorted(run.caller_gap_source))
    heard_gap = _p95_max(_values(samples, "caller_gap_max"))
    return (
        f"| {label} | {len(samples)} | {sum(1 for s in samples if s.heard_v2v is None)} | "
        f"{sum(1 for s in samples if s.interrupted)} | "
        f"{_p50_p95(_values(samples, 'heard_v2v'))} | {_p50_p95(_values(samples, 'robot_v2v'))} | "
        f"{_p95_max(_values(samples, 'starved_ms'))} | "
        f"{_p95_max(_values(samples, 'starved_max_ms'))} | {heard_gap} ({source}) | "
        f"{_f(med('asr'))} | {_f(med('llm_ttft'))} | {_f(med('first_sentence'))} | "
        f"{_f(med('tts_ttfb'))} |"
    )


def turn_table(runs: dict[str, HalfRun]) -> str:
    lines = [
        "| half | wav | heard as | v2v heard | v2v robot | longest gap heard | starved robot |"
        " cut | answer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs.values():
        for s in run.samples:
            lines.append(
                f"| {s.half} | {s.wav} | {s.asr_text or '-'} | {_f(s.heard_v2v)} | "
                f"{_f(s.robot_v2v)} | {_f(s.caller_gap_max)} | {_f(s.starved_ms)} | "
                f"{'yes' if s.interrupted else ''} | "
                f"{(s.answer or '-').replace('|', '/')} |"
            )
    return "\n".join(lines)
