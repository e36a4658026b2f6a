"""Decoding whole audio files that cloud TTS services hand back (WAV, MP3) into mono int16 PCM.

WAV is parsed here (RIFF chunks; integer PCM of 8-32 bits, 32/64-bit float, WAVE_FORMAT_EXTENSIBLE,
any channel count, mixed to mono): Python 3.11's `wave` module rejects float and extensible files,
which services do send. MP3 goes through `soundfile` (libsndfile >= 1.1 decodes MPEG audio; the
PyPI wheels bundle it), an optional package of the `cloud` extra, imported only when needed.
"""

from __future__ import annotations

import importlib.util
import io
import struct

import numpy as np

from voiceplat.audio.pcm import Pcm

PCM, FLOAT, EXTENSIBLE = 0x0001, 0x0003, 0xFFFE


class AudioFileError(ValueError):
    """Bytes that are not audio this module can decode."""


def sniff(data: bytes) -> str:
    """'wav', 'mp3' or 'unknown', from the first bytes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return "unknown"


def mp3_supported() -> bool:
    return importlib.util.find_spec("soundfile") is not None


def decode(data: bytes) -> Pcm:
    """Any supported file (by content, not by name) as mono int16 at its own rate."""
    kind = sniff(data)
    if kind == "wav":
        return decode_wav(data)
    if kind == "mp3":
        return decode_mp3(data)
    raise AudioFileError(f"not a WAV or MP3 file (starts with {data[:12]!r})")


def decode_wav(data: bytes) -> Pcm:
    if sniff(data) != "wav":
        raise AudioFileError("not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, position)
        body = data[position + 8 : position + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise AudioFileError("WAV fmt chunk is too short")
            tag, channels, rate = struct.unpack_from("<HHI", body, 0)
            bits = struct.unpack_from("<H", body, 14)[0]
            if tag == EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[
                    0
                ]  # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFileError("WAV data chunk before its fmt chunk")
            # Streamed WAVs may carry a 0 or 0xFFFFFFFF size: take what is there.
            if size in (0, 0xFFFFFFFF):
                body = data[position + 8 :]
            return _samples(body, *fmt)
        position += 8 + size + (size & 1)  # chunks are word-aligned
    raise AudioFileError("WAV file without a data chunk")


def _samples(raw: bytes, tag: int, channels: int, rate: int, bits: int) -> Pcm:
    if channels < 1 or rate < 1:
        raise AudioFileError(f"WAV with {channels} channels at {rate} Hz")
    width = bits // 8
    raw = raw[: len(raw) - len(raw) % (width * channels or 1)]
    if tag == PCM and bits == 8:
        samples = (np.frombuffer(raw, "u1").astype(np.float64) - 128) / 128
    elif tag == PCM and bits == 16:
        samples = np.frombuffer(raw, "<i2").astype(np.float64) / 32768
    elif tag == PCM and bits == 24:
        triples = np.frombuffer(raw, "u1").reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        samples = values.astype(np.float64) / (1 << 23)
    elif tag == PCM and bits == 32:
        samples = np.frombuffer(raw, "<i4").astype(np.float64) / (1 << 31)
    elif tag == FLOAT and bits in (32, 64):
        samples = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float64)
    else:
        raise AudioFileError(f"WAV format {tag:#06x} with {bits}-bit samples is not supported")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return Pcm.from_numpy(samples.astype(np.float32), rate)  # from_numpy clips to int16


def decode_mp3(data: bytes) -> Pcm:
    try:
        import soundfile
    except ImportError:
        raise AudioFileError(
            "MP3 decoding needs the soundfile package: pip install 'voiceplat[cloud]'"
        ) from None
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except (RuntimeError, ValueError) as exc:  # LibsndfileError is a RuntimeError
        raise AudioFileError(f"cannot decode MP3: {exc}") from None
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return Pcm(np.asarray(mono).astype("<i2").tobytes(), int(rate))
