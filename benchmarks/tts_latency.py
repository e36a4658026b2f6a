"""First-audio latency and real-time factor of the local TTS engines.

    .venv/bin/python benchmarks/tts_latency.py [--runs 5] [--concurrency 1] [--engines festival,piper]

For each engine, every sentence is synthesised `runs` times (after a warm-up) by `concurrency`
callers at once. First audio: from the call to its first chunk. RTF: synthesis time divided by
the length of the audio (below 1 is faster than real time). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from voiceplat.providers.base import TTS
from voiceplat.providers.tts.espeak import EspeakTTS
from voiceplat.providers.tts.festival import FestivalTTS
from voiceplat.providers.tts.piper import PiperTTS

RU = [
    "Здравствуйте! Чем могу помочь?",
    "Ваш заказ номер 4512 будет доставлен завтра с 10 до 14 часов.",
    "Подскажите, пожалуйста, удобно ли вам сейчас говорить?",
    "Спасибо за звонок, хорошего дня!",
]
EN = [
    "Hello! How can I help you today?",
    "Your order number 4512 will be delivered tomorrow between 10 and 2.",
    "Could you please tell me whether now is a good time to talk?",
    "Thank you for calling, have a nice day!",
]
ENGINES: dict[str, tuple[type[TTS], dict[str, Any], list[str]]] = {
    "festival": (FestivalTTS, {}, RU),
    "piper": (PiperTTS, {}, EN),
    "espeak-ru": (EspeakTTS, {"voice": "ru"}, RU),
    "espeak-en": (EspeakTTS, {"voice": "en-us"}, EN),
}


@dataclass
class Samples:
    first_audio_s: list[float] = field(default_factory=list)
    rtf: list[float] = field(default_factory=list)


async def measure(tts: TTS, text: str, samples: Samples) -> None:
    started = time.perf_counter()
    first: float | None = None
    audio_s = 0.0
    async for pcm in tts.synthesize(text):
        if first is None:
            first = time.perf_counter() - started
        audio_s += pcm.duration_s
    total = time.perf_counter() - started
    if first is not None and audio_s:
        samples.first_audio_s.append(first)
        samples.rtf.append(total / audio_s)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def bench(name: str, runs: int, concurrency: int) -> str:
    cls, settings, sentences = ENGINES[name]
    tts = cls(cls.Settings(provider=cls.name, **settings), {})
    problems = tts.problems()
    if problems:
        return f"{name:<10} skipped: {'; '.join(problems)}"
    started = time.perf_counter()
    await tts.start()
    start_s = time.perf_counter() - started
    samples = Samples()
    try:
        for text in sentences:  # warm-up, not counted
            await measure(tts, text, Samples())
        for _ in range(runs):
            for text in sentences:
                await asyncio.gather(*(measure(tts, text, samples) for _ in range(concurrency)))
    finally:
        await tts.aclose()
    first, rtf = samples.first_audio_s, samples.rtf
    return (
        f"{name:<10} {start_s:>7.2f} {len(first):>5} "
        f"{1000 * statistics.median(first):>8.0f} {1000 * p95(first):>8.0f} "
        f"{statistics.median(rtf):>8.3f} {p95(rtf):>8.3f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args()
    print(f"runs={args.runs} concurrency={args.concurrency}")
    print(
        f"{'engine':<10} {'start s':>7} {'n':>5} {'1st med':>8} {'1st p95':>8} {'RTF med':>8} "
        f"{'RTF p95':>8}   (first audio in ms)"
    )
    for name in args.engines.split(","):
        print(await bench(name.strip(), args.runs, args.concurrency), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
