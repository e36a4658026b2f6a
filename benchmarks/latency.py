"""Voice-to-voice latency with the real local models, over the real protocol (prints; asserts nothing).

The shipped robots (robots/pipeline_russian, robots/pipeline_english) run in their own process on a
copy of their folder; the simulated caller speaks the telephone-band utterances of
benchmarks/data/asr/ (Russian and English), a few per call, and the call records give the parts:

    v2v = end-of-turn silence + ASR (minus what speculation hid) + LLM first sentence + TTS first audio

    python benchmarks/latency.py                      # ru + en, one call at a time
    python benchmarks/latency.py --variants           # also without speculative ASR
    python benchmarks/latency.py --concurrency 1,2,3  # calls at once, the degradation curve
    python benchmarks/latency.py --set vad.speculative_pause_ms=120   # try a setting
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiceplat.simulator import Say, run_calls  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "asr"
UTTERANCES_PER_CALL = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class RobotProcess:
    """`voiceplat serve` on a copy of a shipped robot, with config overrides."""

    def __init__(self, name: str, overrides: dict[str, Any]) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="vp-latency-"))
        self.dir = self.tmp / name
        shutil.copytree(ROOT / "robots" / name, self.dir, ignore=shutil.ignore_patterns("logs"))
        config = json.loads((self.dir / "config.json").read_text())
        for key, value in overrides.items():
            section, _, field = key.partition(".")
            if field:
                config.setdefault(section, {})[field] = value
            else:
                config[section] = value
        (self.dir / "config.json").write_text(json.dumps(config, ensure_ascii=False))
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.config = config

    def __enter__(self) -> RobotProcess:
        command = [sys.executable, "-m", "voiceplat.cli", "serve", str(self.dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"robot exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.3)
        raise SystemExit("robot did not start in 180 s")

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(2)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in (self.dir / "logs").glob("*.json")]


def utterances(language: str) -> list[Path]:
    lines = (DATA / f"{language}.tsv").read_text(encoding="utf-8").splitlines()
    return [DATA / line.split("\t")[0] for line in lines if line.strip()]


async def call_batches(url: str, wavs: list[Path], concurrency: int) -> list[float]:
    """Calls of UTTERANCES_PER_CALL utterances each, `concurrency` at a time; caller-side v2v."""
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
    return heard


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
    with RobotProcess(name, overrides) as robot:
        heard = await call_batches(robot.url, utterances(language), concurrency)
        await asyncio.sleep(1)  # the JSON sink writes the final records in its own task
        found = parts(robot.records())
        return {"heard": heard, "silence": silence_ms(robot.config), **found}


def row(label: str, m: dict) -> str:
    med = lambda key: statistics.median(m[key]) if m[key] else None  # noqa: E731
    return (
        f"| {label} | {len(m['heard'])} | {fmt(percentile(m['heard'], 50))} | "
        f"{fmt(percentile(m['heard'], 95))} | {m['silence']} | {fmt(med('asr'))} | "
        f"{fmt(med('llm_ttft'))} | {fmt(med('first_sentence'))} | {fmt(med('tts_ttfb'))} | "
        f"{fmt(percentile(m['v2v'], 50))} |"
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
    args = parser.parse_args()
    settings = {key: json.loads(value) for key, value in (s.split("=", 1) for s in args.set)}
    robots = {"ru": "pipeline_russian", "en": "pipeline_english"}
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(
        "all figures in ms; 'heard' = simulator: end of caller speech → first robot audio heard\n"
    )
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
