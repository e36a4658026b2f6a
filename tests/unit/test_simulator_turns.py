"""Robot turns as the simulated caller hears them (turn_gaps.py) and the echo path, without I/O:
a `Playout` driven by hand on its 20 ms clock."""

from __future__ import annotations

import numpy as np
import pytest

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.simulator.call_report import SentUtterance, utterance_report
from voiceplat.simulator.echo_path import EchoPath
from voiceplat.simulator.peer_playout import Playout
from voiceplat.simulator.turn_gaps import (
    Heard,
    RobotTurnReport,
    heard_stretches,
    mark_turn,
    turn_at,
    turn_reports,
)

FRAME_S = 0.02
BPS = 16000  # bytes per second at 8 kHz, 16-bit


def tone_bytes(ms: int, amplitude: float = 8000.0) -> bytes:
    t = np.arange(ms * 8) / 8000.0
    return (amplitude * np.sin(2 * np.pi * 440.0 * t)).astype("<i2").tobytes()


class Line:
    """A playout fed by a script of (time, action) and ticked every 20 ms up to `until`."""

    def __init__(self, **playout: object) -> None:
        self.playout = Playout(**{"marks": "ideal", "prebuffer": False, **playout})  # type: ignore[arg-type]
        self.marks: list[tuple[str, int]] = []
        self.k = 0

    def run_until(self, t: float) -> None:
        while (self.k + 1) * FRAME_S <= t + 1e-9:
            self.k += 1
            self.playout.tick(self.k * FRAME_S)

    def audio(self, t: float, data: bytes, *marks: str) -> None:
        self.run_until(t)
        self.playout.push(data, t)
        for name in marks:
            self.marks.append((name, self.playout.received_total))
            self.playout.mark(name, t)

    def kill(self, t: float) -> None:
        self.run_until(t)
        self.playout.kill(t)

    def stretches(self) -> list[Heard]:
        p = self.playout
        return heard_stretches(self.marks, p.runs, BPS, p.kills, p.stream_starts)

    def turns(self) -> dict[int, RobotTurnReport]:
        p = self.playout
        reports = turn_reports(self.stretches(), p.kills, self.marks, FRAME_S, p.stream_starts)
        return {r.turn: r for r in reports}


def test_mark_names_give_the_turn() -> None:
    assert mark_turn("t3s2") == 3
    assert mark_turn("t12s1r1") == 12
    assert mark_turn("answer-1") is None
    assert mark_turn("ts1") is None


def test_a_gap_longer_than_an_answer_split_is_starvation_inside_one_turn() -> None:
    line = Line()
    line.audio(0.01, tone_bytes(200), "t1s1")  # heard 0.02-0.22
    line.audio(1.49, tone_bytes(200), "t1s2")  # heard 1.50-1.70: 1.28 s of dead air before
    line.run_until(3.0)
    assert len(line.playout.answers) == 2  # the 300 ms rule splits it into two "answers"
    (turn,) = line.turns().values()
    assert (turn.turn, turn.gaps, turn.gaps_ms) == (1, 1, [1280.0])
    assert turn.starved_ms == turn.starved_max_ms == 1280.0
    assert turn.heard_ms == 400.0
    assert (turn.start_ms, turn.end_ms) == (20.0, 1700.0)
    assert not turn.cut and turn.resumes == 0


def test_silence_inside_the_audio_is_not_starvation_and_turns_are_told_apart() -> None:
    line = Line()
    # One sentence whose audio holds a 400 ms pause of its own, then the next turn's audio.
    line.audio(0.01, tone_bytes(200) + bytes(400 * 16) + tone_bytes(200), "t1s1")
    line.audio(0.81, tone_bytes(60), "drain-1")  # a pad after the turn: still turn 1's
    line.audio(2.0, tone_bytes(100), "note")  # after a pause, no turn mark: no known turn
    line.audio(2.01, tone_bytes(100), "t2s1")
    line.run_until(4.0)
    turns = line.turns()
    assert set(turns) == {1, 2}
    assert turns[1].gaps == 0 and turns[1].heard_ms == 860.0
    assert turns[2].heard_ms == 100.0 and turns[2].start_ms == 2120.0
    assert turns[2].gaps == 0
    stretches = line.stretches()
    assert [(h.turn, round(h.start, 2)) for h in stretches] == [(1, 0.02), (None, 2.02), (2, 2.12)]


