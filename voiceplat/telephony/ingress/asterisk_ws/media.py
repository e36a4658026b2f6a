"""The media formats chan_websocket may carry, to and from the call path's 8 kHz s16le.

chan_websocket sends and takes BINARY frames in the channel's native format, the codec of
`Dial(WebSocket/<connection>/c(<codec>))` (else the caller's first codec), named in MEDIA_START's
`format`. We take the formats it re-frames itself (not passthrough): `slin` (8 kHz signed linear,
host byte order: little-endian on the x86/ARM hosts Asterisk runs on), `slin16`, `ulaw`, `alaw`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.audio.resample import StreamResampler
from voiceplat.telephony.events import CallProtocolError


def _alaw_decode_table() -> np.ndarray:
    # G.711 A-law (Sun's g711.c alaw2linear).
    table = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        a = byte ^ 0x55
        segment = (a & 0x70) >> 4
        value = (a & 0x0F) << 4
        if segment == 0:
            value += 8
        elif segment == 1:
            value += 0x108
        else:
            value = (value + 0x108) << (segment - 1)
        table[byte] = value if a & 0x80 else -value
    return table


def _alaw_encode_table() -> np.ndarray:
    # G.711 A-law (Sun's g711.c linear2alaw) for every int16, indexed by its uint16 bits: exact,
    # and one numpy take per frame.
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32) >> 3
    mask = np.where(samples >= 0, 0xD5, 0x55)
    magnitude = np.where(samples >= 0, samples, -samples - 1)
    segment_ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    segment = np.searchsorted(segment_ends, magnitude, side="left")
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> np.minimum(shift, 7)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


_ALAW_DECODE = _alaw_decode_table()
_ALAW_ENCODE = _alaw_encode_table()


def alaw_decode(data: bytes) -> bytes:
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def alaw_encode(data: bytes) -> bytes:
    samples = np.frombuffer(data, dtype="<i2").view(np.uint16)
    return _ALAW_ENCODE[samples].tobytes()


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    rate: int
    sample_bytes: int
    """Bytes per sample on the wire (1 for G.711)."""

    def frame_bytes(self, ms: int = 20) -> int:
        return self.rate * ms // 1000 * self.sample_bytes

    def wire_bytes(self, pcm8k_bytes: int) -> int:
        """Wire bytes of `pcm8k_bytes` of 8 kHz s16le audio in this format."""
        return pcm8k_bytes // 2 * self.rate // 8000 * self.sample_bytes


FORMATS = {
    "slin": Format("slin", 8000, 2),
    "slin16": Format("slin16", 16000, 2),
    "ulaw": Format("ulaw", 8000, 1),
    "alaw": Format("alaw", 8000, 1),
}


def format_named(name: str) -> Format:
    found = FORMATS.get(name)
    if found is None:
        raise CallProtocolError(
            f"MEDIA_START format {name!r} is not supported: dial with c(slin), c(slin16), "
            "c(ulaw) or c(alaw)"
        )
    return found


class Transcoder:
    """One call's conversions: wire format to 8 kHz s16le (inbound) and back (outbound)."""

    def __init__(self, fmt: Format) -> None:
        self.format = fmt
        self._down = StreamResampler(fmt.rate, 8000) if fmt.rate != 8000 else None
        self._up = StreamResampler(8000, fmt.rate) if fmt.rate != 8000 else None

    def decode(self, wire: bytes) -> bytes:
        name = self.format.name
        if name == "ulaw":
            return ulaw_decode(wire)
        if name == "alaw":
            return alaw_decode(wire)
        if self._down is not None:
            return self._down.process(wire)
        return wire

    def encode(self, pcm8k: bytes) -> bytes:
        """8 kHz s16le to the wire. For slin16 the resampler's delay holds back a few samples
        (soxr's filter), which the next call gives out; a turn's end is padded with silence anyway."""
        name = self.format.name
        if name == "ulaw":
            return ulaw_encode(pcm8k)
        if name == "alaw":
            return alaw_encode(pcm8k)
        if self._up is not None:
            return self._up.process(pcm8k)
        return pcm8k
