"""The call report: what the simulated caller said, heard and received, with times in ms.

All times are milliseconds from call start (tick 0 of the call's 20 ms clock, within one frame
of the moment the metadata was sent). Caller frame k (k = 1, 2, ...) is sent at k*frame and
holds the audio of [(k-1)*frame, k*frame]; the robot frame played at tick k is heard during
[k*frame, (k+1)*frame]. Definitions:

- speech start/end: start of the WAV's first / end of its last 20 ms frame whose RMS exceeds
  max(200, 3 % of the clip's loudest frame) (see `script.make_clip`).
- answer: robot audio as heard, split where nothing was received and played for more than
  300 ms, or where killAudio flushed it. start = playout start of its first sample, end = when
  its last sample finished playing.
- v2v_ms: end of caller speech -> start of the first answer whose playout started after the
  caller began speaking (negative: the robot started before the caller finished).
  v2v_arrival_ms is the same up to the arrival of that answer's first chunk, i.e. what the robot
  itself can measure; the difference is playout quantisation (< one frame) plus queueing.
- talk_over_ms: when the robot was talking as the caller began: caller speech start -> the end
  of that answer as heard (the killAudio flush, or its natural end if never killed).
- underrun: the playout buffer ran dry inside an answer and audio resumed within 300 ms; the
  gap is the silence the caller heard.
- robot turns (`robot_turns`): audio grouped by the robot's marks `t{turn}s{n}` that follow it
  (see `turn_gaps.py`); a turn's starvation gaps are the silences heard between its stretches
  when the playout ran dry (no killAudio between), however long; `starvation_ms` is the
  distribution of each turn's longest gap (0 for a turn without one).
- robot_turn / resumed (an utterance): the turn heard as the caller began speaking, and whether,
  after a killAudio cut it, its audio was heard again (`resume_after_ms`: from the end of the cut
  audio); next_turn: the first turn not heard before the utterance that started after it.
- jitter, per BINARY chunk: a stream is robot audio without a pause of more than 300 ms or a
  killAudio. offset_i = arrival_i - duration(audio received earlier in the stream); the ideal
  arrival of chunk i is ref + duration(audio before it), with ref = min(offset_0..offset_i)
  (the first chunk's arrival to begin with: the robot streams at real time after its first
  chunk). jitter_i = arrival_i - ideal_i = offset_i - ref >= 0. Chunks that arrive early (a
  robot sending a lead ahead) move the reference instead of counting as jitter; the first chunk
  of each stream has no jitter (it defines the reference) and is left out of the statistics.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from voiceplat.simulator.turn_gaps import RobotTurnReport


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


class Stats(BaseModel):
    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        if not values:
            return cls()
        p50, p95, p99, top = np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99, 100])
        return cls(
            count=len(values),
            p50=round(float(p50), 1),
            p95=round(float(p95), 1),
            p99=round(float(p99), 1),
            max=round(float(top), 1),
        )

    def brief(self) -> str:
        if not self.count:
            return "-"
        return f"p50 {self.p50} / p95 {self.p95} / p99 {self.p99} / max {self.max} (n={self.count})"


class UtteranceReport(BaseModel):
    index: int
    kind: Literal["say", "barge_in"]
    source: str
    sent_start_ms: float
    sent_end_ms: float
    speech_start_ms: float | None
    speech_end_ms: float | None
    answered: bool = False
    answer_index: int | None = None
    v2v_ms: float | None = None
    v2v_arrival_ms: float | None = None
    robot_talking_at_start: bool = False
    talk_over_ms: float | None = None
    kill_audio: bool | None = None
    """Whether the answer the caller spoke over was cut by killAudio (None: robot was quiet)."""
    kill_audio_after_ms: float | None = None
    """Caller speech start -> the killAudio that cut it: the robot's barge-in reaction."""
    robot_turn: int | None = None
    """The robot turn being heard when the caller began speaking (from its marks)."""
    resumed: bool | None = None
    """That turn was cut by killAudio and then heard again (None: it was not cut)."""
    resume_after_ms: float | None = None
    """End of the cut audio -> the resumed audio of the same turn."""
    next_turn: int | None = None
    """The first robot turn not heard before this utterance whose audio started after it."""
    next_turn_start_ms: float | None = None


class AnswerReport(BaseModel):
    index: int
    start_ms: float
    end_ms: float | None
    duration_ms: float | None
    first_arrival_ms: float
    bytes: int
    underruns: int
    ended_by: str
    cut_by_kill_audio: bool


class EventReport(BaseModel):
    type: str
    t_ms: float
    data: Any = None


class MarkReport(BaseModel):
    name: str
    queued_ms: float
    event: Literal["playout", "cleared", "pending", "dropped"]
    """"dropped": discarded by the module, which holds at most 30 marks."""
    answered_ms: float | None = None


class ChunkReport(BaseModel):
    t_ms: float
    bytes: int
    jitter_ms: float | None


class QualityReport(BaseModel):
    chunks: int = 0
    robot_audio_ms: float = 0.0
    underruns: int = 0
    underrun_gaps_ms: list[float] = Field(default_factory=list)
    jitter_ms: Stats = Field(default_factory=Stats)
    max_buffered_ms: float = 0.0
    """Most robot audio queued ahead of playout: the robot's lead."""
    kill_audio: int = 0
    flushed_ms: float = 0.0
    """Robot audio thrown away by killAudio (sent but never heard)."""
    dropped_caller_frames: int = 0
    """Caller frames not sent because the robot did not read (FreeSWITCH drops them too)."""


