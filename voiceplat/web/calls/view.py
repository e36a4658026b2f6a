"""What the call page shows of a snapshot: turns placed on the recording's timeline, and each
answer's latency as a waterfall (where the time between the caller's last word and the robot's
first sound went)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from voiceplat.storage.records import CallSnapshot, LogEvent, TurnRecord


@dataclass(frozen=True, slots=True)
class Bar:
    """One stage of an answer: it starts `start_ms` after the caller stopped speaking."""

    stage: str
    label: str
    start_ms: float
    ms: float


@dataclass(slots=True)
class Waterfall:
    turn_idx: int
    bars: list[Bar] = field(default_factory=list)
    total_ms: float = 0.0
    """The widest bar's end: the scale of this turn's row."""


@dataclass(frozen=True, slots=True)
class TurnView:
    turn: TurnRecord
    offset_s: float
    """When the turn started, in seconds from the call's start (its place in the recording)."""
    waterfall: Waterfall | None

    @property
    def heard(self) -> str | None:
        """What the caller heard of a cut robot turn, without the "…" the session adds where it
        cut a sentence (None: not cut, or unknown)."""
        turn = self.turn
        if not turn.interrupted or turn.heard_text is None:
            return None
        return turn.heard_text.removesuffix("…").rstrip()

    @property
    def heard_matches(self) -> bool:
        """The heard part is where the turn's text starts (else both are shown in full)."""
        heard = self.heard
        return heard is not None and self.turn.text.startswith(heard)

    @property
    def unheard(self) -> str | None:
        """What the caller did not hear of a cut robot turn (None: not cut, or unknown)."""
        heard = self.heard
        if heard is None:
            return None
        if self.heard_matches:
            return self.turn.text[len(heard) :]
        return self.turn.text


def _seconds_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _first(
    events: list[LogEvent], name: str, after: datetime, turn: int | None = None
) -> LogEvent | None:
    for event in events:
        if event.event != name or event.at < after:
            continue
        if turn is not None and event.data.get("turn") != turn:
            continue
        if event.data.get("speculative"):
            continue
        return event
    return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def waterfall(
    robot_turn: TurnRecord, user_turn: TurnRecord | None, log: list[LogEvent]
) -> Waterfall | None:
    """The stages of one answer, laid end to end from the end of the caller's speech: endpoint
    silence (end of speech to the start of recognition, from the pipeline log), ASR, LLM first
    token, first clause, TTS first audio; and v2v, the whole wait as the caller had it."""
    asr = user_turn.asr_ms if user_turn is not None else None
    if robot_turn.v2v_ms is None and robot_turn.llm_ttft_ms is None and asr is None:
        return None
    bars: list[Bar] = []
    endpoint: float | None = None
    if user_turn is not None and user_turn.ended_at is not None:
        done = _first(log, "asr_done", user_turn.ended_at)
        done_ms = _number(done.data.get("ms")) if done is not None else None
        if done is not None and done_ms is not None:
            asr_started = (done.at - user_turn.ended_at).total_seconds() * 1000 - done_ms
            endpoint = max(0.0, asr_started)
    at = 0.0
    if endpoint is not None:
        bars.append(Bar("endpoint", "endpoint silence", 0.0, endpoint))
        at = endpoint
    if asr is not None:
        bars.append(Bar("asr", "ASR", at, asr))
        at += asr
    llm_start = at
    if robot_turn.llm_ttft_ms is not None:
        bars.append(Bar("llm", "LLM first token", llm_start, robot_turn.llm_ttft_ms))
    clause = _first(log, "first_sentence", robot_turn.started_at, robot_turn.idx)
    clause_ms = _number(clause.data.get("ms")) if clause is not None else None
    if clause_ms is not None:
        bars.append(Bar("clause", "first clause", llm_start, clause_ms))
    if robot_turn.tts_ttfb_ms is not None:
        # Speech synthesis starts on the first clause (or the first token, failing that).
        tts_start = llm_start + (
            clause_ms if clause_ms is not None else robot_turn.llm_ttft_ms or 0
        )
        bars.append(Bar("tts", "TTS first audio", tts_start, robot_turn.tts_ttfb_ms))
    if robot_turn.v2v_ms is not None:
        bars.append(Bar("v2v", "v2v", 0.0, robot_turn.v2v_ms))
    total = max((bar.start_ms + bar.ms for bar in bars), default=0.0)
    return Waterfall(robot_turn.idx, bars, total)


def turn_views(snapshot: CallSnapshot) -> list[TurnView]:
    start = snapshot.call.started_at
    views: list[TurnView] = []
    last_user: TurnRecord | None = None
    for turn in sorted(snapshot.turns, key=lambda t: t.idx):
        fall = None
        if turn.role == "robot":
            fall = waterfall(turn, last_user, snapshot.pipeline_log)
            last_user = None  # a user turn explains one answer only
        elif turn.ignored is None:
            last_user = turn
        views.append(TurnView(turn, _seconds_between(start, turn.started_at), fall))
    return views


def is_error_event(event: LogEvent) -> bool:
    return event.event == "error" or event.event.endswith("_failed") or "error" in event.data
