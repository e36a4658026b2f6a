"""Checks on a call recording (stereo 8 kHz WAV, caller left, robot right) for the talk page's
test: is the caller's speech in it (cross-correlation), where the robot's tone sounds and stops."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

RATE = 8000
WINDOW = RATE // 100  # 10 ms
LOUD_RMS = 100.0
"""A 10 ms window with an RMS over this (of 32768) has sound in it."""


def read_recording(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) of a stereo 16-bit 8 kHz WAV, as float arrays; anything else fails."""
    with wave.open(str(path)) as wav:
        layout = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        assert layout == (2, 2, RATE), f"{path}: (channels, bytes, rate) {layout}"
        data = wav.readframes(wav.getnframes())
    stereo = np.frombuffer(data, dtype="<i2").reshape(-1, 2).astype(np.float64)
    return stereo[:, 0], stereo[:, 1]


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2), f"{path}: not 16-bit mono"
        rate = wav.getframerate()
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float64), rate


def speech_at_8k(path: Path) -> np.ndarray:
    """The sound part of a mono WAV (leading and trailing silence off), resampled to 8 kHz
    (soxr, as a phone line's audio would be)."""
    samples, rate = read_mono(path)
    audio = soxr.resample(samples, rate, RATE, quality="HQ")
    loud = np.flatnonzero(window_rms(audio) > LOUD_RMS)
    assert loud.size, f"{path}: no sound in it"
    return np.asarray(audio[loud[0] * WINDOW : (loud[-1] + 1) * WINDOW])


def window_rms(track: np.ndarray) -> np.ndarray:
    """RMS of each whole 10 ms window."""
    frames = track[: len(track) // WINDOW * WINDOW].reshape(-1, WINDOW)
    return np.asarray(np.sqrt(np.mean(frames**2, axis=1)))


def best_match(track: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(seconds into `track`, normalised correlation) of where `reference` matches best: at each
    lag, the cosine of `reference` and the stretch of `track` under it (1.0: the same waveform,
    any gain). Every lag counts, so a reference played again and again matches at each play."""
    n = len(track)
    size = len(reference)
    assert n >= size, "the track is shorter than the reference"
    fft_n = 1 << (n + size).bit_length()
    corr = np.fft.irfft(np.fft.rfft(track, fft_n) * np.conj(np.fft.rfft(reference, fft_n)), fft_n)
    corr = corr[: n - size + 1]  # lag k: track[k : k + size]
    power = np.concatenate(([0.0], np.cumsum(track**2)))
    energy = power[size:] - power[: n - size + 1]
    # stretches of near-silence would divide noise by nothing: they cannot match speech anyway
    scores = corr / (np.sqrt(np.maximum(energy, size * LOUD_RMS**2)) * np.linalg.norm(reference))
    k = int(np.argmax(scores))
    return k / RATE, float(scores[k])


def sound_runs(track: np.ndarray, max_gap_s: float = 0.05) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch with sound, gaps up to `max_gap_s` bridged (the fake
    TTS fades in and out at each chunk)."""
    loud = window_rms(track) > LOUD_RMS
    runs: list[tuple[float, float]] = []
    for index in np.flatnonzero(loud):
        start, end = float(index * WINDOW / RATE), float((index + 1) * WINDOW / RATE)
        if runs and start - runs[-1][1] <= max_gap_s:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def tone_share(track: np.ndarray, start_s: float, end_s: float, hz: float) -> float:
    """The share of the energy in [start, end) that lies within ±20 Hz of `hz`."""
    part = track[int(start_s * RATE) : int(end_s * RATE)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part)))) ** 2
    freqs = np.fft.rfftfreq(len(part), 1 / RATE)
    return float(spectrum[np.abs(freqs - hz) <= 20].sum() / max(spectrum.sum(), 1e-12))


def band_rms(track: np.ndarray, start_s: float, end_s: float, hz: float) -> float:
    """The RMS of what lies within ±20 Hz of `hz` in [start, end) (a sine of amplitude A: A/√2)."""
    part = track[int(start_s * RATE) : int(end_s * RATE)]
    spectrum = np.fft.rfft(part)
    freqs = np.fft.rfftfreq(len(part), 1 / RATE)
    spectrum[np.abs(freqs - hz) > 20] = 0
    return float(np.sqrt(np.mean(np.fft.irfft(spectrum, len(part)) ** 2)))
