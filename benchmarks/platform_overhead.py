"""platform_load.py, part 1: the platform's own latency per turn, over sequential calls.

Each call waits for the greeting, then speaks a few fixtures, each after the robot's answer. Every
figure is v2v minus the robot's `vad.silence_ms`: caller side (end of the WAV's speech -> first
robot audio arrived), robot side (the call record's v2v_ms: end of speech as the endpointer saw it
-> first robot audio queued), and the VAD's hangover (how far the endpointer's end of speech lies
after the WAV's), computed offline per fixture by replaying the audio the caller sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    FIXTURES,
    SILENCE_MS,
    RobotProcess,
    call_records,
    cell,
    markdown,
    pct,
    platform_robot,
)
from voiceplat.audio.pcm import FRAME_MS
from voiceplat.config import VadSettings
from voiceplat.simulator import CallResult, Say, Step, run_call
from voiceplat.turns.endpointer import Endpointer, SpeechEnded
from voiceplat.turns.vad import make_vad

OVERHEAD_CLIPS = ["ru_question.wav", "en_hello.wav", "ru_hello.wav", "ru_aga.wav", "ru_long.wav"]


def replay_hangover_ms(call: CallResult, vad: VadSettings) -> list[float | None]:
    """Per caller utterance: the endpointer's end of speech minus the WAV's end of speech.

    Replays the exact audio the caller sent (frame i went out at (i + 1) * 20 ms on the call's
    clock, the clock of `speech_end_ms`) through a fresh VAD and endpointer built like the
    robot's, so the VAD's history (adaptive noise model) is the same as in the call. None where
    the replay found no end of speech for that utterance.
    """
    detector = make_vad(vad.engine, aggressiveness=vad.aggressiveness)
    endpointer = Endpointer(vad.endpointer_settings())  # its pauses do not move the ends
    size = len(call.caller_audio) // max(1, call.frames_sent)
    ends: list[float] = []
    for i in range(call.frames_sent):
        frame = call.caller_audio[i * size : (i + 1) * size]
        for event in endpointer.push(frame, detector.is_speech(frame), (i + 1) * FRAME_MS / 1e3):
            if isinstance(event, SpeechEnded):
                ends.append(event.ended_at * 1000.0)
    values: list[float | None] = []
    spoken = [u for u in call.utterances if u.speech_end_ms is not None]
    for i, u in enumerate(spoken):
        until = spoken[i + 1].sent_start_ms if i + 1 < len(spoken) else float("inf")
        found = [e for e in ends if u.speech_start_ms <= e < until]  # type: ignore[operator]
        values.append(round(found[-1] - u.speech_end_ms, 1) if found else None)  # type: ignore[operator]
    return values


@dataclass
class TurnSample:
    call_id: str
    clip: str
    caller_ms: float | None
    """Caller side: v2v_arrival_ms - silence_ms."""
    robot_ms: float | None
    """Robot side: record v2v_ms - silence_ms."""
    hangover_ms: float | None
    """VAD hangover: the endpointer's end of speech minus the WAV's (replayed)."""
    asr_ms: float | None = None
    llm_ttft_ms: float | None = None
    tts_ttfb_ms: float | None = None

    @property
    def transport_ms(self) -> float | None:
        """caller - robot - hangover: caller audio in, robot audio out, and the robot's reading."""
        if self.caller_ms is None or self.robot_ms is None or self.hangover_ms is None:
            return None
        return round(self.caller_ms - self.robot_ms - self.hangover_ms, 1)


def pair_turns(
    calls: list[CallResult], records: dict[str, dict], vad: VadSettings
) -> tuple[list[TurnSample], int]:
    """Caller utterances matched in order with the robot's answers (turns with a v2v_ms)."""
    samples: list[TurnSample] = []
    unpaired = 0
    for call in calls:
        record = records.get(call.call_id)
        answers = [
            t for t in (record or {}).get("turns", []) if t["role"] == "robot" and t["v2v_ms"]
        ]
        utterances = [u for u in call.utterances if u.speech_end_ms is not None]
        hangovers = replay_hangover_ms(call, vad)
        if len(answers) != len(utterances):
            unpaired += len(utterances)
            answers = []
        for i, u in enumerate(utterances):
            turn = answers[i] if answers else {}
            samples.append(
                TurnSample(
                    call_id=call.call_id,
                    clip=u.source,
                    caller_ms=None if u.v2v_arrival_ms is None else u.v2v_arrival_ms - SILENCE_MS,
                    robot_ms=round(turn["v2v_ms"] - SILENCE_MS, 1) if turn else None,
                    hangover_ms=hangovers[i],
                    asr_ms=turn.get("asr_ms"),
                    llm_ttft_ms=turn.get("llm_ttft_ms"),
                    tts_ttfb_ms=turn.get("tts_ttfb_ms"),
                )
            )
    return samples, unpaired


