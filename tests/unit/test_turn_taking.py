"""The turn-taking state machine, transition by transition (sans-I/O: frames and a fake clock)."""

from __future__ import annotations

from typing import Any

import numpy as np

from voiceplat.turns import taking as tt
from voiceplat.turns.barge_in import BargeInSettings
from voiceplat.turns.end_of_turn import EndOfTurnPolicy, EndOfTurnSettings
from voiceplat.turns.endpointer import Endpointer, EndpointerSettings
from voiceplat.turns.taking import Floor, Robot, TurnTaking

FRAME_S = 0.02
LOUD = (np.sin(np.arange(160) / 3.0) * 8000).astype("<i2").tobytes()
QUIET = (np.sin(np.arange(160) / 3.0) * 500).astype("<i2").tobytes()
SILENCE = bytes(320)


class Driver:
    """Feeds frames 20 ms apart and keeps every action."""

    def __init__(self, machine: TurnTaking) -> None:
        self.machine = machine
        self.t = 0.0
        self.actions: list[tt.Action] = []

    def frames(
        self, n: int, *, speech: bool, robot: Robot, frame: bytes | None = None, echo: bool = False
    ) -> list[tt.Action]:
        got: list[tt.Action] = []
        for _ in range(n):
            self.t += FRAME_S
            data = frame if frame is not None else (LOUD if speech else SILENCE)
            got += self.machine.on_frame(data, self.t, is_speech=speech, robot=robot, echo=echo)
        self.actions += got
        return got


def machine(
    *,
    end_of_turn: EndOfTurnPolicy | None = None,
    judge: Any = None,
    **barge_in: Any,
) -> TurnTaking:
    endpointer = Endpointer(EndpointerSettings(min_speech_ms=60, silence_ms=200, pause_ms=0))
    settings = BargeInSettings(
        min_speech_ms=120,
        backchannel_max_ms=600,
        verdict_silence_ms=100,
        verdict_timeout_ms=1000,
        **barge_in,
    )
    return TurnTaking(endpointer, settings, judge=judge, end_of_turn=end_of_turn)