def test_a_partly_filled_frame_is_a_short_gap() -> None:
    line = Line()
    line.audio(0.01, tone_bytes(30), "t4s1")  # 30 ms: frame 1 full, frame 2 only 10 ms
    line.audio(0.05, tone_bytes(20), "t4s2")  # arrives for the frame at 0.06
    line.run_until(1.0)
    (turn,) = line.turns().values()
    assert turn.gaps_ms == [10.0]  # 0.05 (audio end) -> 0.06


def test_cut_then_resumed_is_a_resume_not_starvation() -> None:
    line = Line()
    line.audio(0.01, tone_bytes(1000), "t2s1")
    line.kill(0.41)  # heard 0.02-0.42, the rest flushed
    line.audio(1.19, tone_bytes(300), "t2s2")  # the rest of turn 2, heard from 1.20
    line.audio(2.59, tone_bytes(200), "t3s1")
    line.run_until(4.0)
    turns = line.turns()
    assert turns[2].cut and turns[2].resumes == 1
    assert turns[2].resume_gaps_ms == [780.0]  # 0.42 -> 1.20
    assert turns[2].gaps == 0 and turns[2].starved_max_ms == 0.0
    assert not turns[3].cut and turns[3].resumes == 0
    stretches = line.stretches()
    assert turn_at(stretches, 0.3, line.playout.kills) == 2
    assert turn_at(stretches, 0.8, line.playout.kills) is None  # cut: not inside the turn
    assert turn_at(stretches, 2.7, line.playout.kills) == 3


def test_a_sentence_cut_before_its_mark_belongs_to_the_turn_it_continues() -> None:
    line = Line()
    line.audio(0.01, tone_bytes(300), "t1s1")
    line.audio(0.02, tone_bytes(1000))  # its next sentence: cut before its mark came
    line.kill(0.61)
    line.audio(1.39, tone_bytes(300), "t1s2")  # the rest, resumed
    line.run_until(3.0)
    (turn,) = line.turns().values()
    assert turn.turn == 1 and turn.cut and turn.resumes == 1
    assert turn.heard_ms == 600.0 + 300.0


@pytest.mark.parametrize("first_mark", [None, "t5s0"])
def test_a_new_turn_cut_in_its_first_sentence_is_known_by_its_s0_mark(
    first_mark: str | None,
) -> None:
    line = Line()
    line.audio(0.01, tone_bytes(200), "t3s1")
    # After a pause the robot starts its next turn; the caller cuts its first sentence.
    line.audio(1.0, b"", *([first_mark] if first_mark else []))
    line.audio(1.0, tone_bytes(1000))
    line.kill(1.41)
    line.audio(2.19, tone_bytes(300), "t5s1")  # resumed: its marks name the turn
    line.run_until(4.0)
    turns = line.turns()
    stretches = line.stretches()
    if first_mark is None:
        # Nothing tells which turn that audio was: not turn 3's (a new stream), none known.
        assert turn_at(stretches, 1.2, line.playout.kills) is None
        assert turns[5].resumes == 0 and turns[5].heard_ms == 300.0
    else:
        assert turn_at(stretches, 1.2, line.playout.kills) == 5
        assert turns[5].cut and turns[5].resumes == 1 and turns[5].heard_ms == 400.0 + 300.0
    assert not turns[3].cut


def test_a_cut_turn_followed_by_another_turn_is_not_resumed() -> None:
    line = Line()
    line.audio(0.01, tone_bytes(1000), "t1s1")
    line.kill(0.31)
    line.audio(1.5, tone_bytes(300), "t2s1")
    line.run_until(3.0)
    turns = line.turns()
    assert turns[1].cut and turns[1].resumes == 0
    assert turns[2].resumes == 0 and turns[2].gaps == 0


def test_prebuffer_leftover_heard_after_a_cut_is_not_a_resume() -> None:
    # mod_audio_fork's rules: killAudio leaves the pre-buffer alone; what it held plays when
    # the next audio comes. That audio was sent before the cut: no resume.
    line = Line(prebuffer=True)
    line.audio(0.01, tone_bytes(1000))
    line.audio(0.01, tone_bytes(40), "t1s1")  # 40 ms: waits in the pre-buffer (< 80 ms)
    line.kill(0.31)
    line.audio(1.5, tone_bytes(300), "t2s1")
    line.run_until(3.0)
    turns = line.turns()
    assert turns[1].cut and turns[1].resumes == 0


