"""A WAV file read as it arrives (sans-I/O): the header first, then PCM samples chunk by chunk.

Speech servers that stream `wav` (OpenAI's /audio/speech, Kokoro-FastAPI, speaches) write the
header before they know the length, so the RIFF and `data` sizes are placeholders (0 or
0xFFFFFFFF): the size of the `data` chunk is ignored and everything after its header is audio.
Chunks before `data` other than `fmt ` (LIST, fact) are skipped. 16-bit PCM only, any number of
channels (mixed to mono).
"""

from __future__ import annotations

import struct

import numpy as np

from voiceplat.audio.pcm import Pcm

PCM_FORMATS = (1, 0xFFFE)  # WAVE_FORMAT_PCM, WAVE_FORMAT_EXTENSIBLE
MAX_HEADER_BYTES = 1 << 16
"""A header longer than this is not a streamed speech WAV (a refusal, not a wait for more)."""


class WavStreamError(ValueError):
    """The bytes are not a 16-bit PCM WAV stream."""


class WavStream:
    """Feed it the body's bytes in any pieces; it returns the audio they complete."""

    def __init__(self) -> None:
        self._buffer = b""
        self._in_data = False
        self.rate: int | None = None
        self.channels = 1

    def feed(self, data: bytes) -> Pcm | None:
        self._buffer += data
        if not self._in_data and not self._read_header():
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise WavStreamError(f"no audio data in the first {MAX_HEADER_BYTES} bytes")
            return None
        frame = 2 * self.channels
        cut = len(self._buffer) - len(self._buffer) % frame
        if not cut:
            return None
        samples, self._buffer = self._buffer[:cut], self._buffer[cut:]
        assert self.rate is not None
        if self.channels == 1:
            return Pcm(samples, self.rate)
        mixed = np.frombuffer(samples, dtype="<i2").reshape(-1, self.channels).mean(axis=1)
        return Pcm(mixed.astype("<i2").tobytes(), self.rate)

    def _read_header(self) -> bool:
        """Consumes the header once it is complete; False while more bytes are needed."""
        buffer = self._buffer
        if len(buffer) < 12:
            return False
        if buffer[:4] != b"RIFF" or buffer[8:12] != b"WAVE":
            raise WavStreamError(f"not a WAV stream (starts with {buffer[:12]!r})")
        offset = 12
        while len(buffer) >= offset + 8:
            chunk_id, size = (
                buffer[offset : offset + 4],
                struct.unpack_from("<I", buffer, offset + 4)[0],
            )
            if chunk_id == b"data":
                if self.rate is None:
                    raise WavStreamError("the data chunk comes before the fmt chunk")
                self._buffer = buffer[offset + 8 :]
                self._in_data = True
                return True
            end = offset + 8 + size + size % 2  # chunks are padded to even sizes
            if len(buffer) < end:
                return False
            if chunk_id == b"fmt ":
                self._read_format(buffer[offset + 8 : end])
            offset = end
        return False

    def _read_format(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise WavStreamError(f"fmt chunk of {len(fmt)} bytes")
        tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
        if tag not in PCM_FORMATS or bits != 16:
            raise WavStreamError(f"format {tag} with {bits}-bit samples; expected 16-bit PCM")
        if channels < 1 or not 1000 <= rate <= 192000:
            raise WavStreamError(f"{channels} channels at {rate} Hz")
        self.rate, self.channels = rate, channels
