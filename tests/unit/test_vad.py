"""VAD engines on real synthesized speech (tests/fixtures) and on silence and line noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voiceplat.audio.wav import read_wav
from voiceplat.turns.vad import FRAME_BYTES, EnergyVad, SileroVad, VadEngine, WebRtcVad, make_vad

FIXTURES = Path(__file__).parents[1] / "fixtures"
ENGINES: list[VadEngine] = ["webrtc", "energy", "silero"]


def frames(data: bytes) -> list[bytes]:
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data) - FRAME_BYTES + 1, FRAME_BYTES)]


def line_noise(seconds: float, level: float, seed: int = 0) -> bytes:
    """Gaussian noise at RMS `level` (int16 units): a quiet phone line's hiss."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, level, int(8000 * seconds)).astype("<i2").tobytes()


def decisions(engine: VadEngine, data: bytes) -> list[bool]:
    vad = make_vad(engine)
    return [vad.is_speech(frame) for frame in frames(data)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["ru_hello.wav", "ru_question.wav", "en_hello.wav"])
def test_detects_speech_in_real_speech(engine: VadEngine, name: str) -> None:
    speech = read_wav(FIXTURES / name).data
    flags = decisions(engine, speech)
    # The fixtures are speech from end to end apart from short pauses and ~0.2 s edges.
    assert sum(flags) / len(flags) > 0.7


@pytest.mark.parametrize("engine", ENGINES)
def test_no_speech_in_digital_silence(engine: VadEngine) -> None:
    assert not any(decisions(engine, bytes(FRAME_BYTES * 100)))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("level", [10.0, 50.0])
def test_low_line_noise_is_not_speech(engine: VadEngine, level: float) -> None:
    flags = decisions(engine, line_noise(2.0, level))
    # WebRTC flags a few frames while its noise model adapts at the start of a stream; after
    # that, steady hiss is never speech. 4 frames (80 ms) is far below any min_speech_ms.
    assert sum(flags[:10]) <= 4
    assert not any(flags[10:])


@pytest.mark.parametrize("engine", ENGINES)
def test_speech_stops_being_detected_after_it_ends(engine: VadEngine) -> None:
    speech = read_wav(FIXTURES / "ru_hello.wav").to_numpy().astype(np.float64)
    # Hiss under the speech and after it, as on a real line.
    with_pause = np.concatenate([speech, np.zeros(8000)])
    hiss = np.frombuffer(line_noise(len(with_pause) / 8000, 20.0), dtype="<i2")
    data = np.clip(with_pause + hiss, -32768, 32767).astype("<i2").tobytes()
    flags = decisions(engine, data)
    assert flags[-100:-50].count(True) > 40  # the end of the sentence
    assert not any(flags[-30:])  # 0.4 s into the silence


@pytest.mark.parametrize("engine", ENGINES)
def test_frame_size_is_checked(engine: VadEngine) -> None:
    vad = make_vad(engine)
    with pytest.raises(ValueError, match="320 bytes"):
        vad.is_speech(bytes(FRAME_BYTES - 2))


@pytest.mark.parametrize("engine", ENGINES)
def test_reset_makes_a_rerun_identical(engine: VadEngine) -> None:
    vad = make_vad(engine)
    speech = frames(read_wav(FIXTURES / "ru_question.wav").data)
    first = [vad.is_speech(frame) for frame in speech]
    vad.reset()
    assert [vad.is_speech(frame) for frame in speech] == first


def test_factory_builds_each_engine_with_its_setting() -> None:
    assert isinstance(make_vad("webrtc", aggressiveness=3), WebRtcVad)
    energy = make_vad("energy", energy_threshold=500)
    assert isinstance(energy, EnergyVad) and energy.threshold == 500
    silero = make_vad("silero", silero_threshold=0.7)
    assert isinstance(silero, SileroVad) and silero.threshold == 0.7
    with pytest.raises(ValueError, match="unknown VAD engine 'vosk'"):
        make_vad("vosk")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [lambda: WebRtcVad(4), lambda: EnergyVad(0), lambda: SileroVad(1.5)],
    ids=["webrtc", "energy", "silero"],
)
def test_bad_settings_are_rejected(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_energy_threshold_is_the_frame_rms() -> None:
    vad = EnergyVad(threshold=200)
    square = np.full(160, 199, dtype="<i2")
    assert not vad.is_speech(square.tobytes())  # RMS 199
    assert vad.is_speech((square + 2).tobytes())  # RMS 201


def test_silero_gives_a_decision_for_every_frame_between_windows() -> None:
    # 20 ms frames and 32 ms windows: some frames complete no window and repeat the last decision.
    vad = SileroVad()
    speech = frames(read_wav(FIXTURES / "ru_hello.wav").data)
    flags = [vad.is_speech(frame) for frame in speech[:40]]
    assert flags[0] is False  # no window complete yet
    assert 0.0 <= vad.probability <= 1.0
    assert any(flags)
