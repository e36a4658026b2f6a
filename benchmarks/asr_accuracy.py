"""ASR accuracy on telephone-band speech: WER per language, short-window path vs 30 s path.

    .venv/bin/python benchmarks/asr_accuracy.py [--model base] [--lang ru en] [--show]

The sets are benchmarks/data/asr/{ru,en,ru_human}.tsv (file \\t reference): `ru` and `en` are
8 kHz WAVs synthesised by benchmarks/data/asr/make_asr_data.sh (Festival Russian, espeak-ng
English); `ru_human` is a person's recorded Russian telephone prompts from Debian's
asterisk-core-sounds-ru-wav (8 kHz; see make_ru_human.py), read where the package installs them.
Each clip goes through G.711 mu-law (encode + decode) before recognition, as a phone call would
deliver it.
Prints a table; asserts nothing. The e2e tests reuse `load_set`, `telephone` and `word_error_rate`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.audio.wav import read_wav

DATA = Path(__file__).resolve().parent / "data" / "asr"
HUMAN_RU = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")
HUMAN_RU_PACKAGES = "asterisk-core-sounds-ru asterisk-core-sounds-ru-wav"
LANGUAGES = {"ru": "ru-RU", "ru_human": "ru-RU", "en": "en-US"}
"""Sets: `ru` (Festival), `ru_human` (a person's recorded telephone prompts), `en` (espeak-ng)."""
AUDIO_DIRS = {"ru_human": HUMAN_RU}


@dataclass(frozen=True, slots=True)
class Utterance:
    path: Path
    reference: str
    language: str


def load_set(lang: str) -> list[Utterance]:
    lines = (DATA / f"{lang}.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t", 1) for line in lines if line.strip()]
    audio = AUDIO_DIRS.get(lang, DATA)
    return [Utterance(audio / name, text, LANGUAGES[lang]) for name, text in rows]


def missing_audio(lang: str) -> str | None:
    """Why a set cannot run here (its audio comes from a Debian package), or None."""
    directory = AUDIO_DIRS.get(lang)
    if directory is None or directory.is_dir():
        return None
    return f"set {lang}: no {directory}; apt-get install {HUMAN_RU_PACKAGES}"


def telephone(path: Path) -> Pcm:
    """The clip as a call delivers it: 8 kHz, through G.711 mu-law."""
    pcm = read_wav(path, CALL_RATE)
    return Pcm(ulaw_decode(ulaw_encode(pcm.data)), CALL_RATE)


def normalize_words(text: str) -> list[str]:
    """Lower case, ё -> е, punctuation dropped (hyphens split words), Russian numbers in words
    (Whisper writes "нажмите 0" for "нажмите ноль"): what WER compares."""
    if re.search("[а-яё]", text, re.IGNORECASE) and re.search(r"\d", text):
        from voiceplat.providers.tts.normalize_ru import expand

        text = re.sub(r"\d+", lambda number: f" {expand(number.group())} ", text)
    text = text.lower().replace("ё", "е")
    return re.findall(r"[\w']+", text.replace("-", " "))


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1]


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: total word edits over total reference words."""
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref_words = normalize_words(reference)
        errors += edit_distance(ref_words, normalize_words(hypothesis))
        words += len(ref_words)
    return errors / max(words, 1)


@dataclass(frozen=True, slots=True)
class Run:
    hypotheses: list[str]
    ms: list[float]
    paths: list[str]


async def recognize(asr, utterances: list[Utterance]) -> Run:
    hypotheses, ms, paths = [], [], []
    for utterance in utterances:
        audio = telephone(utterance.path)
        started = time.perf_counter()
        transcript = await asr.transcribe(audio, utterance.language)
        ms.append((time.perf_counter() - started) * 1000)
        hypotheses.append(transcript.text)
        paths.append(str(transcript.details.get("path", "?")))
    return Run(hypotheses, ms, paths)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="base", help="faster_whisper `model` setting")
    parser.add_argument("--lang", nargs="+", default=list(LANGUAGES), choices=list(LANGUAGES))
    parser.add_argument("--show", action="store_true", help="print every hypothesis")
    args = parser.parse_args(argv)

    from voiceplat.providers.asr.faster_whisper import FasterWhisperASR, FasterWhisperSettings

    providers = {}
    for label, fast in (("short", True), ("30 s", False)):
        settings = FasterWhisperSettings(
            provider="faster_whisper", model=args.model, fast_path=fast
        )
        providers[label] = FasterWhisperASR(settings, {})
        await providers[label].start()  # both share one loaded model
    print(f"model {args.model}: loaded in {providers['short'].load_s:.2f} s", file=sys.stderr)

    rows = []
    for lang in args.lang:
        if problem := missing_audio(lang):
            print(problem, file=sys.stderr)
            continue
        utterances = load_set(lang)
        references = [u.reference for u in utterances]
        for label, asr in providers.items():
            await recognize(asr, utterances[:1])  # warm-up, not counted
            run = await recognize(asr, utterances)
            wer = word_error_rate(references, run.hypotheses)
            mean_ms = sum(run.ms) / len(run.ms)
            fallbacks = sum(path == "full" for path in run.paths) if label == "short" else 0
            rows.append((lang, label, len(utterances), wer, mean_ms, max(run.ms), fallbacks))
            if args.show:
                for utterance, hypothesis in zip(utterances, run.hypotheses, strict=True):
                    print(f"  [{lang} {label}] {utterance.path.name}: {hypothesis}")

    print(
        f"\n{'lang':4} {'path':6} {'n':>3} {'WER':>7} {'mean ms':>8} {'max ms':>7} {'fallback':>8}"
    )
    for lang, label, n, wer, mean_ms, max_ms, fallbacks in rows:
        print(f"{lang:4} {label:6} {n:3d} {wer:7.1%} {mean_ms:8.0f} {max_ms:7.0f} {fallbacks:8d}")
    for asr in providers.values():
        await asr.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
