"""A robot process's Prometheus metrics, fed by a recorder sink.

`MetricsSink` reads the record items every call produces (the same ones the stores get), so the
WebSocket, SIP and web calls of a process are all counted, and nothing on the audio path calls a
metric. The metrics are module-level objects in prometheus_client's default `REGISTRY`: a
process has one set however many robots, servers or sinks a test makes, and labels (`robot`,
`source`, …) tell them apart. Values only grow over the process's life (counters, histograms);
gauges of what exists now (active calls, model queues, spools) are read when scraped
(collectors.py).

Latencies are in seconds (Prometheus' convention), taken from the turn records: `v2v_ms`,
`asr_ms`, `llm_ttft_ms`, `tts_ttfb_ms`. A turn is written several times (added, then updated
after a barge-in); each value is observed once per turn, the first time it is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from voiceplat.observability import collectors
from voiceplat.storage.recorder import Recorder, Sink
from voiceplat.storage.records import (
    CallFinished,
    CallRecord,
    EventLogged,
    LogEvent,
    RecordItem,
    TurnRecord,
    TurnWritten,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)

CALLS = Counter(
    "voiceplat_calls",
    "Finished calls, by how they ended.",
    ["robot", "source", "end_reason"],
)
TURNS = Counter("voiceplat_turns", "Turns recorded (user and robot).", ["robot", "role"])
V2V = Histogram(
    "voiceplat_v2v_seconds",
    "Voice to voice: end of the caller's speech to the robot's first audio sent.",
    ["robot"],
    buckets=LATENCY_BUCKETS,
)
ASR = Histogram(
    "voiceplat_asr_seconds", "ASR time of a caller's utterance.", ["robot"], buckets=LATENCY_BUCKETS
)
LLM_FIRST_TOKEN = Histogram(
    "voiceplat_llm_first_token_seconds",
    "LLM time to the first token of a robot turn.",
    ["robot"],
    buckets=LATENCY_BUCKETS,
)
TTS_FIRST_AUDIO = Histogram(
    "voiceplat_tts_first_audio_seconds",
    "TTS time to the first audio of a robot turn.",
    ["robot"],
    buckets=LATENCY_BUCKETS,
)
BARGE_INS = Counter("voiceplat_barge_ins", "Times a caller cut the robot off.", ["robot"])
PROVIDER_ERRORS = Counter(
    "voiceplat_provider_errors",
    "Provider failures inside calls (kind: asr, llm, tts, realtime, end_of_turn, unknown).",
    ["robot", "kind", "provider"],
)
STARVED = Counter(
    "voiceplat_audio_starved_seconds",
    "Dead air inside robot turns: time the robot had no audio to send mid-answer.",
    ["robot"],
)
STARVED_TURNS = Counter(
    "voiceplat_starved_turns", "Robot turns with any dead air inside them.", ["robot"]
)

_FIELDS: tuple[tuple[str, Histogram], ...] = (
    ("v2v_ms", V2V),
    ("asr_ms", ASR),
    ("llm_ttft_ms", LLM_FIRST_TOKEN),
    ("tts_ttfb_ms", TTS_FIRST_AUDIO),
)


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The metrics in Prometheus' text format 0.0.4 (what every scraper reads), and its
    Content-Type."""
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4


_KIND_WORDS = {"asr": "asr", "llm": "llm", "tts": "tts", "realtime": "realtime"}
_WORD = re.compile(r"[a-z0-9]+")


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def error_kind(data: Mapping[str, Any], providers: Mapping[str, str]) -> str | None:
    """Which provider kind an `error` pipeline event is about; None: not a provider error (the
    call's own end: protocol errors, bad metadata)."""
    for key in ("provider", "kind", "source"):
        value = data.get(key)
        if isinstance(value, str) and value in (*_KIND_WORDS, *providers):
            return value
    detail = str(data.get("detail") or "")
    lowered = detail.lower()
    if lowered.startswith("end-of-turn model"):
        return "end_of_turn"
    if "turn" not in data and not lowered.startswith("barge-in asr"):
        return None  # call-level errors (the session's end) carry no turn
    # The messages name their provider ("faster_whisper failed…", "festival: …",
    # "llama.cpp generation failed", "fake ASR failed…"): the kind's word, else its name.
    words = set(_WORD.findall(lowered))
    for word, kind in _KIND_WORDS.items():
        if word in words:
            return kind
    squashed = _squash(detail)
    for kind, name in providers.items():
        if name and _squash(name) in squashed:
            return kind
    return "unknown"


