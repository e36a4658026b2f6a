"""The echo guard on a simulated line: the robot's voice mixed back at −15…−25 dB, 40–200 ms,
through μ-law (benchmarks/echo.py builds the line). Deterministic: seeded jitter, no clocks."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from benchmarks.echo import FrameResult, Scenario, caller_share, echo_share, fixture, simulate
from voiceplat.turns.barge_in import BargeInPolicy
from voiceplat.turns.echo import EchoGuard, EchoSettings
from voiceplat.turns.endpointer import Endpointer, EndpointerSettings, SpeechStarted

FRAME_S = 0.02


def voiced_echo(results: list[FrameResult]) -> list[FrameResult]:
    voiced = [r for r in results if r.voiced and r.echo_rms > 0 and r.caller_rms == 0]
    assert len(voiced) > 100, "the scenario must have echo loud enough for the VAD"
    return voiced


@pytest.mark.parametrize("echo_ms", [40, 120, 200])
@pytest.mark.parametrize("echo_db", [-15, -20, -25])
def test_echo_alone_is_echo(echo_db: float, echo_ms: float) -> None:
    results = simulate(Scenario(echo_db=echo_db, echo_ms=echo_ms))
    voiced_echo(results)
    assert echo_share(results) >= 0.95
    locked = {r.decision.delay_ms for r in results if r.decision.reason == "echo"}
    assert locked == {echo_ms}  # the path it found is the one the line has


# +0.2 s with a 200 ms echo: the peer's 160 ms pre-buffer and some network the prediction missed.
@pytest.mark.parametrize("playout_error_s", [-0.1, -0.05, 0.05, 0.1, 0.2])
@pytest.mark.parametrize("robot", ["ru_long.wav", "ru_question.wav"])
def test_echo_with_a_wrong_playout_prediction(robot: str, playout_error_s: float) -> None:
    results = simulate(Scenario(robot=robot, echo_ms=200, playout_error_s=playout_error_s))
    voiced_echo(results)
    assert echo_share(results) >= 0.95


def test_jittered_chunk_and_frame_times_are_taken_as_one_stream() -> None:
    # Each played chunk's start_t off by up to 20 ms, each caller frame's end_t by up to 15 ms.
    results = simulate(
        Scenario(echo_db=-25, chunk_s=0.2, chunk_jitter_s=0.02, frame_jitter_s=0.015)
    )
    voiced_echo(results)
    assert echo_share(results) >= 0.95


def test_a_fractional_echo_delay_still_fits() -> None:
    # Half a sample of delay (linear interpolation) is what resampling on the way does.
    robot = fixture("ru_long.wav")
    half = np.concatenate(([0.0], (robot[1:] + robot[:-1]) / 2))
    line = np.concatenate((np.zeros(960), half * 10 ** (-20 / 20), np.zeros(800)))
    guard = EchoGuard()
    guard.played(robot.astype("<i2").tobytes(), 0.0)
    decisions = [
        guard.process(line[i : i + 160].astype("<i2").tobytes(), (i + 160) / 8000)
        for i in range(0, line.size - 159, 160)
    ]
    loud = [d for i, d in enumerate(decisions) if np.abs(line[i * 160 : (i + 1) * 160]).max() > 500]
    assert len(loud) > 100
    assert sum(d.echo for d in loud) / len(loud) >= 0.95


@pytest.mark.parametrize(
    ("caller_db", "caller_at_s"),
    [(0, 1.0), (-6, 1.0), (0, 0.5)],  # 0.5 s: the caller starts with the robot, before any lock
)
@pytest.mark.parametrize("echo_db", [-15, -25])
def test_caller_speech_over_the_robot_is_not_echo(
    echo_db: float, caller_db: float, caller_at_s: float
) -> None:
    results = simulate(
        Scenario(
            echo_db=echo_db,
            echo_ms=120,
            caller="ru_stop.wav",
            caller_db=caller_db,
            caller_at_s=caller_at_s,
        )
    )
    assert caller_share(results, dominant=True) >= 0.98
    assert caller_share(results, dominant=False) >= 0.9
    # ...while the echo around the caller's words is still recognised.
    assert echo_share(results) >= 0.9


def test_caller_over_the_robot_on_a_line_without_echo() -> None:
    results = simulate(Scenario(echo_db=None, caller="ru_stop.wav"))
    assert caller_share(results, dominant=False) >= 0.98
    assert {r.decision.delay_ms for r in results} == {None}  # no echo path invented


def test_no_robot_audio_is_never_echo() -> None:
    guard = EchoGuard()
    speech = fixture("ru_stop.wav").astype("<i2").tobytes()
    decisions = [
        guard.process(speech[i : i + 320], (i + 320) / 16000)
        for i in range(0, len(speech) - 319, 320)
    ]
    assert decisions and not any(d.echo for d in decisions)
    assert {d.reason for d in decisions} == {"no_robot_audio"}


def test_robot_audio_long_past_or_far_ahead_is_not_near() -> None:
    guard = EchoGuard()
    robot = fixture("ru_question.wav").astype("<i2").tobytes()
    guard.played(robot, 10.0)  # heard 10…12.5 s
    line = fixture("ru_question.wav") * 0.1  # as if its echo came at 0 s and at 20 s
    frames = [line[i : i + 160].astype("<i2").tobytes() for i in range(0, line.size - 159, 160)]
    early = [guard.process(f, (k + 1) * FRAME_S) for k, f in enumerate(frames)]
    late = [guard.process(f, 20 + (k + 1) * FRAME_S) for k, f in enumerate(frames)]
    assert {d.reason for d in early + late} == {"no_robot_audio"}


def test_flushed_audio_makes_no_echo_expected() -> None:
    # The robot queued 4.4 s but was cut at 1.5 s; the caller talks at 2.2 s. Once the echo of
    # what was heard has passed, the guard knows no robot audio is left to come back.
    results = simulate(Scenario(flush_at_s=1.5, caller="ru_stop.wav", caller_at_s=2.2, echo_ms=120))
    before = [r for k, r in enumerate(results) if r.voiced and (k + 1) * FRAME_S < 1.5]
    assert sum(r.decision.echo for r in before) / len(before) >= 0.95
    # 1.5 s + timing_error 0.1 s + longest lag 0.5 s: from 2.1 s on no robot audio can be near.
    after = [r for k, r in enumerate(results) if (k + 1) * FRAME_S > 2.12]
    assert after and {r.decision.reason for r in after} == {"no_robot_audio"}


def test_a_new_stretch_of_robot_audio_at_another_lag_is_found() -> None:
    # Two answers: the second is predicted 80 ms early (the first one exactly right).
    guard = EchoGuard()
    robot = fixture("ru_question.wav")
    n = 8 * 8000
    line = np.zeros(n)
    d = int(0.12 * 8000)
    for at in (0.5, 4.5):
        s = int(at * 8000) + d
        line[s : s + robot.size] = robot * 10 ** (-20 / 20)
    guard.played(robot.astype("<i2").tobytes(), 0.5)
    guard.played(robot.astype("<i2").tobytes(), 4.42)
    decisions = [
        guard.process(line[i : i + 160].astype("<i2").tobytes(), (i + 160) / 8000)
        for i in range(0, n, 160)
    ]
    loud = [k for k in range(len(decisions)) if np.abs(line[k * 160 : (k + 1) * 160]).max() > 300]
    first = [decisions[k] for k in loud if k * FRAME_S < 4]
    second = [decisions[k] for k in loud if k * FRAME_S > 4]
    assert sum(x.echo for x in first) / len(first) >= 0.95
    assert sum(x.echo for x in second) / len(second) >= 0.95
    assert {x.delay_ms for x in first if x.reason == "echo"} == {120.0}
    assert {x.delay_ms for x in second if x.reason == "echo"} == {200.0}


def barge_in_events(results: list[FrameResult], guarded: bool) -> list[tuple[float, str]]:
    """What the session would do: VAD speech not called echo → endpointer → barge-in policy."""
    endpointer = Endpointer(EndpointerSettings(min_speech_ms=160, silence_ms=600))
    policy = BargeInPolicy()
    events: list[tuple[float, str]] = []
    for k, r in enumerate(results):
        t = (k + 1) * FRAME_S
        speech = r.voiced and not (guarded and r.decision.echo)
        for event in endpointer.push(b"\0" * 320, speech, t):
            if isinstance(event, SpeechStarted):
                events.append((event.started_at, "started"))
        if endpointer.in_speech:
            decision = policy.during_speech(endpointer.speech_ms)
            if decision == "interrupt" and (not events or events[-1][1] != "interrupt"):
                events.append((t, "interrupt"))
    return events


@pytest.mark.parametrize("echo_db", [-15, -20, -25])
def test_the_robot_does_not_interrupt_itself(echo_db: float) -> None:
    results = simulate(Scenario(echo_db=echo_db, echo_ms=120))
    assert barge_in_events(results, guarded=True) == []
    # The same line without the guard: the echo starts an utterance and interrupts.
    assert "interrupt" in {e for _, e in barge_in_events(results, guarded=False)}


def test_a_real_interruption_over_echo_still_interrupts() -> None:
    results = simulate(Scenario(echo_db=-15, echo_ms=200, caller="ru_stop.wav", caller_at_s=1.5))
    events = barge_in_events(results, guarded=True)
    started = [t for t, e in events if e == "started"]
    interrupts = [t for t, e in events if e == "interrupt"]
    # The fixture's speech starts 0.14 s in: the utterance starts with it, not before.
    assert started and 1.5 + 0.1 <= started[0] <= 1.5 + 0.2
    assert interrupts and interrupts[0] - started[0] <= 0.85  # backchannel_max_ms, not more


def test_disabled_guard_calls_nothing_echo() -> None:
    results = simulate(Scenario(echo_db=-15), EchoSettings(enabled=False))
    assert {r.decision.reason for r in results} == {"off"}


def test_settings_are_checked() -> None:
    with pytest.raises(ValidationError):
        EchoSettings(echo_db=-20)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        EchoSettings(residual_db=3)
    with pytest.raises(ValueError, match="caller frame"):
        EchoGuard().process(b"\0" * 3, 1.0)


def test_a_backchannel_over_echo_stays_a_short_utterance() -> None:
    # "ага" over the robot's echo: right after it the echo must be recognised again, or the
    # utterance runs on into the echo and grows long enough to interrupt.
    results = simulate(Scenario(echo_db=-15, echo_ms=120, caller="ru_aga.wav", caller_at_s=2.0))
    events = barge_in_events(results, guarded=True)
    assert [e for _, e in events] == ["started"]
    assert 2.0 + 0.2 <= events[0][0] <= 2.0 + 0.3  # the fixture's speech starts 0.24 s in


def test_line_noise_while_the_robot_talks_is_quiet_not_caller() -> None:
    rng = np.random.default_rng(3)
    noise = [(rng.normal(0, 30, 160)).astype("<i2").tobytes() for _ in range(100)]
    talking = EchoGuard()
    talking.played(fixture("ru_long.wav").astype("<i2").tobytes(), 0.0)
    silent = EchoGuard()
    assert {talking.process(f, (k + 1) * FRAME_S).reason for k, f in enumerate(noise)} == {"quiet"}
    assert {silent.process(f, (k + 1) * FRAME_S).reason for k, f in enumerate(noise)} == {
        "no_robot_audio"
    }


def test_a_resume_right_after_a_flush_plays_where_predicted() -> None:
    # Cut at 1.5 s (the caller heard 1 s of the answer), resumed 50 ms later from there.
    robot = fixture("ru_long.wav")
    heard, rest = robot[:8000], robot[8000:]
    n = 7 * 8000
    line = np.zeros(n)
    d = int(0.12 * 8000)
    line[4000 + d : 12000 + d] = heard * 0.1
    line[12400 + d : 12400 + d + rest.size] = rest * 0.1
    guard = EchoGuard()
    guard.played(robot.astype("<i2").tobytes(), 0.5)
    guard.flushed(1.5)
    guard.played(rest.astype("<i2").tobytes(), 1.55)
    decisions = [
        guard.process(line[i : i + 160].astype("<i2").tobytes(), (i + 160) / 8000)
        for i in range(0, n, 160)
    ]
    loud = [d for k, d in enumerate(decisions) if np.abs(line[k * 160 : (k + 1) * 160]).max() > 300]
    assert sum(x.echo for x in loud) / len(loud) >= 0.95
    assert {x.delay_ms for x in loud if x.reason == "echo"} == {120.0}
