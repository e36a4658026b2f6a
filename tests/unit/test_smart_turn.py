"""Smart Turn's input path without the model: 8 kHz -> 16 kHz, the 8 s window, the features,
the loading errors and the worker thread (a fake onnxruntime session stands in for the model)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from voiceplat.turns import smart_turn
from voiceplat.turns.smart_turn import SmartTurn, SmartTurnError, features, log_mel, model_audio

WINDOW = 8 * 16000


def tone(hz: float, seconds: float, rate: int, level: float = 0.5) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * level * 32767).astype("<i2").tobytes()


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_8khz_audio_is_resampled_not_read_as_16khz() -> None:
    # pipecat issue 3844: 8 kHz samples taken as 16 kHz are speech at double speed and pitch.
    audio = model_audio(tone(1000, 1.0, 8000))
    assert audio.shape == (WINDOW,) and audio.dtype == np.float32
    heard = audio[-16000:]
    assert peak_hz(heard[400:-400], 16000) == pytest.approx(1000, abs=5)
    assert np.abs(heard[400:-400]).max() == pytest.approx(0.5, abs=0.02)  # level kept
    # One second of 8 kHz audio is one second at 16 kHz: zeros before it, the tone to the end.
    assert np.abs(audio[: WINDOW - 16000 - 40]).max() == 0.0
    assert np.abs(audio[-200:]).max() > 0.3


def test_16khz_input_is_taken_as_it_is() -> None:
    pcm = tone(440, 0.5, 16000)
    audio = model_audio(pcm, rate=16000)
    expected = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    assert np.array_equal(audio[-8000:], expected)


def test_only_the_last_8_seconds_are_heard() -> None:
    early, late = tone(300, 4.0, 8000), tone(1500, 8.0, 8000)
    audio = model_audio(early + late)
    assert audio.shape == (WINDOW,)
    assert peak_hz(audio[1000:-1000], 16000) == pytest.approx(1500, abs=5)


def test_empty_audio_is_silence() -> None:
    assert not model_audio(b"").any()
    assert features(b"").shape == (1, 80, 800)


def test_features_shape_range_and_time_alignment() -> None:
    mel = log_mel(model_audio(tone(1000, 2.0, 8000)))
    assert mel.shape == (80, 800) and mel.dtype == np.float32
    assert mel.max() - mel.min() <= 2.0 + 1e-6  # clamped at 8 decades below the peak, then / 4
    frame_energy = mel.mean(axis=0)
    # 10 ms frames: the two seconds of tone are the last 200 frames.
    assert frame_energy[-190:].min() > frame_energy[:550].max()
    # The 1 kHz tone lands in the mel band that holds 1 kHz, not in the one that holds 2 kHz.
    loud = mel[:, -100:].mean(axis=1)
    centres = smart_turn._mel_to_hz(
        np.linspace(smart_turn._hz_to_mel(0.0), smart_turn._hz_to_mel(8000.0), 82)
    )[1:-1]
    assert abs(centres[loud.argmax()] - 1000) < 100


def test_log_mel_wants_exactly_8_seconds() -> None:
    with pytest.raises(ValueError, match="128000"):
        log_mel(np.zeros(16000, np.float32))


class FakeSession:
    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.inputs: list[np.ndarray] = []
        self.threads: list[str] = []

    def run(self, outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.inputs.append(feeds["input_features"])
        self.threads.append(threading.current_thread().name)
        return [np.array([[self.probability]], dtype=np.float32)]


def test_predict_feeds_the_features_and_returns_the_probability() -> None:
    session = FakeSession(0.83)
    model = SmartTurn(session, Path("fake.onnx"))
    pcm = tone(500, 1.5, 8000)
    assert model.predict(pcm) == pytest.approx(0.83)
    assert np.array_equal(session.inputs[0], features(pcm))


async def test_predict_async_runs_on_one_worker_thread() -> None:
    session = FakeSession(0.2)
    model = SmartTurn(session, Path("fake.onnx"))
    try:
        results = [await model.predict_async(tone(700, 0.5, 8000)) for _ in range(3)]
    finally:
        model.close()
    assert results == [pytest.approx(0.2)] * 3
    assert len(set(session.threads)) == 1
    assert session.threads[0].startswith("smart-turn")
    assert session.threads[0] != threading.current_thread().name


def test_load_without_the_prepared_model_says_how_to_prepare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEPLAT_MODELS_DIR", str(tmp_path / "models"))
    with pytest.raises(SmartTurnError, match="voiceplat models prepare smart-turn-v3"):
        SmartTurn.load()


def test_load_of_a_missing_or_damaged_file(tmp_path: Path) -> None:
    with pytest.raises(SmartTurnError, match="does not exist"):
        SmartTurn.load(tmp_path / "absent.onnx")
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"not an onnx model")
    with pytest.raises(SmartTurnError, match="cannot be loaded"):
        SmartTurn.load(damaged)