def test_a_real_interruption_is_the_cut_turn_not_the_next_one_and_not_a_resume() -> None:
    # What the robot sends on a real interruption: turn 2 named by `t2s0`, cut (killAudio)
    # before its first sentence's mark, then after the caller's speech turn 4 (same text, so
    # the same audio) starting with `t4s0` at the very position the cut left the stream.
    line = Line()
    line.audio(0.01, tone_bytes(1000), "t0s1")
    line.audio(1.5, b"", "t2s0")
    line.audio(1.5, tone_bytes(2000))  # heard from 1.52
    line.kill(2.01)  # the caller has been talking since 1.8
    line.audio(4.0, b"", "t4s0")
    line.audio(4.0, tone_bytes(2000), "t4s1")
    line.run_until(7.0)
    turns = line.turns()
    assert turns[2].cut and turns[2].resumes == 0 and turns[2].heard_ms == 500.0
    assert not turns[4].cut and turns[4].resumes == 0 and turns[4].gaps == 0
    assert turns[4].start_ms == 4020.0 and turns[4].heard_ms == 2000.0
    barge = SentUtterance(1, "barge_in", "ru_wait.wav", 1.7, 3.0, 1.8, 2.9)
    report = utterance_report(barge, line.playout.answers, line.stretches(), line.playout.kills)
    assert report.kill_audio is True
    assert (report.robot_turn, report.resumed, report.resume_after_ms) == (2, False, None)
    assert (report.next_turn, report.next_turn_start_ms) == (4, 4020.0)


@pytest.mark.parametrize("tail_mark", ["drain-3", None])
def test_audio_after_a_turns_last_mark_is_never_the_next_turns(tail_mark: str | None) -> None:
    # Turn 2 ends (`t2s2`); a tail follows in the same stream (the robot's pad after its
    # "drain-N" mark, or audio with no mark after it); the caller speaks; turn 4 answers.
    line = Line()
    line.audio(0.01, tone_bytes(500), "t2s1")
    line.audio(0.3, tone_bytes(500), "t2s2", *([tail_mark] if tail_mark else []))
    line.audio(0.6, tone_bytes(100))  # the tail, heard 1.02-1.12
    line.audio(4.0, b"", "t4s0")
    line.audio(4.0, tone_bytes(1000), "t4s1")  # heard from 4.02
    line.run_until(6.0)
    turns = line.turns()
    assert turns[4].gaps == 0 and turns[4].starved_max_ms == 0.0
    assert (turns[4].start_ms, turns[4].heard_ms) == (4020.0, 1000.0)
    assert turns[2].end_ms == 1120.0 and turns[2].heard_ms == 1100.0 and turns[2].gaps == 0
    stretches = line.stretches()
    assert [(h.turn, round(h.start, 2)) for h in stretches] == [(2, 0.02), (4, 4.02)]


@pytest.mark.parametrize(("gain_db", "delay_ms"), [(-15, 40), (-20, 120), (-25, 200)])
def test_echo_path_adds_the_heard_audio_delayed_and_attenuated_through_mu_law(
    gain_db: float, delay_ms: float
) -> None:
    rng = np.random.default_rng(7)
    heard = (rng.standard_normal(8000 * 2) * 4000).clip(-32768, 32767).astype("<i2")
    caller = (rng.standard_normal(heard.size) * 300).astype("<i2")
    echo = EchoPath(gain_db, delay_ms, 160)
    sent = []
    # Tick 0 hears nothing; the frame played at tick k is heard during [k, k+1) frames.
    for k in range(heard.size // 160 - 1):
        echo.heard(heard[k * 160 : (k + 1) * 160].tobytes())  # tick k+1's frame...
        # ...and caller frame k+1, which holds the caller's audio of [k, k+1) frames
        sent.append(echo.mix(caller[k * 160 : (k + 1) * 160].tobytes()))
    out = np.frombuffer(b"".join(sent), dtype="<i2").astype(np.float64)
    # On the call's timeline heard sample n is at n + 160 (one frame of silence first).
    timeline = np.concatenate((np.zeros(160), heard.astype(np.float64)))[: out.size]
    d = round(delay_ms * 8)
    expected = np.rint(caller[: out.size] + 10 ** (gain_db / 20) * np.roll(timeline, d))
    expected[:d] = caller[:d]
    expected = np.frombuffer(
        ulaw_decode(ulaw_encode(expected.clip(-32768, 32767).astype("<i2").tobytes())), "<i2"
    )
    assert np.array_equal(out, expected)
    # And as physics: the echo's lag and level, found from the signals alone.
    residual = out - caller[: out.size]
    lags = range(0, 2000)
    corr = [float(np.dot(residual[lag:], timeline[: out.size - lag])) for lag in lags]
    assert int(np.argmax(corr)) == d
    level = 20 * np.log10(np.std(residual[d + 800 :]) / np.std(timeline[800:-d]))
    assert level == pytest.approx(gain_db, abs=0.5)


def test_echo_path_rejects_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        EchoPath(-20, -1, 160)
