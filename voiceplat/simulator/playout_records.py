"""What the caller heard, as records: answers, underruns, chunks received and killAudio.

`peer_playout.Playout` fills them in; `report.py` defines the measures made from them.
"""

from __future__ import annotations

from dataclasses import dataclass

ANSWER_GAP_S = 0.3
"""Robot audio separated by more than this much time with nothing received and played is two
answers; a shorter gap inside an answer is an underrun."""


@dataclass(slots=True)
class Answer:
    """One stretch of robot audio as the caller heard it. Times in seconds on the call clock."""

    index: int
    start: float
    """When its first sample was heard (playout start)."""
    first_arrival: float
    """When the chunk holding its first sample arrived."""
    end: float | None = None
    """When its last sample finished playing (None while it still plays)."""
    bytes_heard: int = 0
    underruns: int = 0
    ended_by: str = "playing"
    """"natural" (ran out), "killAudio" (flushed), "hangup" (the call ended under it)."""
    killed_at: float | None = None

    @property
    def cut(self) -> bool:
        return self.ended_by == "killAudio"


@dataclass(frozen=True, slots=True)
class Underrun:
    at: float
    """When audio resumed after the gap."""
    gap_s: float
    """Silence the caller heard inside the answer."""
    answer: int


@dataclass(frozen=True, slots=True)
class Chunk:
    arrival: float
    nbytes: int
    jitter_s: float | None
    """None for the first chunk of a stream, which defines the reference."""


@dataclass(frozen=True, slots=True)
class Kill:
    at: float
    flushed_bytes: int
    cleared_marks: tuple[str, ...]
    pos: int = 0
    """Stream position of the first byte flushed."""
    received: int = 0
    """Stream bytes received by then: audio after it was sent after the killAudio (what the
    pre-buffer still held was received before and is not a resume when it plays)."""
