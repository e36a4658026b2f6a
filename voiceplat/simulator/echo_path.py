"""The robot's own voice coming back in the caller's audio: a speakerphone or a hybrid's echo.

`EchoPath` mixes what the caller heard (the playout, frame by frame) into the caller's outgoing
frames, `delay_ms` later and `gain_db` quieter, and sends the sum through G.711 mu-law (encode,
decode) as a telephone line would. Time alignment follows the simulator's frame clock: the robot
frame played at tick k is heard during [k, k+1) frames, caller frame k holds the caller's audio
of [k-1, k) frames; so caller sample n carries heard sample n - delay.
"""

from __future__ import annotations

import numpy as np

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.audio.pcm import CALL_RATE


class EchoPath:
    def __init__(
        self, gain_db: float, delay_ms: float, frame_samples: int, rate: int = CALL_RATE
    ) -> None:
        if delay_ms < 0:
            raise ValueError(f"echo delay must not be negative (got {delay_ms:g} ms)")
        self.gain = float(10.0 ** (gain_db / 20.0))
        self.delay = round(delay_ms * rate / 1000.0)
        self.frame = frame_samples
        # Heard samples from absolute index `_base` on; index 0 is the start of tick 0's frame,
        # which is silence (nothing plays before the first tick).
        self._heard = np.zeros(frame_samples, dtype=np.float64)
        self._base = 0
        self._sent = 0  # caller samples mixed so far (caller frame k starts at (k-1) frames)

    def heard(self, frame: bytes) -> None:
        """The frame the caller heard at this tick (call before `mix` of the same tick)."""
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        self._heard = np.concatenate((self._heard, samples))
        # Keep what the next caller frames still need: from (sent - delay) on.
        drop = self._sent - self.delay - self._base
        if drop > 0:
            self._heard = self._heard[drop:]
            self._base += drop

    def mix(self, frame: bytes) -> bytes:
        """The caller's frame with the echo added, through mu-law."""
        caller = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        n = caller.size
        first = self._sent - self.delay  # heard index of this frame's first sample
        echo = np.zeros(n, dtype=np.float64)
        lo, hi = max(first, self._base), min(first + n, self._base + self._heard.size)
        if hi > lo:
            echo[lo - first : hi - first] = self._heard[lo - self._base : hi - self._base]
        self._sent += n
        mixed = np.clip(np.rint(caller + self.gain * echo), -32768, 32767).astype("<i2")
        return ulaw_decode(ulaw_encode(mixed.tobytes()))
