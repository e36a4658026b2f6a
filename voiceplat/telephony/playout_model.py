"""A model of the peer's playout buffer, sans-I/O: what was sent, what the caller has heard.

FreeSWITCH appends what we send to a buffer that plays continuously at real time. Knowing when each
chunk was sent is enough to know how much the caller has heard at any moment, so the session can record
the text actually heard on barge-in, and the pacer can keep only a small lead in the buffer.
Positions are milliseconds of robot audio in this call's outbound stream.
"""

from __future__ import annotations


class PlayoutModel:
    def __init__(self) -> None:
        self.sent_ms = 0.0
        self.playout_end = 0.0
        """Clock time at which everything sent so far will have been played."""

    def on_send(self, ms: float, now: float) -> None:
        start = max(now, self.playout_end)
        self.playout_end = start + ms / 1000.0
        self.sent_ms += ms

    def ahead_ms(self, now: float) -> float:
        """Audio sent but not yet heard."""
        return max(0.0, self.playout_end - now) * 1000.0

    def heard_ms(self, now: float) -> float:
        return self.sent_ms - self.ahead_ms(now)

    def playing(self, now: float) -> bool:
        return self.playout_end > now

    def flush(self, now: float) -> float:
        """The peer dropped its buffer (killAudio): unheard audio never plays. Returns heard position."""
        self.sent_ms = self.heard_ms(now)
        self.playout_end = min(self.playout_end, now)
        return self.sent_ms
