"""Premature cut-offs and end-of-turn latency, silence-only vs Smart Turn v3, on held-out Russian.

    .venv/bin/python benchmarks/end_of_turn.py [--silence 416,600,800] [--voices festival,espeak,human]
                                               [--model-ms MS] [--thresholds 0.5,0.7,0.9] [--verbose]

The set is made at run time in a temp dir (nothing here was tuned on it):

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
- with the model: at `check_after_ms` of silence Smart Turn is asked; the turn ends when its
  answer arrives if it says complete, else after `unfinished_silence_ms` (EndOfTurnPolicy,
  default settings). The answer arrives after the prediction's measured time (`--model-ms` fixes it).

A premature cut-off: the turn ended before the speaker finished. Latency: from the end of the
last speech frame (VAD) to the end-of-turn decision, for turns not cut off. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `voiceplat` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.audio.wav import read_wav
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
HUMAN_DIR = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")
HUMAN_TSV = Path(__file__).resolve().parent / "data" / "asr" / "ru_human.tsv"
LEAD_S, TAIL_S = 0.3, 2.5
NOISE_RMS = 20.0
"""A faint noise floor (about −64 dBFS), as a line has: digital silence is not what VAD hears."""

# "|" marks the pause: read with a comma there, so the voice pauses with unfinished prosody.
SENTENCES = [
    "Я хотел бы, | записаться к терапевту на среду.",
    "Скажите, пожалуйста, | сколько стоит анализ крови?",
    "Мне нужно, | перенести приём на следующую неделю.",
    "Если можно, | запишите меня на утро.",
    "У меня вопрос, | по поводу вчерашнего заказа.",
    "Подскажите, | где находится ваш офис?",
    "Я звоню, | потому что не пришла посылка.",
    "Можно мне, | поговорить с оператором?",
    "Вчера вечером, | мне списали деньги дважды.",
    "Моя дочь, | заболела и не сможет прийти.",
    "Я бы хотела, | узнать про доставку в выходные.",
    "Когда вы, | сможете перезвонить мне?",
    "Дело в том, | что я потерял свой пароль.",
    "Мы с женой, | хотим оформить страховку.",
    "Завтра утром, | я буду дома до десяти.",
    "Нельзя ли, | отменить запись на пятницу?",
    "Я уже, | третий раз звоню по этому вопросу.",
    "Посмотрите, пожалуйста, | готовы ли мои анализы.",
    "Мне кажется, | в счёте есть ошибка.",
    "А если, | я приеду после шести вечера?",
    "Хочу уточнить, | есть ли парковка рядом с клиникой.",
    "Скажите, | принимает ли врач детей.",
    "Я живу, | на другом конце города.",
    "Можно ли, | оплатить заказ при получении?",
]


@dataclass(slots=True)
class Clip:
    name: str
    kind: str  # "paused" | "complete"
    pcm: bytes  # 8 kHz int16, telephone band
    speech_end_s: float
    """Where the speaker really finished (end of the last word), on the clip's clock."""


# --- making the set ----------------------------------------------------------------------------


def _frames_rms(samples: np.ndarray, rate: int) -> np.ndarray:
    step = rate // 50
    count = len(samples) // step
    frames = samples[: count * step].astype(np.float64).reshape(count, step)
    return np.sqrt((frames**2).mean(axis=1))


def _trim(samples: np.ndarray, rate: int) -> np.ndarray:
    """The clip from its first to its last loud 20 ms frame (the voices pad with silence)."""
    rms = _frames_rms(samples, rate)
    loud = np.flatnonzero(rms > max(rms.max() * 0.02, 30))
    step = rate // 50
    return samples[loud[0] * step : (loud[-1] + 1) * step]


