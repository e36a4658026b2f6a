"""Streaming, anti-aliased resampling (soxr). Never decimate by dropping samples."""

from __future__ import annotations

import numpy as np
import soxr

from voiceplat.audio.pcm import Pcm


class StreamResampler:
    """Resamples a stream of int16 chunks from one rate to another, keeping filter state."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        )

    def process(self, data: bytes, last: bool = False) -> bytes:
        if self._stream is None:
            return data
        samples = np.frombuffer(data, dtype="<i2")
        return self._stream.resample_chunk(samples, last=last).astype("<i2").tobytes()

    def flush(self) -> bytes:
        return self.process(b"", last=True)


def resample(pcm: Pcm, rate: int) -> Pcm:
    """Resamples a whole clip (not streaming)."""
    if pcm.rate == rate:
        return pcm
    out = soxr.resample(pcm.to_numpy(), pcm.rate, rate, quality="HQ")
    return Pcm(np.asarray(out, dtype="<i2").tobytes(), rate)
