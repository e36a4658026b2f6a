"""The endpointer, driven by a fake clock: scripted VAD decisions and real speech fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voiceplat.audio.wav import read_wav
from voiceplat.turns.barge_in import BargeInPolicy
from voiceplat.turns.endpointer import (
    Endpointer,
    EndpointerSettings,
    EndpointEvent,
    SpeechEnded,
    SpeechPaused,
    SpeechStarted,
)
from voiceplat.turns.vad import FRAME_BYTES, VadEngine, make_vad

FIXTURES = Path(__file__).parents[1] / "fixtures"
FRAME_S = 0.02


def numbered_frame(i: int) -> bytes:
    """A frame whose every sample is `i`, so tests can see which frames an utterance holds."""
    return np.full(FRAME_BYTES // 2, i, dtype="<i2").tobytes()


def run_script(
    endpointer: Endpointer, script: str, t0: float = 100.0
) -> list[tuple[int, EndpointEvent]]:
    """Feeds one frame per character ('#' speech, '.' not); returns (frame index, event)."""
    events = []
    for i, mark in enumerate(script):
        now = t0 + (i + 1) * FRAME_S
        events += [(i, e) for e in endpointer.push(numbered_frame(i), mark == "#", now)]
    return events


def frame_numbers(audio: bytes) -> list[int]:
    samples = np.frombuffer(audio, dtype="<i2")
    return [int(samples[k]) for k in range(0, len(samples), FRAME_BYTES // 2)]


def test_utterance_with_pre_roll_and_trailing_silence() -> None:
    endpointer = Endpointer(EndpointerSettings())
    script = "." * 20 + "#" * 30 + "." * 45
    events = run_script(endpointer, script)

    (i_start, started), (i_end, ended) = events
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert i_start == 27  # the 8th speech frame makes 160 ms
    assert started.started_at == pytest.approx(100.0 + 20 * FRAME_S)
    assert ended.ended_at == pytest.approx(100.0 + 50 * FRAME_S)  # end of the last speech frame
    assert i_end == 89  # 40 silent frames (800 ms) after the last speech frame
    assert not ended.forced
    # 15 frames (300 ms) of pre-roll, the speech, and the trailing silence, in order.
    assert frame_numbers(ended.audio) == list(range(5, 90))


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("#" * 7 + "." * 50, []),  # 140 ms: a click
        ("###.###." + "." * 50, []),  # 120 ms with a gap: still too short
        ("####..####" + "." * 50, []),  # two non-speech frames end an onset
        ("####.####" + "." * 50, ["start", "end"]),  # a single gap is tolerated
        ("#" * 8 + "." * 39, ["start"]),  # 780 ms of silence: not over yet
        ("#" * 8 + "." * 40, ["start", "end"]),
        ("#" * 10 + "." * 30 + "#" * 3 + "." * 40, ["start", "end"]),  # a pause inside
        ("#" * 10 + "." * 40 + "#" * 10 + "." * 40, ["start", "end", "start", "end"]),
    ],
)
def test_event_sequences(script: str, expected: list[str]) -> None:
    events = run_script(Endpointer(), script)
    kinds = ["start" if isinstance(e, SpeechStarted) else "end" for _, e in events]
    assert kinds == expected


def test_a_short_burst_becomes_pre_roll_of_the_speech_that_follows() -> None:
    events = run_script(Endpointer(), "...##.." + "#" * 10 + "." * 40)
    ended = events[-1][1]
    assert isinstance(ended, SpeechEnded)
    assert frame_numbers(ended.audio)[:7] == [0, 1, 2, 3, 4, 5, 6]  # the burst is kept


def test_next_pre_roll_comes_from_trailing_silence_not_from_speech() -> None:
    events = run_script(Endpointer(), "#" * 10 + "." * 40 + "#" * 10 + "." * 40)
    second = events[-1][1]
    assert isinstance(second, SpeechEnded)
    assert frame_numbers(second.audio)[:15] == list(range(35, 50))


def test_speech_ms_and_in_speech_follow_the_utterance() -> None:
    endpointer = Endpointer()
    seen = []
    for i, mark in enumerate("#####.#####" + "." * 40):
        endpointer.push(numbered_frame(i), mark == "#", (i + 1) * FRAME_S)
        seen.append((endpointer.speech_ms, endpointer.in_speech))
    assert seen[4] == (100, False)  # onset, not yet confirmed
    assert seen[5] == (100, False)  # the gap frame adds nothing
    assert seen[8] == (160, True)  # confirmed
    assert seen[20] == (200, True)  # trailing silence: still in the utterance
    assert seen[-1] == (0, False)  # ended


def test_max_utterance_forces_an_end_and_speech_goes_on_in_a_new_one() -> None:
    endpointer = Endpointer(EndpointerSettings(max_utterance_s=2.0))
    events = run_script(endpointer, "#" * 150, t0=0.0)
    kinds = [(i, type(e).__name__) for i, e in events]
    assert kinds == [(7, "SpeechStarted"), (99, "SpeechEnded"), (107, "SpeechStarted")]
    forced = events[1][1]
    assert isinstance(forced, SpeechEnded) and forced.forced
    assert forced.ended_at - forced.started_at == pytest.approx(2.0)
    assert endpointer.in_speech


def test_reset_drops_the_utterance_silently() -> None:
    endpointer = Endpointer()
    run_script(endpointer, "#" * 20)
    endpointer.reset()
    assert (endpointer.speech_ms, endpointer.in_speech) == (0, False)
    assert run_script(endpointer, "." * 50) == []


@pytest.mark.parametrize(
    "settings",
    [
        {"min_speech_ms": 10},
        {"silence_ms": 0},
        {"pre_roll_ms": -20},
        {"max_utterance_s": 0.1},
        {"frame_ms": 0},
    ],
)
def test_bad_settings_are_rejected(settings: dict) -> None:
    with pytest.raises(ValueError):
        EndpointerSettings(**settings)


# --- real speech through a real VAD ----------------------------------------------------------


def on_a_noisy_line(*parts: bytes | float, seed: int = 0) -> bytes:
    """Joins clips and pauses (floats, seconds), then adds hiss (RMS 20) over all of it.

    The hiss runs under the speech too, as on a real line: pasting clean clips into noise would
    make the noise floor jump after each clip, which is not what a VAD meets on a call.
    """
    clean = b"".join(bytes(2 * int(8000 * p)) if isinstance(p, float) else p for p in parts)
    samples = np.frombuffer(clean, dtype="<i2").astype(np.float64)
    samples += np.random.default_rng(seed).normal(0, 20, len(samples))
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def speech_region(audio: bytes) -> tuple[float, float]:
    """Ground truth: first and last frame louder than -50 dBFS (RMS 100), in seconds."""
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    n = len(samples) // (FRAME_BYTES // 2)
    levels = np.sqrt((samples[: n * 160].reshape(n, 160) ** 2).mean(axis=1))
    loud = np.flatnonzero(levels > 100)
    return loud[0] * FRAME_S, (loud[-1] + 1) * FRAME_S


def run_audio(engine: VadEngine, audio: bytes, settings: EndpointerSettings | None = None) -> list:
    vad, endpointer = make_vad(engine), Endpointer(settings)
    events = []
    for k in range(len(audio) // FRAME_BYTES):
        frame = audio[k * FRAME_BYTES : (k + 1) * FRAME_BYTES]
        events += endpointer.push(frame, vad.is_speech(frame), (k + 1) * FRAME_S)
    return events


@pytest.mark.parametrize("engine", ["webrtc", "energy", "silero"])
def test_two_real_utterances_separated_by_a_second_of_silence(engine: VadEngine) -> None:
    hello = read_wav(FIXTURES / "ru_hello.wav").data
    question = read_wav(FIXTURES / "ru_question.wav").data
    audio = on_a_noisy_line(0.5, hello, 1.0, question, 1.0)
    events = run_audio(engine, audio)

    assert [type(e).__name__ for e in events] == ["SpeechStarted", "SpeechEnded"] * 2
    offsets = [0.5, 0.5 + len(hello) / 16000 + 1.0]
    for (started, ended), clip, offset in zip(
        (events[0:2], events[2:4]), (hello, question), offsets, strict=True
    ):
        begin, end = speech_region(clip)
        assert started.started_at == ended.started_at
        # Detection may lag a soft onset (Silero ignores the hiss of "С" in "Сколько"), but
        # never by more than the pre-roll, so ASR still hears the first sound.
        assert offset + begin - 0.1 <= started.started_at <= offset + begin + 0.25
        assert started.started_at - 0.3 <= offset + begin
        assert abs(ended.ended_at - (offset + end)) <= 0.2
        assert not ended.forced
        # pre-roll (300 ms) + utterance + trailing silence (800 ms), to the frame
        expected_s = 0.3 + (ended.ended_at - ended.started_at) + 0.8
        assert len(ended.audio) / 16000 == pytest.approx(expected_s, abs=0.021)


def test_a_cough_gives_no_events_with_silero() -> None:
    cough = read_wav(FIXTURES / "cough.wav").data
    assert run_audio("silero", on_a_noisy_line(0.5, cough, 1.5)) == []


@pytest.mark.parametrize("engine", ["webrtc", "energy"])
def test_a_cough_never_barges_in(engine: VadEngine) -> None:
    # WebRTC and the energy VAD cannot tell a noise burst from speech, only its length:
    # WebRTC marks the 150 ms burst plus its built-in hangover as ~260 ms of speech, the energy
    # VAD as 160 ms. That can open an utterance (ASR then hears nothing) but stays below
    # barge-in's 300 ms, so the robot goes on talking.
    cough = read_wav(FIXTURES / "cough.wav").data
    audio = on_a_noisy_line(0.5, cough, 1.5)
    vad, endpointer, policy = make_vad(engine), Endpointer(), BargeInPolicy()
    most = 0.0
    for k in range(len(audio) // FRAME_BYTES):
        frame = audio[k * FRAME_BYTES : (k + 1) * FRAME_BYTES]
        endpointer.push(frame, vad.is_speech(frame), (k + 1) * FRAME_S)
        assert policy.during_speech(endpointer.speech_ms) == "ignore"
        most = max(most, endpointer.speech_ms)
    assert most > 0  # the burst was heard, and still ignored


def test_pause_then_silence_gives_paused_then_ended_with_the_same_end() -> None:
    ep = Endpointer(EndpointerSettings(min_speech_ms=60, silence_ms=200, pause_ms=60))
    events = []
    t = 0.0
    for is_speech in [True] * 10 + [False] * 12:
        t += 0.02
        events += ep.push(bytes(320), is_speech, t)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStarted", "SpeechPaused", "SpeechEnded"]
    paused, ended = events[1], events[2]
    assert isinstance(paused, SpeechPaused) and isinstance(ended, SpeechEnded)
    assert paused.ended_at == ended.ended_at  # the speculative transcript stays valid
    assert ended.audio.startswith(paused.audio)


def test_speech_after_a_pause_resumes_and_pauses_again() -> None:
    ep = Endpointer(EndpointerSettings(min_speech_ms=60, silence_ms=400, pause_ms=60))
    events = []
    t = 0.0
    for is_speech in [True] * 5 + [False] * 4 + [True] * 5 + [False] * 25:
        t += 0.02
        events += ep.push(bytes(320), is_speech, t)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "SpeechStarted",
        "SpeechPaused",
        "SpeechResumed",
        "SpeechPaused",
        "SpeechEnded",
    ]
    first_pause, second_pause, ended = events[1], events[3], events[4]
    assert isinstance(first_pause, SpeechPaused) and isinstance(second_pause, SpeechPaused)
    assert isinstance(ended, SpeechEnded)
    assert first_pause.ended_at < second_pause.ended_at == ended.ended_at


def test_no_pause_events_unless_asked() -> None:
    ep = Endpointer(EndpointerSettings(min_speech_ms=60, silence_ms=200))
    events = []
    t = 0.0
    for is_speech in [True] * 10 + [False] * 12:
        t += 0.02
        events += ep.push(bytes(320), is_speech, t)
    assert [type(e).__name__ for e in events] == ["SpeechStarted", "SpeechEnded"]