EndReason = Literal[
    "caller_hung_up",
    "robot_hung_up",
    "robot_closed",
    "transferred",
    "timeout",
    "connect_failed",
    "error",
]


class CallResult(BaseModel):
    """One simulated call. The audio fields stay in memory and out of the JSON."""

    call_id: str
    url: str
    metadata: dict[str, Any]
    started_at: datetime
    duration_ms: float = 0.0
    end_reason: EndReason = "error"
    robot_hung_up: bool = False
    """The robot ended the call: closed the socket, or sent `disconnect` to a peer that hangs up
    on it (`hangup_on_disconnect`)."""
    disconnect_ms: float | None = None
    """When the robot's first `disconnect` arrived (mod_audio_fork alone does not hang up)."""
    transferred: bool = False
    transfer_target: Any = None
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    frame_ms: int = 20
    frames_sent: int = 0
    utterances: list[UtteranceReport] = Field(default_factory=list)
    answers: list[AnswerReport] = Field(default_factory=list)
    events: list[EventReport] = Field(default_factory=list)
    marks: list[MarkReport] = Field(default_factory=list)
    quality: QualityReport = Field(default_factory=QualityReport)
    robot_turns: list[RobotTurnReport] = Field(default_factory=list)
    """Per robot turn (found by its marks): starvation gaps, cuts and resumes."""
    starvation_ms: Stats = Field(default_factory=Stats)
    """Each robot turn's longest starvation gap (0 when none)."""
    chunks: list[ChunkReport] = Field(default_factory=list)
    """Every BINARY message from the robot (only when the call kept its audio)."""
    jitter_samples_ms: list[float] = Field(default_factory=list, exclude=True, repr=False)
    sim_lag_max_ms: float = 0.0
    """How late the simulator's own 20 ms clock ran at worst (an overloaded simulator)."""
    caller_audio: bytes = Field(default=b"", exclude=True, repr=False)
    """Caller audio as sent, 8 kHz; frame k at offset (k-1)*frame."""
    robot_audio: bytes = Field(default=b"", exclude=True, repr=False)
    """Robot audio as received (every BINARY message, in order), 8 kHz."""
    robot_heard: bytes = Field(default=b"", exclude=True, repr=False)
    """Robot audio as heard, time-aligned with `caller_audio` (silence where nothing played)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def v2v_ms(self) -> list[float]:
        return [u.v2v_ms for u in self.utterances if u.v2v_ms is not None]

    def talk_over_values(self) -> list[float]:
        return [u.talk_over_ms for u in self.utterances if u.talk_over_ms is not None]

    def jitter_values(self) -> list[float]:
        return self.jitter_samples_ms

    def starvation_values(self) -> list[float]:
        """Each robot turn's longest starvation gap, ms."""
        return [t.starved_max_ms for t in self.robot_turns]


class CallSummary(BaseModel):
    call_id: str
    end_reason: EndReason
    duration_ms: float
    v2v_ms: list[float]
    talk_over_ms: list[float]
    underruns: int
    jitter_ms: Stats
    errors: list[str]
    warnings: list[str]

    @classmethod
    def of(cls, call: CallResult) -> CallSummary:
        return cls(
            call_id=call.call_id,
            end_reason=call.end_reason,
            duration_ms=call.duration_ms,
            v2v_ms=call.v2v_ms,
            talk_over_ms=call.talk_over_values(),
            underruns=call.quality.underruns,
            jitter_ms=call.quality.jitter_ms,
            errors=call.errors,
            warnings=call.warnings,
        )


class MultiResult(BaseModel):
    """N simultaneous calls: pooled percentiles over all calls."""

    calls_total: int
    completed: int
    errored: int
    wall_s: float
    v2v_ms: Stats
    talk_over_ms: Stats
    jitter_ms: Stats
    underruns: int
    calls_with_underruns: int
    starvation_ms: Stats = Field(default_factory=Stats)
    """Each robot turn's longest starvation gap, over all calls."""
    sim_lag_ms: Stats
    errors: list[str]
    summaries: list[CallSummary]
    calls: list[CallResult] = Field(default_factory=list, exclude=True, repr=False)

    @property
    def ok(self) -> bool:
        return self.errored == 0

    @classmethod
    def of(cls, calls: list[CallResult], wall_s: float, lags_s: list[float]) -> MultiResult:
        v2v = [v for c in calls for v in c.v2v_ms]
        talk_over = [t for c in calls for t in c.talk_over_values()]
        jitter = [j for c in calls for j in c.jitter_values()]
        return cls(
            calls_total=len(calls),
            completed=sum(1 for c in calls if c.ok),
            errored=sum(1 for c in calls if not c.ok),
            wall_s=round(wall_s, 2),
            v2v_ms=Stats.of(v2v),
            talk_over_ms=Stats.of(talk_over),
            jitter_ms=Stats.of(jitter),
            underruns=sum(c.quality.underruns for c in calls),
            calls_with_underruns=sum(1 for c in calls if c.quality.underruns),
            starvation_ms=Stats.of([g for c in calls for g in c.starvation_values()]),
            sim_lag_ms=Stats.of([lag * 1000.0 for lag in lags_s]),
            errors=[f"{c.call_id}: {e}" for c in calls for e in c.errors],
            summaries=[CallSummary.of(c) for c in calls],
            calls=calls,
        )