def _inner_pauses(samples: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """Runs of quiet frames (>= 60 ms) inside the speech, as (first, end) frame indexes."""
    rms = _frames_rms(samples, rate)
    quiet = rms < max(rms.max() * 0.03, 40)
    runs, start = [], None
    for index, is_quiet in enumerate(quiet):
        if is_quiet and start is None:
            start = index
        elif not is_quiet and start is not None:
            if index - start >= 3 and start > 0:
                runs.append((start, index))
            start = None
    return runs


def _split_at(samples: np.ndarray, rate: int, where: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The clip cut at its inner pause nearest `where` (0..1 of its length), pause removed."""
    pauses = _inner_pauses(samples, rate)
    if not pauses:
        return None
    total = len(samples) / (rate // 50)
    first, end = min(pauses, key=lambda run: abs((run[0] + run[1]) / 2 - where * total))
    step = rate // 50
    return samples[: first * step], samples[end * step :]


def _telephone(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    pcm = Pcm(samples.astype("<i2").tobytes(), rate)
    from voiceplat.audio.resample import resample

    call = resample(pcm, CALL_RATE).to_numpy().astype(np.float64)
    peak = np.abs(call).max() or 1.0
    call = call * (0.7 * 32767 / peak)  # a caller at a normal level, not clipping
    call = call + rng.normal(0.0, NOISE_RMS, len(call))
    clipped = np.clip(call, -32768, 32767).astype("<i2").tobytes()
    return np.frombuffer(ulaw_decode(ulaw_encode(clipped)), dtype="<i2")


def _silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def _clips_from(
    name: str, samples: np.ndarray, rate: int, where: float | None, rng: np.random.Generator
) -> list[Clip]:
    samples = _trim(samples, rate)
    lead, tail = _silence(LEAD_S, rate), _silence(TAIL_S, rate)
    whole = np.concatenate([lead, samples, tail])
    clips = [
        Clip(
            f"{name}/complete",
            "complete",
            _telephone(whole, rate, rng).tobytes(),
            LEAD_S + len(samples) / rate,
        )
    ]
    split = _split_at(samples, rate, where) if where is not None else None
    if split is not None:
        head, rest = split
        pause_s = float(rng.uniform(0.4, 0.9))
        paused = np.concatenate([lead, head, _silence(pause_s, rate), rest, tail])
        clips.append(
            Clip(
                f"{name}/paused{pause_s * 1000:.0f}",
                "paused",
                _telephone(paused, rate, rng).tobytes(),
                LEAD_S + (len(head) + len(rest)) / rate + pause_s,
            )
        )
    return clips


def _synth(voice: str, text: str, out: Path) -> tuple[np.ndarray, int]:
    if voice == "festival":
        text_file = out.with_suffix(".txt")
        text_file.write_text(text + "\n", encoding="utf-8")
        command = [
            "text2wave",
            "-eval",
            "(voice_msu_ru_nsh_clunits)",
            str(text_file),
            "-o",
            str(out),
        ]
    else:
        command = ["espeak-ng", "-v", "ru", "-s", "150", "-w", str(out), text]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    pcm = read_wav(out, rate=None)
    return pcm.to_numpy(), pcm.rate


def build_set(voices: list[str], workdir: Path, seed: int = 11) -> list[Clip]:
    rng = np.random.default_rng(seed)
    clips: list[Clip] = []
    for voice in (v for v in voices if v in ("festival", "espeak")):
        for index, marked in enumerate(SENTENCES):
            before, after = (part.strip() for part in marked.split("|"))
            samples, rate = _synth(voice, f"{before} {after}", workdir / f"{voice}{index}.wav")
            at = len(before) / (len(before) + len(after) + 1)
            clips += _clips_from(f"{voice}{index:02d}", samples, rate, at, rng)
    if "human" in voices:
        for name in _one_sentence_prompts():
            pcm = read_wav(HUMAN_DIR / name, rate=None)
            samples = pcm.to_numpy()
            # Split where the prompt's longest inner pause is (one sentence: it is mid-sentence).
            pauses = _inner_pauses(_trim(samples, pcm.rate), pcm.rate)
            where = None
            if pauses:
                longest = max(pauses, key=lambda run: run[1] - run[0])
                total = len(_trim(samples, pcm.rate)) / (pcm.rate // 50)
                centre = (longest[0] + longest[1]) / 2 / total
                where = centre if 0.2 <= centre <= 0.8 else None
            clips += _clips_from(f"human:{name}", samples, pcm.rate, where, rng)
    return clips


def _one_sentence_prompts() -> list[str]:
    if not HUMAN_DIR.is_dir():
        return []
    chosen = []
    for line in HUMAN_TSV.read_text(encoding="utf-8").splitlines():
        name, _, text = line.partition("\t")
        text = text.strip()
        inner = text[:-1]
        if (
            text.endswith((".", "?"))
            and not any(mark in inner for mark in ".?!…«")
            and len(text.split()) >= 4
            and (HUMAN_DIR / name).is_file()
        ):
            chosen.append(name)
    return chosen


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