@dataclass
class _CallState:
    source: str
    observed: dict[int, set[str]] = field(default_factory=dict)
    starved_ms: dict[int, float] = field(default_factory=dict)


class MetricsSink(Sink):
    """Feeds the metrics from record items. `providers`: kind -> provider name (the robot's),
    to label provider errors."""

    name = "metrics"

    def __init__(self, robot: str, providers: Mapping[str, str] | None = None) -> None:
        self.robot = robot
        self.providers = dict(providers or {})
        self._calls: dict[str, _CallState] = {}
        # Sources that had calls stay at 0 rather than vanish (the robot port's from the start).
        self._sources = {"freeswitch"}
        collectors.add_active_source(self)  # voiceplat_calls_active, read when scraped

    @classmethod
    def for_robot(cls, robot: Any) -> MetricsSink:
        """One for a loaded `Robot` (its name, its providers' names)."""
        names = {kind: getattr(p, "name", "") for kind, p in robot.providers.items()}
        return cls(robot.name, names)

    def watch(self, recorder: Recorder) -> None:
        """Reports the recorder's drops and its store sinks' spools as this robot's."""
        collectors.watch_recorder(self.robot, recorder)

    def active(self) -> dict[str, int]:
        """Calls in progress now, by source."""
        counts = dict.fromkeys(self._sources, 0)
        for state in self._calls.values():
            counts[state.source] = counts.get(state.source, 0) + 1
        return counts

    async def handle(self, item: RecordItem) -> None:
        self.apply(item)

    def apply(self, item: RecordItem) -> None:
        call = item.call
        if isinstance(item, CallFinished):
            state = self._calls.pop(call.call_id, None) or _CallState(call.source)
            for turn in item.snapshot.turns:  # what was missed (a queue that dropped items)
                self._turn(call, state, turn)
            CALLS.labels(call.robot, call.source, call.end_reason or "unknown").inc()
            return
        if call.status != "in_progress":
            return  # an amendment after the call
        state = self._calls.get(call.call_id) or _CallState(call.source)
        self._calls[call.call_id] = state
        self._sources.add(call.source)
        if isinstance(item, TurnWritten):
            self._turn(call, state, item.turn)
        elif isinstance(item, EventLogged):
            self._event(call, item.event)

    def _turn(self, call: CallRecord, state: _CallState, turn: TurnRecord) -> None:
        seen = state.observed.get(turn.idx)
        if seen is None:
            seen = state.observed[turn.idx] = set()
            TURNS.labels(call.robot, turn.role).inc()
        for name, histogram in _FIELDS:
            value = getattr(turn, name)
            if value is not None and name not in seen:
                seen.add(name)
                histogram.labels(call.robot).observe(max(0.0, value) / 1000)
        if turn.starved_ms:
            # A counter of dead air: a rewritten turn adds only what grew since.
            before = state.starved_ms.get(turn.idx, 0.0)
            if turn.starved_ms > before:
                if before == 0.0:
                    STARVED_TURNS.labels(call.robot).inc()
                STARVED.labels(call.robot).inc((turn.starved_ms - before) / 1000)
                state.starved_ms[turn.idx] = turn.starved_ms

    def _event(self, call: CallRecord, event: LogEvent) -> None:
        if event.event == "barge_in":
            BARGE_INS.labels(call.robot).inc()
        elif event.event == "error":
            kind = error_kind(event.data, self.providers)
            if kind is not None:
                provider = self.providers.get(kind) or kind
                PROVIDER_ERRORS.labels(call.robot, kind, provider).inc()
