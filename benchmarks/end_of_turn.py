"""Premature cut-offs and end-of-turn latency, silence-only vs Smart Turn v3, on held-out Russian.

    .venv/bin/python benchmarks/end_of_turn.py [--silence 416,600,800] [--voices festival,espeak,human]
                                               [--model-ms MS] [--thresholds 0.5,0.7,0.9] [--verbose]

The set is made at run time in a temp dir (benchmarks/end_of_turn_set.py; the settings were
fixed on tests/fixtures before it was first run, not tuned on it):

- `paused`: a Russian sentence with a 400–900 ms pause in the middle ("Скажите, пожалуйста, …
  сколько стоит анализ крови?"). Festival (msu_ru_nsh_clunits) and espeak-ng (ru) read the whole
  sentence with a comma at the break, so the words before the pause carry the voice's
  continuation prosody; the pause the voice made there is stretched to a length drawn from
  400–900 ms. Debian's recorded telephone prompts (a human voice, asterisk-core-sounds-ru-wav)
  that are one sentence are split the same way at their longest inner pause.
- `complete`: the same sentences and one-sentence prompts whole.

Every clip goes through the telephone band (8 kHz, G.711 mu-law) with a faint noise floor, then
webrtcvad (aggressiveness 3) and the endpointer (voiceplat.turns.endpointer), offline:
- silence only: the turn ends after `silence_ms` of silence;
- with the model: at `check_after_ms` of silence Smart Turn is asked about the speech so far (up
  to its last frame: `model_tail_ms`); the turn ends when the answer arrives if it says complete,
  else after `unfinished_silence_ms` (EndOfTurnPolicy, default settings). The answer arrives
  after the prediction's measured time (`--model-ms` fixes it; "instant" rows: at once).

A premature cut-off: the turn ended before the speaker finished. Latency: from the end of the
last speech frame (VAD) to the end-of-turn decision, for turns not cut off. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `voiceplat` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.end_of_turn_set import HUMAN_DIR, Clip, build_set
from voiceplat.turns.end_of_turn import EndOfTurnPolicy, EndOfTurnSettings
from voiceplat.turns.endpointer import (
    Endpointer,
    EndpointerSettings,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
)
from voiceplat.turns.vad import FRAME_BYTES, make_vad

FRAME_S = 0.02


# --- running the endpointer ----------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    ended_s: float
    last_speech_s: float
    checks: list[float] = field(default_factory=list)


class Predictions:
    """Smart Turn answers per (clip, frame), shared by every setting (the model hears the same
    audio whatever the silence setting), with the time each took."""

    def __init__(self) -> None:
        from voiceplat.turns.smart_turn import SmartTurn

        self.model = SmartTurn.load()
        self.cache: dict[tuple[str, int], tuple[float, float]] = {}

    def get(self, clip: str, frame: int, audio: bytes) -> tuple[float, float]:
        """(P(complete), milliseconds the prediction took)."""
        key = (clip, frame)
        if key not in self.cache:
            started = time.perf_counter()
            probability = self.model.predict(audio)
            self.cache[key] = (probability, (time.perf_counter() - started) * 1000)
        return self.cache[key]


def run_clip(
    clip: Clip,
    silence_ms: int,
    settings: EndOfTurnSettings,
    predictions: Predictions | None,
    model_ms: float | None = None,
) -> Outcome | None:
    """Feeds the clip frame by frame; the first end of turn, or None if none came. The model's
    answer arrives `model_ms` after it is asked (None: as long as the prediction took)."""
    vad = make_vad("webrtc", aggressiveness=3)
    policy = EndOfTurnPolicy(settings, silence_ms) if predictions is not None else None
    endpointer_silence = (
        silence_ms if policy is None else max(silence_ms, settings.unfinished_silence_ms)
    )
    endpointer = Endpointer(
        EndpointerSettings(
            silence_ms=endpointer_silence,
            pause_ms=settings.check_after_ms if policy is not None else 0,
        )
    )
    probability: float | None = None
    answer_at = 0.0
    last_speech = 0.0
    checks: list[float] = []
    frames = len(clip.pcm) // FRAME_BYTES
    for index in range(frames):
        frame = clip.pcm[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]
        now = (index + 1) * FRAME_S
        for event in endpointer.push(frame, vad.is_speech(frame), now):
            if isinstance(event, SpeechEnded):
                return Outcome(now, event.ended_at, checks)
            if isinstance(event, SpeechPaused) and policy is not None and predictions is not None:
                gap_ms = (now - event.ended_at) * 1000
                heard = policy.model_audio(event.audio, gap_ms)
                probability, took_ms = predictions.get(clip.name, index, heard)
                answer_at = now + (took_ms if model_ms is None else model_ms) / 1000
                last_speech = event.ended_at
                checks.append(probability)
            if isinstance(event, SpeechResumed):
                probability = None
        if policy is not None and probability is not None and now >= answer_at:
            gap_ms = (now - last_speech) * 1000
            if endpointer.in_speech and policy.turn_ended(gap_ms, probability):
                return Outcome(now, last_speech, checks)
    return None


# --- report --------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


@dataclass(frozen=True, slots=True)
class Variant:
    label: str
    settings: EndOfTurnSettings
    model_ms: float | None = None


def evaluate(
    clips: list[Clip],
    silences: list[int],
    variants: list[Variant],
    predictions: Predictions,
    verbose: bool = False,
) -> str:
    rows = [
        "| silence_ms | end of turn | premature cut-offs, paused | premature, complete "
        "| latency p50 ms | latency p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for silence_ms in silences:
        for variant in variants:
            model = predictions if variant.settings.enabled else None
            cut = {"paused": 0, "complete": 0}
            count = {"paused": 0, "complete": 0}
            latencies: list[float] = []
            for clip in clips:
                count[clip.kind] += 1
                outcome = run_clip(clip, silence_ms, variant.settings, model, variant.model_ms)
                if outcome is None:
                    raise AssertionError(f"{clip.name}: no end of turn (clip too short?)")
                premature = outcome.ended_s < clip.speech_end_s - 0.05
                if premature:
                    cut[clip.kind] += 1
                else:
                    latencies.append((outcome.ended_s - outcome.last_speech_s) * 1000)
                if verbose and model is not None and variant is variants[1]:
                    checks = " ".join(f"{p:.2f}" for p in outcome.checks)
                    mark = "CUT" if premature else "ok "
                    print(
                        f"{mark} {silence_ms} {clip.name:34} P at pauses: {checks}", file=sys.stderr
                    )
            paused, complete = (
                f"{cut[k]}/{count[k]} ({100 * cut[k] / max(1, count[k]):.1f} %)"
                for k in ("paused", "complete")
            )
            rows.append(
                f"| {silence_ms} | {variant.label} | {paused} | {complete} "
                f"| {_pct(latencies, 50):.0f} | {_pct(latencies, 95):.0f} |"
            )
    return "\n".join(rows)


def variants(thresholds: list[float], model_ms: float | None) -> list[Variant]:
    """Silence only; Smart Turn with the default settings, its answers as slow as measured here
    (or `model_ms`), and instant (what the model decides, without its CPU time); then the
    other thresholds asked for."""
    default = EndOfTurnSettings()
    chosen = [
        Variant("silence only", EndOfTurnSettings(model="none")),
        Variant("Smart Turn v3 (defaults)", default, model_ms),
        Variant("Smart Turn v3, instant answer", default, 0.0),
    ]
    for threshold in thresholds:
        if threshold != default.complete_threshold:
            settings = default.model_copy(update={"complete_threshold": threshold})
            chosen.append(Variant(f"Smart Turn v3, threshold {threshold}", settings, model_ms))
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--silence", default="416,600,800", help="silence_ms settings to compare")
    parser.add_argument("--voices", default="festival,espeak,human")
    parser.add_argument("--model-ms", type=float, default=None, help="assume this prediction time")
    parser.add_argument(
        "--thresholds", default="0.5", help="complete_threshold values to compare (0.5: default)"
    )
    parser.add_argument("--verbose", action="store_true", help="per-clip model answers on stderr")
    args = parser.parse_args(argv)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    for voice, tool in (("festival", "text2wave"), ("espeak", "espeak-ng")):
        if voice in voices and shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/setup.sh); drop {voice} from --voices")
            return 2
    if "human" in voices and not HUMAN_DIR.is_dir():
        print(f"no {HUMAN_DIR}: apt-get install asterisk-core-sounds-ru-wav, or drop human")
        return 2
    predictions = Predictions()
    with tempfile.TemporaryDirectory(prefix="voiceplat-eot-") as workdir:
        clips = build_set(voices, Path(workdir))
    kinds = {kind: sum(c.kind == kind for c in clips) for kind in ("paused", "complete")}
    print(f"set: {kinds['paused']} paused, {kinds['complete']} complete ({', '.join(voices)})")
    silences = [int(value) for value in args.silence.split(",")]
    thresholds = [float(value) for value in args.thresholds.split(",")]
    table = evaluate(
        clips, silences, variants(thresholds, args.model_ms), predictions, args.verbose
    )
    times = [took for _, took in predictions.cache.values()]
    print(table)
    print(
        f"\nSmart Turn: {len(times)} predictions, {statistics.median(times):.0f} ms median, "
        f"{_pct(times, 95):.0f} ms p95 on this machine (one onnxruntime thread), counted in "
        "the latency except in the instant rows"
        if times
        else "\nSmart Turn: no predictions"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
