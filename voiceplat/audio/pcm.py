"""PCM audio as it travels along the call path: mono, signed 16-bit little-endian."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CALL_RATE = 8000
"""Sample rate of the call path (FreeSWITCH L16 8 kHz)."""
FRAME_MS = 20
SAMPLE_WIDTH = 2


def frame_bytes(ms: int = FRAME_MS, rate: int = CALL_RATE) -> int:
    """Bytes in `ms` milliseconds of mono int16 audio."""
    return rate * ms // 1000 * SAMPLE_WIDTH


def duration_ms(nbytes: int, rate: int = CALL_RATE) -> float:
    return nbytes / SAMPLE_WIDTH * 1000.0 / rate


@dataclass(frozen=True, slots=True)
class Pcm:
    """A chunk of mono int16 little-endian audio at `rate` Hz."""

    data: bytes
    rate: int = CALL_RATE

    def __post_init__(self) -> None:
        if len(self.data) % SAMPLE_WIDTH:
            raise ValueError(f"PCM data has an odd number of bytes ({len(self.data)})")

    @property
    def samples(self) -> int:
        return len(self.data) // SAMPLE_WIDTH

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate

    def to_numpy(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype="<i2")

    def to_float32(self) -> np.ndarray:
        return self.to_numpy().astype(np.float32) / 32768.0

    @classmethod
    def from_numpy(cls, samples: np.ndarray, rate: int) -> Pcm:
        if samples.dtype.kind == "f":
            samples = np.clip(samples * 32768.0, -32768, 32767)
        return cls(samples.astype("<i2").tobytes(), rate)

    @classmethod
    def silence(cls, ms: float, rate: int = CALL_RATE) -> Pcm:
        return cls(bytes(int(rate * ms / 1000) * SAMPLE_WIDTH), rate)

    def __add__(self, other: Pcm) -> Pcm:
        if other.rate != self.rate:
            raise ValueError(f"cannot join {self.rate} Hz and {other.rate} Hz audio")
        return Pcm(self.data + other.data, self.rate)


def rms(data: bytes) -> float:
    """Root-mean-square level of int16 samples (0 for empty input)."""
    if len(data) < SAMPLE_WIDTH:
        return 0.0
    samples = np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples)))


class Framer:
    """Cuts a byte stream of any chunk sizes into fixed frames, keeping the remainder."""

    def __init__(self, size: int = frame_bytes()) -> None:
        self.size = size
        self._buffer = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        if not self._buffer and len(data) == self.size:
            return [data]  # the usual 20 ms message: no copying
        self._buffer += data
        count = len(self._buffer) // self.size
        frames = [bytes(self._buffer[i * self.size : (i + 1) * self.size]) for i in range(count)]
        del self._buffer[: count * self.size]
        return frames