def kinds(actions: list[tt.Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def paused(d: Driver) -> tt.CheckOverlap:
    """Robot talks; a 200 ms burst pauses it; the burst ends: returns the check asked for."""
    d.frames(3, speech=False, robot=Robot.TALKING)
    assert d.machine.state is Floor.ROBOT_SPEAKING
    got = d.frames(10, speech=True, robot=Robot.TALKING)
    assert "PauseRobot" in kinds(got) and d.machine.state is Floor.PAUSED
    got = d.frames(5, speech=False, robot=Robot.TALKING)  # verdict_silence_ms 100
    (check,) = [a for a in got if isinstance(a, tt.CheckOverlap)]
    assert d.machine.state is Floor.CHECKING
    return check


def test_listening_to_caller_speaking_to_answer() -> None:
    d = Driver(machine())
    assert d.machine.state is Floor.LISTENING
    got = d.frames(5, speech=True, robot=Robot.SILENT)
    assert kinds(got) == ["CallerStarted"] and d.machine.state is Floor.CALLER_SPEAKING
    got = d.frames(10, speech=False, robot=Robot.SILENT)
    (answer,) = got
    assert isinstance(answer, tt.Answer) and answer.utterance.speech_ms == 100
    assert d.machine.state is Floor.LISTENING


def test_robot_audio_moves_the_floor_to_the_robot_and_back() -> None:
    d = Driver(machine())
    d.frames(1, speech=False, robot=Robot.TALKING)
    assert d.machine.state is Floor.ROBOT_SPEAKING
    d.frames(1, speech=False, robot=Robot.SILENT)
    assert d.machine.state is Floor.LISTENING


def test_short_burst_over_the_robot_changes_nothing() -> None:
    d = Driver(machine())
    d.frames(2, speech=False, robot=Robot.TALKING)
    d.frames(4, speech=True, robot=Robot.TALKING)  # 80 ms: below min_speech_ms 120
    assert d.machine.state is Floor.OVERLAP_PENDING
    got = d.frames(12, speech=False, robot=Robot.TALKING)
    assert kinds(got) == ["Ignored"] and d.machine.state is Floor.ROBOT_SPEAKING
    assert "PauseRobot" not in kinds(d.actions)


def test_likely_interruption_pauses_then_backchannel_resumes() -> None:
    d = Driver(machine())
    check = paused(d)
    got = d.machine.judge_overlap(check.key, check.utterance, "ага", {}, 120.0, d.t)
    assert kinds(got) == ["ResumeRobot"] and got[0].reason == "backchannel"  # type: ignore[union-attr]
    assert d.machine.state is Floor.ROBOT_SPEAKING


def test_nothing_intelligible_resumes() -> None:
    d = Driver(machine())
    check = paused(d)
    (resume,) = d.machine.judge_overlap(check.key, check.utterance, "", {}, 80.0, d.t)
    assert isinstance(resume, tt.ResumeRobot) and resume.reason == "nothing intelligible"


def test_low_confidence_words_resume() -> None:
    d = Driver(machine(judge=lambda text, details, voiced_ms: details["avg_logprob"] > -1.0))
    check = paused(d)
    details = {"avg_logprob": -1.4}
    (resume,) = d.machine.judge_overlap(check.key, check.utterance, "Блан.", details, 90.0, d.t)
    assert isinstance(resume, tt.ResumeRobot) and resume.reason == "low confidence"


def test_confirmed_words_interrupt_and_are_answered() -> None:
    d = Driver(machine(judge=lambda text, details, voiced_ms: True))
    check = paused(d)
    got = d.machine.judge_overlap(check.key, check.utterance, "Подождите", {}, 90.0, d.t)
    assert kinds(got) == ["Interrupt", "AnswerText"]
    assert got[1].text == "Подождите"  # type: ignore[union-attr]
    assert d.machine.state is Floor.LISTENING


def test_long_speech_over_the_robot_interrupts_without_asr() -> None:
    d = Driver(machine())
    d.frames(2, speech=False, robot=Robot.TALKING)
    got = d.frames(31, speech=True, robot=Robot.TALKING)  # 620 ms >= backchannel_max_ms 600
    assert kinds(got) == ["CallerStarted", "PauseRobot", "Interrupt"]
    assert d.machine.state is Floor.CALLER_SPEAKING
    got = d.frames(11, speech=False, robot=Robot.SILENT)
    assert kinds(got) == ["Answer"]  # the interruption is answered like any turn


def test_without_resume_the_robot_talks_on_until_long_speech() -> None:
    d = Driver(machine(resume=False))
    d.frames(2, speech=False, robot=Robot.TALKING)
    got = d.frames(20, speech=True, robot=Robot.TALKING)
    assert "PauseRobot" not in kinds(got) and d.machine.state is Floor.OVERLAP_PENDING


def test_no_backchannel_words_interrupts_at_min_speech() -> None:
    d = Driver(machine(backchannel_words=[]))
    d.frames(2, speech=False, robot=Robot.TALKING)
    got = d.frames(6, speech=True, robot=Robot.TALKING)
    assert kinds(got) == ["CallerStarted", "Interrupt"]


def test_holding_robot_is_never_paused() -> None:
    d = Driver(machine())
    d.frames(2, speech=False, robot=Robot.HOLDING)
    got = d.frames(40, speech=True, robot=Robot.HOLDING)
    assert kinds(got) == ["CallerStarted"]
    got = d.frames(12, speech=False, robot=Robot.HOLDING)
    assert kinds(got) == ["Ignored"] and got[0].reason == "not interruptible"  # type: ignore[union-attr]


def test_echo_frames_are_not_speech() -> None:
    d = Driver(machine())
    d.frames(2, speech=False, robot=Robot.TALKING)
    got = d.frames(40, speech=True, robot=Robot.TALKING, echo=True)
    assert got == [] and d.machine.state is Floor.ROBOT_SPEAKING


def test_speech_much_quieter_than_the_caller_does_not_pause() -> None:
    d = Driver(machine())
    d.frames(30, speech=True, robot=Robot.SILENT)  # the caller's own level: LOUD
    d.frames(12, speech=False, robot=Robot.SILENT)
    d.frames(2, speech=False, robot=Robot.TALKING)
    got = d.frames(20, speech=True, robot=Robot.TALKING, frame=QUIET)  # ~24 dB below
    assert "PauseRobot" not in kinds(got) and "Interrupt" not in kinds(got)
    got = d.frames(12, speech=False, robot=Robot.TALKING)
    assert kinds(got) == ["Ignored"]


def test_caller_speaking_while_robot_thinks_cancels_the_answer_once() -> None:
    d = Driver(machine())
    got = d.frames(3, speech=True, robot=Robot.THINKING)
    assert kinds(got) == ["CallerStarted"]  # 60 ms: maybe a click
    got = d.frames(10, speech=True, robot=Robot.THINKING)
    assert kinds(got) == ["CancelAnswer"]


def test_more_speech_while_checking_returns_to_paused_and_voids_the_check() -> None:
    d = Driver(machine(judge=lambda *a: True))
    check = paused(d)
    d.frames(10, speech=True, robot=Robot.TALKING)
    assert d.machine.state is Floor.PAUSED
    (stale,) = d.machine.judge_overlap(check.key, check.utterance, "стоп", {}, 90.0, d.t)
    assert isinstance(stale, tt.Ignored) and d.machine.state is Floor.PAUSED


def test_no_verdict_in_time_resumes() -> None:
    d = Driver(machine())
    paused(d)
    got = d.frames(60, speech=False, robot=Robot.TALKING)  # 1.2 s > verdict_timeout_ms 1000
    assert kinds(got) == ["ResumeRobot"] and d.machine.state is Floor.ROBOT_SPEAKING


def test_paused_turn_that_ends_otherwise_leaves_the_floor() -> None:
    d = Driver(machine())
    paused(d)
    d.frames(1, speech=False, robot=Robot.SILENT)
    assert d.machine.state is Floor.LISTENING


def test_caller_speech_when_robot_starts_talking_is_an_overlap() -> None:
    d = Driver(machine())
    d.frames(4, speech=True, robot=Robot.SILENT)
    assert d.machine.state is Floor.CALLER_SPEAKING
    got = d.frames(6, speech=True, robot=Robot.TALKING)
    assert d.machine.state is Floor.PAUSED and "PauseRobot" in kinds(got)


def eot(threshold: float = 0.5) -> EndOfTurnPolicy:
    settings = EndOfTurnSettings(
        model="smart_turn",
        text_cue=False,
        check_after_ms=60,
        complete_threshold=threshold,
        unfinished_silence_ms=600,
    )
    return EndOfTurnPolicy(settings, base_silence_ms=200)


def text_cue() -> TurnTaking:
    settings = EndOfTurnSettings(model="none", text_cue=True, unfinished_silence_ms=600)
    endpointer = Endpointer(EndpointerSettings(min_speech_ms=60, silence_ms=200, pause_ms=60))
    return TurnTaking(endpointer, end_of_turn=EndOfTurnPolicy(settings, base_silence_ms=200))


def test_end_of_turn_model_is_asked_then_ends_a_complete_turn_early() -> None:
    d = Driver(machine(end_of_turn=eot()))
    d.frames(10, speech=True, robot=Robot.SILENT)
    got = d.frames(3, speech=False, robot=Robot.SILENT)
    (ask,) = got
    assert isinstance(ask, tt.AskEndOfTurn) and ask.audio
    (answer,) = d.machine.on_end_of_turn(ask.key, 0.9, d.t)
    assert isinstance(answer, tt.Answer) and d.machine.state is Floor.LISTENING


def test_unfinished_phrase_waits_longer_than_the_silence_setting() -> None:
    d = Driver(machine(end_of_turn=eot()))
    d.frames(10, speech=True, robot=Robot.SILENT)
    (ask,) = d.frames(3, speech=False, robot=Robot.SILENT)
    assert isinstance(ask, tt.AskEndOfTurn)
    assert d.machine.on_end_of_turn(ask.key, 0.1, d.t) == []
    got = d.frames(20, speech=False, robot=Robot.SILENT)  # 460 ms: past silence_ms 200
    assert got == [] and d.machine.state is Floor.CALLER_SPEAKING
    got = d.frames(10, speech=False, robot=Robot.SILENT)  # 660 ms: past unfinished 600
    assert kinds(got) == ["Answer"]


def test_pending_model_answer_holds_the_turn_open() -> None:
    d = Driver(machine(end_of_turn=eot()))
    d.frames(10, speech=True, robot=Robot.SILENT)
    d.frames(3, speech=False, robot=Robot.SILENT)
    got = d.frames(10, speech=False, robot=Robot.SILENT)  # past silence_ms, model still working
    assert got == [] and d.machine.state is Floor.CALLER_SPEAKING


def test_failed_model_falls_back_to_the_silence_setting() -> None:
    d = Driver(machine(end_of_turn=eot()))
    d.frames(10, speech=True, robot=Robot.SILENT)
    (ask,) = d.frames(3, speech=False, robot=Robot.SILENT)
    d.frames(10, speech=False, robot=Robot.SILENT)  # 260 ms of silence
    got = d.machine.on_end_of_turn(ask.key, None, d.t)  # type: ignore[union-attr]
    assert kinds(got) == ["Answer"]


def test_speech_after_the_question_makes_its_answer_stale() -> None:
    d = Driver(machine(end_of_turn=eot()))
    d.frames(10, speech=True, robot=Robot.SILENT)
    (ask,) = d.frames(3, speech=False, robot=Robot.SILENT)
    d.frames(3, speech=True, robot=Robot.SILENT)
    assert d.machine.on_end_of_turn(ask.key, 0.99, d.t) == []  # type: ignore[union-attr]
    assert d.machine.state is Floor.CALLER_SPEAKING


def test_speculative_transcript_on_its_way_holds_the_turn_open() -> None:
    d = Driver(text_cue())
    d.frames(10, speech=True, robot=Robot.SILENT)
    got = d.frames(4, speech=False, robot=Robot.SILENT)
    (speculate,) = got
    assert isinstance(speculate, tt.Speculate)
    got = d.frames(12, speech=False, robot=Robot.SILENT)  # 320 ms: past silence_ms 200
    assert got == [] and d.machine.state is Floor.CALLER_SPEAKING


def test_unfinished_words_wait_for_the_caller_to_go_on() -> None:
    d = Driver(text_cue())
    d.frames(10, speech=True, robot=Robot.SILENT)
    (speculate,) = d.frames(4, speech=False, robot=Robot.SILENT)
    assert isinstance(speculate, tt.Speculate)
    assert d.machine.on_transcript(speculate.key, "Я хотел бы", d.t) == []
    got = d.frames(15, speech=False, robot=Robot.SILENT)  # 380 ms of silence
    assert got == [] and d.machine.state is Floor.CALLER_SPEAKING
    got = d.frames(12, speech=False, robot=Robot.SILENT)  # 620 ms: past unfinished 600
    assert kinds(got) == ["Answer"]


def test_finished_words_end_the_turn_at_the_silence_setting() -> None:
    d = Driver(text_cue())
    d.frames(10, speech=True, robot=Robot.SILENT)
    (speculate,) = d.frames(4, speech=False, robot=Robot.SILENT)
    assert isinstance(speculate, tt.Speculate)
    d.frames(8, speech=False, robot=Robot.SILENT)  # 240 ms, the transcript still coming
    got = d.machine.on_transcript(speculate.key, "Сколько стоит приём?", d.t)
    assert kinds(got) == ["Answer"]  # already past silence_ms: ends at once


def test_failed_transcript_leaves_the_silence_setting() -> None:
    d = Driver(text_cue())
    d.frames(10, speech=True, robot=Robot.SILENT)
    (speculate,) = d.frames(4, speech=False, robot=Robot.SILENT)
    assert isinstance(speculate, tt.Speculate)
    assert d.machine.on_transcript(speculate.key, None, d.t) == []
    got = d.frames(7, speech=False, robot=Robot.SILENT)  # 220 ms
    assert kinds(got) == ["Answer"]
