"""A call's two-track tape, sans-I/O: caller and robot audio on ONE clock, as the caller heard it.

The clock is the caller channel's sample count: caller audio is appended as it arrives, so the
n-th caller sample is at tape sample n. Robot audio is placed where it starts playing: now on
that clock, or right after the robot audio still playing (audio queued behind audio plays after
it, in real time). A barge-in flushes what the caller had not heard yet: `cut(heard_ms)` takes
the channel's heard position (a position in the channel's outbound stream, the ms that
`CallChannel.play` and `clear` speak in) and drops the robot audio after it, so the tape holds
what the caller actually heard. `render()` gives the stereo tape: caller left, robot right.

Memory: both tracks are kept as 8 kHz 16-bit PCM until the tape is written after the call:
16 kB/s each, 32 kB/s per call (about 19 MB for a 10-minute call; `max_call_s` bounds a call).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voiceplat.audio.pcm import CALL_RATE

SAMPLES_PER_MS = CALL_RATE / 1000


@dataclass(slots=True)
class _Piece:
    """Robot audio as queued: where it is on the tape and where it is in the outbound stream."""

    at: int
    """Tape sample it starts at."""
    stream_ms: float
    """Its start in the channel's outbound stream."""
    data: bytes


class Tape:
    def __init__(self) -> None:
        self._caller = bytearray()
        self._robot: list[_Piece] = []
        self.stopped = False

    @property
    def now(self) -> int:
        """The clock: caller samples so far."""
        return len(self._caller) // 2

    @property
    def robot_end(self) -> int:
        """The tape sample where the robot audio placed so far ends."""
        if not self._robot:
            return 0
        last = self._robot[-1]
        return last.at + len(last.data) // 2

    def caller(self, data: bytes) -> None:
        """Caller audio as it arrives (8 kHz s16le mono); it advances the clock."""
        if not self.stopped:
            self._caller += data[: len(data) - len(data) % 2]

    def robot(self, data: bytes, stream_ms: float) -> int:
        """Robot audio queued at stream position `stream_ms`; returns the tape sample it starts at."""
        data = data[: len(data) - len(data) % 2]
        at = max(self.now, self.robot_end)
        if data and not self.stopped:
            self._robot.append(_Piece(at, stream_ms, data))
        return at

    def cut(self, heard_ms: float) -> None:
        """The caller heard the outbound stream up to `heard_ms`; what came after never played."""
        while self._robot:
            last = self._robot[-1]
            if last.stream_ms >= heard_ms:
                self._robot.pop()
                continue
            keep = int((heard_ms - last.stream_ms) * SAMPLES_PER_MS) * 2
            if keep < len(last.data):
                last.data = last.data[:keep]
            break

    def stop(self, heard_ms: float) -> None:
        """The call ended: robot audio not heard by now is cut, and nothing more is taken."""
        self.cut(heard_ms)
        self.stopped = True

    def render(self) -> np.ndarray:
        """The stereo tape, shape (samples, 2) int16: caller left, robot right; as long as the
        longer track (silence where a track had nothing)."""
        length = max(self.now, self.robot_end)
        out = np.zeros((length, 2), dtype=np.int16)
        out[: self.now, 0] = np.frombuffer(bytes(self._caller), dtype="<i2")
        for piece in self._robot:
            samples = np.frombuffer(piece.data, dtype="<i2")
            out[piece.at : piece.at + len(samples), 1] = samples
        return out
