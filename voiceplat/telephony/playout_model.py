"""A model of the peer's playout, sans-I/O: what was sent, what the caller has heard, what it holds.

FreeSWITCH appends what we send to a buffer that plays continuously at real time. Knowing when each
chunk was sent is enough to know how much the caller has heard at any moment (`PlayoutModel`, the
playout clock), so the session can record the text actually heard on barge-in, know when a turn has
been heard, and the pacer can keep only a small lead in the buffer. The clock is a lower bound: audio
cannot be heard before it was sent, nor faster than real time. `PrebufferModel` is what
mod_audio_fork holds back before playing. Positions are milliseconds of robot audio in this call's
outbound stream.
"""

from __future__ import annotations

from voiceplat.telephony.ingress.audio_fork.codec import PREBUFFER_FIRST_SAMPLES, PREBUFFER_SAMPLES


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


class PrebufferModel:
    """mod_audio_fork's pre-buffer and mark inventory, as far as what the robot sent tells.

    The module holds BINARY audio until `threshold` samples (marker samples included) have come,
    then plays all of it (lws_glue.cpp `processIncomingBinary`); marks sent since the last BINARY
    message wait in its inventory and go, as markers, before the next one's audio. Knowing what is
    held lets the robot release the end of a turn (a silence pad) instead of leaving it unplayed
    until the next turn, and tell which marks' markers a killAudio flushes (see AudioForkChannel.clear).

    `count_markers=False` models a build without marks (the pre-buffer, no markers): until the
    peer shows which it is, the channel keeps both models and pads enough for either.
    """

    def __init__(self, *, count_markers: bool = True) -> None:
        self.count_markers = count_markers
        self.threshold = PREBUFFER_FIRST_SAMPLES
        self.held = 0
        """Samples (markers included, if counted) the module holds in its pre-buffer."""
        self.held_marks: list[str] = []
        """Marks whose markers are in the pre-buffer."""
        self.inventory: list[str] = []
        """Marks sent since the last BINARY message."""

    def on_mark(self, name: str) -> None:
        if self.count_markers:
            self.inventory.append(name)

    def on_binary(self, samples: int) -> list[str]:
        """A BINARY message went out; returns the marks it put into use."""
        in_use, self.inventory = self.inventory, []
        self.held += samples + len(in_use)
        self.held_marks += in_use
        if self.held >= self.threshold:
            self.held, self.held_marks = 0, []
            self.threshold = PREBUFFER_SAMPLES
        return in_use

    def pad_samples(self) -> int:
        """Samples of silence that make the module play all it holds (0: it holds nothing).

        Enough without the inventory's markers, which only add to what the module counts."""
        return self.threshold - self.held if self.held else 0