async def _sequential_calls(
    url: str, steps: list[Step], count: int, parallel: int
) -> list[CallResult]:
    results: list[CallResult] = []
    for start in range(0, count, parallel):
        batch = range(start, min(count, start + parallel))
        # keep_audio: the caller's audio is replayed through the VAD afterwards (hangover).
        results += await asyncio.gather(*(run_call(url, steps, timeout_s=300) for _ in batch))
    return results


def measure_overhead(work: Path, calls: int, turns: int, parallel: int) -> dict[str, Any]:
    clips = [OVERHEAD_CLIPS[i % len(OVERHEAD_CLIPS)] for i in range(turns)]
    steps: list[Step] = [Say(FIXTURES / name) for name in clips]
    # A short answer: the overhead is about the first audio, not how long the robot talks.
    robot_dir = platform_robot(work, "overhead", {"llm": {"reply": "Хорошо."}})
    robot = RobotProcess(robot_dir)
    try:
        results = asyncio.run(_sequential_calls(robot.url, steps, calls, parallel))
        records = call_records(robot_dir, calls)
    finally:
        robot.stop()
    config = json.loads((robot_dir / "config.json").read_text(encoding="utf-8"))
    samples, unpaired = pair_turns(results, records, VadSettings.model_validate(config["vad"]))

    def stats(values: list[float | None]) -> dict[str, Any]:
        return pct([v for v in values if v is not None])

    caller_net = [
        None if s.caller_ms is None or s.hangover_ms is None else s.caller_ms - s.hangover_ms
        for s in samples
    ]
    per_clip: dict[str, list[TurnSample]] = {}
    for s in samples:
        per_clip.setdefault(s.clip, []).append(s)
    return {
        "calls": calls,
        "turns_per_call": turns,
        "parallel": parallel,
        "silence_ms": SILENCE_MS,
        "errors": [e for c in results for e in c.errors],
        "unanswered": sum(1 for c in results for u in c.utterances if not u.answered),
        "unpaired": unpaired,
        "robot_ms": stats([s.robot_ms for s in samples]),
        "caller_ms": stats([s.caller_ms for s in samples]),
        "hangover_ms": stats([s.hangover_ms for s in samples]),
        "caller_minus_hangover_ms": stats(caller_net),
        "transport_ms": stats([s.transport_ms for s in samples]),
        "asr_ms": stats([s.asr_ms for s in samples]),
        "llm_ttft_ms": stats([s.llm_ttft_ms for s in samples]),
        "tts_ttfb_ms": stats([s.tts_ttfb_ms for s in samples]),
        "per_clip": {
            name: {
                "hangover_ms": sorted({s.hangover_ms for s in group if s.hangover_ms is not None}),
                "robot_ms": stats([s.robot_ms for s in group]),
                "caller_ms": stats([s.caller_ms for s in group]),
            }
            for name, group in sorted(per_clip.items())
        },
        "turns": [asdict(s) for s in samples],
    }


def overhead_tables(o: dict[str, Any]) -> str:
    def row(name: str, stats: dict[str, Any]) -> list[Any]:
        return [name, stats["n"], stats["p50"], stats["p95"], stats["max"]]

    header = ["metric (ms)", "n", "p50", "p95", "max"]
    rows = [
        row("**robot side**: record v2v_ms − silence_ms", o["robot_ms"]),
        row("**caller side**: v2v_arrival_ms − silence_ms", o["caller_ms"]),
        row("VAD hangover (endpointer end − WAV speech end)", o["hangover_ms"]),
        row("caller side − VAD hangover", o["caller_minus_hangover_ms"]),
        row("caller − robot − hangover (transport)", o["transport_ms"]),
        row("asr_ms (fake, no delay)", o["asr_ms"]),
        row("llm_ttft_ms (fake, no delay)", o["llm_ttft_ms"]),
        row("tts_ttfb_ms (fake, no delay)", o["tts_ttfb_ms"]),
    ]
    per_clip = [
        [
            name,
            ", ".join(f"{v:g}" for v in c["hangover_ms"]),
            f"{cell(c['robot_ms']['p50'])} / {cell(c['robot_ms']['max'])}",
            f"{cell(c['caller_ms']['p50'])} / {cell(c['caller_ms']['max'])}",
            c["caller_ms"]["n"],
        ]
        for name, c in o["per_clip"].items()
    ]
    text = [
        f"Platform overhead: {o['calls']} calls × {o['turns_per_call']} turns "
        f"({o['parallel']} at a time), silence_ms = {o['silence_ms']}; "
        f"errors {len(o['errors'])}, unanswered {o['unanswered']}, unpaired {o['unpaired']}",
        "",
        markdown(header, rows),
        "",
        markdown(
            [
                "fixture",
                "VAD hangover ms",
                "robot side p50 / max",
                "caller side p50 / max",
                "turns",
            ],
            per_clip,
        ),
    ]
    return "\n".join(text)
