"""What is recorded about a call (the call, its turns, its pipeline log) and what sinks receive.

Records are treated as values: the recorder never mutates one it has handed to a sink; a change
makes a new copy. All times are timezone-aware UTC (a naive datetime is taken as UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Source = Literal["freeswitch", "asterisk", "twilio", "web", "sip", "simulator"]
CallStatus = Literal["in_progress", "completed", "failed"]
Role = Literal["user", "robot"]

END_REASONS = (
    "caller_hangup",
    "robot_goodbye",
    "no_input",
    "max_duration",
    "protocol_error",
    "error",
    "shutdown",
    "transferred",
    "dtmf_hangup",
    "rtp_timeout",
)
"""End reasons the platform uses; `end_reason` is a free string so new ones need no migration."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class _Record(BaseModel):
    # Unknown fields are errors: `CallLog.update(answerd_at=...)` must fail loudly, not vanish.
    model_config = ConfigDict(extra="forbid")


class CallRecord(_Record):
    call_id: str
    robot: str
    mode: str
    source: Source = "freeswitch"
    caller: str | None = None
    callee: str | None = None
    started_at: UtcDatetime = Field(default_factory=utcnow)
    answered_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    duration_sec: float | None = None
    status: CallStatus = "in_progress"
    end_reason: str | None = None
    turns: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    dtmf: str = Field("", description="The keys the caller pressed, in order (e.g. '12#').")
    transfer_target: str | None = Field(
        None, description="Where the call was handed over (end_reason 'transferred')."
    )
    outcome: str | None = Field(
        None,
        description="What the call achieved: 'booked' (a tool's outcome), 'answered', "
        "'transferred', 'no_answer_given', 'abandoned', 'failed' (sessions/outcome.py); "
        "a free string, like end_reason. None: not decided (a call still in progress).",
    )
    summary: str | None = Field(
        None,
        description="A sentence or two on what the caller wanted and what happened, written "
        "by the LLM after the call (it arrives as an amendment of the finished record).",
    )
    recording: str | None = Field(
        None,
        description="The call's recording (a stereo WAV or FLAC, caller left, robot right), an "
        "absolute path; set when the call opens, the file is written after it ends "
        "(voiceplat/recording/). None: the robot does not record.",
    )
    recording_error: str | None = Field(
        None,
        description="Why the recording could not be written (a full disk...); it arrives as an "
        "amendment of the finished record. The call itself is never affected.",
    )


class ToolCallRecord(_Record):
    """One tool the robot called during its turn: a webhook or a built-in (transfer, end_call)."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    ok: bool
    result: Any = Field(None, description="The tool's JSON answer (None when it failed).")
    error: str | None = Field(None, description="Why it failed (timeout, HTTP 500, bad args...).")
    ms: float | None = Field(None, description="How long the call took, in milliseconds.")


class TurnRecord(_Record):
    call_id: str
    idx: int = Field(ge=0)
    role: Role
    text: str = ""
    heard_text: str | None = Field(None, description="What the caller heard of a cut robot turn.")
    started_at: UtcDatetime = Field(default_factory=utcnow)
    ended_at: UtcDatetime | None = None
    interrupted: bool = False
    asr_ms: float | None = None
    llm_ttft_ms: float | None = None
    tts_ttfb_ms: float | None = None
    v2v_ms: float | None = Field(
        None, description="End of the caller's speech to the first robot audio sent."
    )
    track: str | None = None
    error: str | None = None
    ignored: str | None = Field(
        None,
        description="Why a user turn was left out of the dialog (the utterance filter's reason: "
        "'no_words', 'hallucination', 'too_short', ...); None: it was in the dialog.",
    )
    starved_ms: float | None = Field(
        None,
        description="Robot turn: total time the robot had no audio to send while the turn "
        "was not finished (dead air inside the answer).",
    )
    starved_max_ms: float | None = Field(
        None, description="Robot turn: the longest single such gap."
    )
    resumed: int = Field(
        0, ge=0, description="Robot turn: times it went on after a false interruption."
    )
    tool_calls: list[ToolCallRecord] = Field(
        default_factory=list, description="Robot turn: the tools it called, in order."
    )


class LogEvent(_Record):
    """One pipeline event: speech_start, speech_end, asr_done, llm_first_token, tts_first_audio,
    barge_in, backchannel, error, …"""

    at: UtcDatetime = Field(default_factory=utcnow)
    event: str
    data: dict[str, Any] = Field(default_factory=dict)


class CallSnapshot(_Record):
    """Everything known about a call at one moment; the shape of the JSON file."""

    call: CallRecord
    turns: list[TurnRecord] = Field(default_factory=list)
    pipeline_log: list[LogEvent] = Field(default_factory=list)


# Items a sink receives, in order, per call. Each carries what a store needs to write it on its
# own: per-turn stores key turns by (call_id, idx), so writing one twice replaces it.


@dataclass(frozen=True, slots=True)
class CallOpened:
    call: CallRecord


@dataclass(frozen=True, slots=True)
class CallUpdated:
    call: CallRecord


@dataclass(frozen=True, slots=True)
class TurnWritten:
    """A turn was added or replaced (same idx)."""

    call: CallRecord
    turn: TurnRecord


@dataclass(frozen=True, slots=True)
class EventLogged:
    call: CallRecord
    event: LogEvent


@dataclass(frozen=True, slots=True)
class CallFinished:
    snapshot: CallSnapshot

    @property
    def call(self) -> CallRecord:
        return self.snapshot.call


AMENDABLE = frozenset({"summary", "outcome", "recording", "recording_error"})
"""The fields a finished call's record may still change: what is worked out after the call
(the summary, the outcome, whether its recording could be written)."""


@dataclass(frozen=True, slots=True)
class CallAmended:
    """A finished call's record changed afterwards (the summary the LLM wrote after the call).

    `call` is the whole record with the changes; a store sets only the fields in `changes`
    (keys from AMENDABLE), so two amendments made from the same snapshot never undo each other,
    and it writes the whole record only if it has none for the call yet.
    """

    call: CallRecord
    changes: dict[str, Any]


RecordItem = CallOpened | CallUpdated | TurnWritten | EventLogged | CallFinished | CallAmended
