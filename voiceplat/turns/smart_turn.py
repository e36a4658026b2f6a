"""Smart Turn v3: the probability that a caller's turn is complete, from the audio alone.

Smart Turn v3.2 (pipecat-ai, BSD-2) is a Whisper-tiny encoder with a classifier head, int8 ONNX,
~8 MB, trained on 23 languages including Russian. It hears prosody and the shape of the phrase
("Я хотел бы…" with a level pitch is unfinished; a falling "…к терапевту." is done), which silence
length alone cannot. The model file comes from the pinned pipecat-ai wheel (`voiceplat models
prepare smart-turn-v3`, voiceplat/models/catalog.py); pipecat itself is never imported.

The input is what pipecat's `LocalSmartTurnAnalyzerV3` gives it (checked sample for sample
against pipecat's own code in tests/unit/test_smart_turn_pipecat.py):

1. the turn so far, int16 → float32 / 32768, its last 8 s;
2. resampled to 16 kHz with soxr (HQ). The model hears 16 kHz only: 8 kHz samples read as 16 kHz
   are speech at double speed and pitch, and the model then calls unfinished phrases complete
   (pipecat issue 3844). Our call audio is 8 kHz, so this step always runs;
3. the last 8 s kept, or zeros prepended up to 8 s (the end of the turn sits at the end);
4. Whisper log-mel features (80 mels, 25 ms window, 10 ms hop) of the zero-mean, unit-variance
   waveform, clamped to 8 below their peak and scaled by (x + 4) / 4: shape (80, 800);
5. the model's output, already a sigmoid: P(turn complete).

A prediction costs tens of milliseconds of one core; `predict_async` runs it on the instance's
single worker thread so the event loop never waits and predictions never pile onto both cores.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from voiceplat.audio.pcm import CALL_RATE

MODEL_NAME = "smart-turn-v3"
"""The catalog entry (voiceplat/models/catalog.py) that `SmartTurn.load()` opens by default."""
MODEL_RATE = 16000
WINDOW_S = 8
N_FFT = 400
HOP = 160
N_MELS = 80


class SmartTurnError(RuntimeError):
    """The model cannot be loaded; the message says how to prepare it."""


def _hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    # Slaney's scale, as Whisper's feature extractor: linear below 1 kHz, logarithmic above.
    freq = np.asarray(freq, dtype=np.float64)
    linear = 3.0 * freq / 200.0
    log = 15.0 + np.log(np.maximum(freq, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(freq >= 1000.0, log, linear)


def _mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    linear = 200.0 * mels / 3.0
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0))
    return np.where(mels >= 15.0, log, linear)


def _mel_filters() -> np.ndarray:
    """Slaney-normalised triangular filters, shape (N_MELS, N_FFT // 2 + 1)."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(MODEL_RATE / 2), N_MELS + 2))
    bins = np.linspace(0, MODEL_RATE // 2, N_FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]  # (bins, edges)
    widths = np.diff(edges)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= 2.0 / (edges[2:] - edges[:-2])  # equal area per filter
    return filters.T


_FILTERS = _mel_filters()
_WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window


def model_audio(pcm: bytes, rate: int = CALL_RATE) -> np.ndarray:
    """Steps 1–3: the model's 8 s of 16 kHz float32 audio, the turn's end at the end."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    audio = samples.astype(np.float32) / 32768.0
    audio = audio[-WINDOW_S * rate :]
    if rate != MODEL_RATE and audio.size:
        audio = np.asarray(soxr.resample(audio, rate, MODEL_RATE, quality="HQ"), np.float32)
    size = WINDOW_S * MODEL_RATE
    if audio.size >= size:
        return audio[-size:]
    return np.concatenate([np.zeros(size - audio.size, np.float32), audio])


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Step 4: Whisper-style log-mel features of exactly 8 s of 16 kHz audio, (80, 800) float32."""
    if audio.shape != (WINDOW_S * MODEL_RATE,):
        raise ValueError(f"expected {WINDOW_S * MODEL_RATE} samples, got shape {audio.shape}")
    x = audio.astype(np.float32)
    # Normalised in float32 before the float64 spectrogram, as the reference extractor does.
    x = (x - x.mean()) / np.sqrt(x.var() + np.float32(1e-7))
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2  # (frames, bins)
    mel = np.log10(np.maximum(1e-10, _FILTERS @ power.T))[:, :-1]  # last frame dropped
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


def features(pcm: bytes, rate: int = CALL_RATE) -> np.ndarray:
    """The model's input for the turn so far: (1, 80, 800) float32."""
    return log_mel(model_audio(pcm, rate))[None, :, :]


class SmartTurn:
    """One loaded model; share it between the calls of a process (predictions are serialised)."""

    def __init__(self, session: Any, path: Path) -> None:
        self._session = session
        self.path = path
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def load(cls, path: Path | None = None, threads: int = 1) -> SmartTurn:
        """Opens the ONNX model: `path`, else the prepared `smart-turn-v3` from the model cache.

        Blocking (a few hundred ms): call it off the event loop. `threads` is onnxruntime's
        intra-op thread count; one keeps a prediction from taking both cores from ASR and TTS.
        """
        import onnxruntime as ort

        model = path if path is not None else _prepared_model()
        if not model.is_file():
            raise SmartTurnError(f"Smart Turn model {model} does not exist")
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own classes for a damaged file
            raise SmartTurnError(f"Smart Turn model {model} cannot be loaded: {exc}") from exc
        return cls(session, model)

    def predict(self, pcm8k: bytes, rate: int = CALL_RATE) -> float:
        """P(the caller's turn is complete), given the turn so far (int16 LE at `rate`, 8 kHz).

        Pass the whole utterance up to now (pre-roll, speech and the silence after it); only its
        last 8 s are heard. Thread-safe.
        """
        inputs = {"input_features": features(pcm8k, rate)}
        with self._lock:
            outputs = self._session.run(None, inputs)
        return float(np.asarray(outputs[0]).reshape(-1)[0])

    async def predict_async(self, pcm8k: bytes, rate: int = CALL_RATE) -> float:
        """`predict` on this model's one worker thread (started on first use)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.predict, pcm8k, rate)

    def close(self) -> None:
        """Stops the worker thread (a prediction in flight finishes first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _prepared_model() -> Path:
    from voiceplat.models.assemble import ModelError, ensure_model_file, model_dir
    from voiceplat.models.catalog import CATALOG

    expected = model_dir(MODEL_NAME) / CATALOG[MODEL_NAME].primary
    if not expected.is_file():
        raise SmartTurnError(
            f"the Smart Turn model is not prepared ({expected} is missing); "
            f"run: voiceplat models prepare {MODEL_NAME}"
        )
    try:
        # Trusts the stamp, re-hashes a touched file; never downloads unless the file is damaged.
        return ensure_model_file(MODEL_NAME, progress=False)
    except ModelError as exc:
        raise SmartTurnError(f"{exc} (voiceplat models prepare {MODEL_NAME})") from exc
