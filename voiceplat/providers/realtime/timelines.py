"""The arithmetic that ties a Realtime server's audio timelines to the call's, sans-I/O: how much
of an output item the caller actually heard (`conversation.item.truncate`), and when the caller
really stopped speaking (`speech_stopped.audio_end_ms` → session clock).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ItemAudio:
    """One output item's audio, as the server counts it and as the call plays it.

    `start_ms` is the call's outbound stream position (CallChannel.queued_ms) where the item's first
    audio was queued; `received_ms` is how much audio the server has sent for it. Resampling keeps
    durations, so the caller has heard `heard_ms - start_ms` of the item.
    """

    item_id: str
    content_index: int = 0
    start_ms: float | None = None
    received_ms: float = 0.0

    def audio_end_ms(self, heard_ms: float) -> int:
        """`audio_end_ms` for conversation.item.truncate: the played part, never past the end.

        The server rejects a value beyond the audio it sent, so the result is clamped to
        `received_ms`, and rounded down (the caller did not hear the next millisecond).
        """
        if self.start_ms is None:
            return 0
        played = min(self.received_ms, heard_ms - self.start_ms)
        return max(0, int(played))


class InputTimeline:
    """Maps the server's input-buffer times (speech_started/stopped) to the session clock.

    Caller audio is streamed as it arrives, in real time, so the input buffer position p was
    spoken at about the send time of the latest chunk minus (its end − p). Reset per connection:
    each server session's buffer starts at 0.
    """

    def __init__(self) -> None:
        self.sent_ms = 0.0
        self._sent_at: float | None = None

    def reset(self) -> None:
        self.sent_ms = 0.0
        self._sent_at = None

    def on_sent(self, ms: float, now: float) -> None:
        self.sent_ms += ms
        self._sent_at = now

    def clock_at(self, audio_ms: int | None, fallback: float) -> float:
        if audio_ms is None or self._sent_at is None:
            return fallback
        return min(fallback, self._sent_at - (self.sent_ms - audio_ms) / 1000.0)
