"""WAV files: read any PCM WAV as mono int16, write mono or stereo."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.audio.resample import resample


class WavError(ValueError):
    """A WAV file that cannot be used, with a message for a person."""


def read_wav(path: str | Path, rate: int | None = CALL_RATE) -> Pcm:
    """Reads a PCM WAV (8/16/32-bit, any channels), mixes to mono and resamples to `rate`.

    `rate=None` keeps the file's own rate.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, file_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise WavError(f"{path}: file not found") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise WavError(f"{path}: not a readable PCM WAV file ({exc})") from None
    dtype = {1: "u1", 2: "<i2", 4: "<i4"}.get(width)
    if dtype is None:
        raise WavError(f"{path}: {8 * width}-bit samples are not supported; use 16-bit PCM")
    samples = np.frombuffer(raw[: len(raw) - len(raw) % (width * channels)], dtype=dtype)
    if width == 1:
        samples = (samples.astype(np.int32) - 128) << 8
    elif width == 4:
        samples = samples >> 16
    samples = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples
    pcm = Pcm(np.asarray(samples).astype("<i2").tobytes(), file_rate)
    return pcm if rate is None else resample(pcm, rate)


def write_wav(path: str | Path, pcm: Pcm) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(pcm.rate)
        wav.writeframes(pcm.data)


def write_stereo_wav(path: str | Path, left: bytes, right: bytes, rate: int = CALL_RATE) -> None:
    """Writes two mono int16 tracks as one stereo file, padding the shorter with silence."""
    a = np.frombuffer(left, dtype="<i2")
    b = np.frombuffer(right, dtype="<i2")
    n = max(len(a), len(b))
    stereo = np.zeros((n, 2), dtype="<i2")
    stereo[: len(a), 0] = a
    stereo[: len(b), 1] = b
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(stereo.tobytes())
