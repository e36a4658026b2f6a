"""A robot turn in progress: what was said, where each sentence sits in the outbound stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from voiceplat.sessions.chunking import ChunkPlanner

if TYPE_CHECKING:
    from voiceplat.dialog.answerer import AnswerNotes


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class SpokenSentence:
    text: str
    start_ms: float
    end_ms: float


@dataclass
class RobotTurn:
    idx: int
    interruptible: bool = True
    started_at: datetime = field(default_factory=utcnow)
    sentences: list[SpokenSentence] = field(default_factory=list)
    first_audio_at: float | None = None
    """Session clock time when the first audio was queued."""
    llm_ttft_ms: float | None = None
    tts_ttfb_ms: float | None = None
    v2v_ms: float | None = None
    asr_ms: float | None = None
    user_speech_ended: float | None = None
    """Session clock time the caller stopped speaking, for voice-to-voice latency."""
    interrupted_at_ms: float | None = None
    """Stream position the caller had heard when barge-in flushed the audio."""
    error: str | None = None
    ends_call: bool = False
    transfer_to: str | None = None
    """The LLM asked (its transfer marker) to hand the caller over here once the turn is heard."""
    track: str | None = None
    starved_ms: float | None = None
    """Time the robot had nothing to send while the turn was not finished (total)."""
    starved_max_ms: float | None = None
    resumed: int = 0
    """Times the turn was paused for a possible interruption and resumed."""
    filler: str | None = None
    """The filler said to cover a coming gap (at most one per turn)."""
    ready_audio: dict[str, bytes] = field(default_factory=dict, repr=False)
    """Chunks synthesised before the turn began (a speculative answer's first), 8 kHz PCM."""
    notes: AnswerNotes | None = field(default=None, repr=False)
    """What the answer did: tool calls, an FAQ answer said as written, a form step."""
    planner: ChunkPlanner | None = field(default=None, repr=False)
    """The pipeline's chunk planner for this answer: told when each chunk's audio is queued."""

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    @property
    def interrupted(self) -> bool:
        return self.interrupted_at_ms is not None

    def heard_text(self) -> str:
        """Whole sentences heard, plus the heard share of the words of the sentence cut short."""
        if self.interrupted_at_ms is None:
            return self.text
        heard = self.interrupted_at_ms
        parts = []
        for sentence in self.sentences:
            if sentence.end_ms <= heard:
                parts.append(sentence.text)
            elif sentence.start_ms < heard:
                words = sentence.text.split()
                share = (heard - sentence.start_ms) / max(1.0, sentence.end_ms - sentence.start_ms)
                cut = int(len(words) * share)
                if cut:
                    parts.append(" ".join(words[:cut]) + "…")
        return " ".join(parts)
