"""The echo guard offline: the robot's voice mixed back into the caller's channel, frame by frame.

    .venv/bin/python benchmarks/echo.py

A telephone line is simulated in numpy, no sockets: the robot's audio (a speech fixture) goes
to the caller through μ-law, comes back attenuated by `echo_db` and delayed by `echo_ms`, is
mixed with the caller's own speech (if any) and goes through μ-law again. The robot-side
timeline given to the guard (`played`) can be off by `playout_error_s`, as a predicted playout
time is. Each 20 ms frame is run through the webrtc VAD and `EchoGuard.process`.

Prints a Markdown table: for each case, the VAD-voiced frames of pure echo the guard called echo
(goal ≥ 95 %), the caller's speech frames it left to the caller (goal: all where the caller is
louder than the echo), and the guard's cost per frame (µs, mean and p95 over the call,
robot-silent frames included; thread CPU time, so other processes on the machine do not
count). Asserts nothing; tests/unit/test_echo.py holds the pass marks.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.audio.pcm import CALL_RATE
from voiceplat.audio.wav import read_wav
from voiceplat.turns.echo import EchoDecision, EchoGuard, EchoSettings
from voiceplat.turns.vad import make_vad

FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures"
FRAME = CALL_RATE // 50


@dataclass(frozen=True)
class Scenario:
    robot: str = "ru_long.wav"
    robot_at_s: float = 0.5
    echo_db: float | None = -20.0
    """None: a line without echo."""
    echo_ms: float = 120.0
    caller: str | None = None
    caller_db: float = 0.0
    """Gain on the caller's fixture (they are all normalised to the robot's level)."""
    caller_at_s: float = 1.0
    playout_error_s: float = 0.0
    """How much earlier than heard the guard is told the robot's audio plays."""
    chunk_s: float = 1.0
    """The robot's audio goes to `played` in chunks this long, back to back."""
    chunk_jitter_s: float = 0.0
    """Each chunk's start_t is off by up to this much (uniform, seeded): snapping must cope."""
    frame_jitter_s: float = 0.0
    """Each caller frame's end_t is off by up to this much (arrival jitter)."""
    flush_at_s: float | None = None
    """The robot's audio is cut here (channel flush): the caller hears nothing after it."""
    total_s: float = 6.0
    seed: int = 11


@dataclass(frozen=True)
class FrameResult:
    decision: EchoDecision
    voiced: bool
    """The webrtc VAD (aggressiveness 2) calls the mixed frame speech."""
    echo_rms: float
    caller_rms: float
    cost_s: float


def fixture(name: str) -> np.ndarray:
    return read_wav(FIXTURES / name).to_numpy().astype(np.float64)


def mu_law(samples: np.ndarray) -> np.ndarray:
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()
    return np.frombuffer(ulaw_decode(ulaw_encode(pcm)), dtype="<i2").astype(np.float64)


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a * a)))


def simulate(sc: Scenario, settings: EchoSettings | None = None) -> list[FrameResult]:
    rng = np.random.default_rng(sc.seed)
    n = int(sc.total_s * CALL_RATE) // FRAME * FRAME
    robot = fixture(sc.robot)
    r0 = int(sc.robot_at_s * CALL_RATE)
    r_end = min(n, r0 + robot.size)
    if sc.flush_at_s is not None:
        r_end = min(r_end, int(sc.flush_at_s * CALL_RATE))
    heard = np.zeros(n)
    heard[r0:r_end] = mu_law(robot[: r_end - r0])
    echo = np.zeros(n)
    if sc.echo_db is not None:
        delay = int(sc.echo_ms * CALL_RATE / 1000)
        echo[delay:] = heard[: n - delay] * 10 ** (sc.echo_db / 20)
    caller = np.zeros(n)
    if sc.caller is not None:
        voice = fixture(sc.caller) * 10 ** (sc.caller_db / 20)
        c0 = int(sc.caller_at_s * CALL_RATE)
        caller[c0 : c0 + voice.size] = voice[: n - c0]
    line = mu_law(echo + caller)

    guard = EchoGuard(settings)
    robot_pcm = robot.astype("<i2").tobytes()
    step = int(sc.chunk_s * CALL_RATE) * 2
    for k in range(0, len(robot_pcm), step):
        jitter = rng.uniform(-sc.chunk_jitter_s, sc.chunk_jitter_s)
        guard.played(
            robot_pcm[k : k + step],
            sc.robot_at_s - sc.playout_error_s + k / 2 / CALL_RATE + jitter,
        )
    if sc.flush_at_s is not None:
        guard.flushed(sc.flush_at_s - sc.playout_error_s)

    vad = make_vad("webrtc", aggressiveness=2)
    results = []
    for i in range(n // FRAME):
        part = slice(i * FRAME, (i + 1) * FRAME)
        frame = line[part].astype("<i2").tobytes()
        end_t = (i + 1) * FRAME / CALL_RATE + rng.uniform(-sc.frame_jitter_s, sc.frame_jitter_s)
        started = time.thread_time()
        decision = guard.process(frame, end_t)
        cost = time.thread_time() - started
        results.append(
            FrameResult(decision, vad.is_speech(frame), _rms(echo[part]), _rms(caller[part]), cost)
        )
    return results


def echo_share(results: list[FrameResult]) -> float:
    """Share of VAD-voiced frames without caller speech that the guard calls echo."""
    voiced = [r for r in results if r.voiced and r.echo_rms > 0.0 and r.caller_rms == 0.0]
    return sum(r.decision.echo for r in voiced) / max(len(voiced), 1)


def caller_share(results: list[FrameResult], *, dominant: bool) -> float:
    """Share of the caller's speech frames (RMS > 100; with `dominant`, also louder than the
    echo) that the guard leaves to the caller."""
    frames = [
        r for r in results if r.caller_rms > 100 and (not dominant or r.caller_rms > r.echo_rms)
    ]
    return sum(not r.decision.echo for r in frames) / max(len(frames), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    cases: list[tuple[str, Scenario]] = []
    for db in (-15, -20, -25):
        for ms in (40, 120, 200):
            for err in (-0.1, 0.0, 0.1):
                cases.append((f"echo {db} dB {ms} ms, playout off {err:+.1f} s", Scenario(
                    echo_db=db, echo_ms=ms, playout_error_s=err)))  # fmt: skip
    for cdb in (0, -10, -20):
        cases.append((f"caller {cdb} dB over echo -15 dB 200 ms", Scenario(
            echo_db=-15, echo_ms=200, caller="ru_stop.wav", caller_db=cdb)))  # fmt: skip
    cases.append(("caller over the robot, no echo", Scenario(echo_db=None, caller="ru_stop.wav")))
    print(
        "| case | echo frames called echo | caller frames kept (louder than echo) | µs/frame mean | p95 |"
    )
    print("|---|---|---|---|---|")
    for name, sc in cases:
        results = simulate(sc)
        costs = sorted(r.cost_s * 1e6 for r in results)
        echo = f"{100 * echo_share(results):.1f} %" if sc.echo_db is not None else "–"
        kept = (
            f"{100 * caller_share(results, dominant=False):.1f} % "
            f"({100 * caller_share(results, dominant=True):.1f} %)"
            if sc.caller
            else "–"
        )
        p95 = costs[int(0.95 * (len(costs) - 1))]
        print(f"| {name} | {echo} | {kept} | {statistics.fmean(costs):.0f} | {p95:.0f} |")


if __name__ == "__main__":
    main()
