"""Admission control's decisions (telephony/admission.py), SIP's use of them, the model workers'
measured run times they rest on, and the filler that opens an answer stuck in a model queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from voiceplat.audio.pcm import Pcm
from voiceplat.providers import worker
from voiceplat.sessions.fillers import Fillers
from voiceplat.sessions.speech_rates import SpeechRates
from voiceplat.sessions.turn import RobotTurn
from voiceplat.telephony import admission
from voiceplat.telephony.admission import Admission, AdmissionSettings, QueueView, queue_wait_s
from voiceplat.telephony.ingress.sip.admission import Admission as SipAdmission
from voiceplat.telephony.ingress.sip.settings import SipSettings


@pytest.fixture(autouse=True)
def no_process_admission() -> Iterator[None]:
    admission.clear()
    yield
    admission.clear()


def refused_total(reason: str) -> float:
    return REGISTRY.get_sample_value("voiceplat_calls_refused_total", {"reason": reason}) or 0.0


class Calls:
    """What sessions count in Robot.calls_in_progress."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        return self.n


def gate(queues: list[QueueView] | None = None, **settings: Any) -> tuple[Admission, Calls]:
    calls = Calls()
    control = Admission(AdmissionSettings(**settings), calls, lambda: list(queues or []))
    return control, calls


def test_without_limits_every_call_is_taken_whatever_the_load() -> None:
    control, calls = gate([QueueView("llama", 50, 3.0)])
    calls.n = 1000
    assert all(control.admit().admitted for _ in range(10))


def test_max_calls_counts_calls_admitted_but_not_started_and_frees_ended_ones() -> None:
    control, calls = gate(max_calls=2)
    before = refused_total("max_calls")
    assert control.admit().admitted
    assert control.admit().admitted  # both admitted in the same loop turn: no session yet
    third = control.admit()
    assert (third.admitted, third.reason) == (False, "max_calls")
    assert "max_calls 2" in third.detail
    control.starting()  # the first session starts and counts itself
    calls.n = 1
    assert not control.admit().admitted
    control.abandon()  # the second one hung up before its session started
    assert control.admit().admitted
    control.starting()
    calls.n = 2
    assert not control.decide().admitted
    calls.n = 1  # a call ended
    assert control.decide().admitted
    assert refused_total("max_calls") - before == 2
    assert control.refused["max_calls"] == 2


def test_queue_wait_is_pending_jobs_times_their_measured_run_time() -> None:
    queues = [QueueView("llama", 3, 0.8), QueueView("whisper", 1, 0.3), QueueView("new", 9, None)]
    assert queue_wait_s(queues) == pytest.approx(2.7)  # a worker never measured counts 0
    before = refused_total("queue_wait")
    over, _ = gate(queues, max_queue_wait_ms=2500, retry_after_s=7)
    decision = over.admit()
    assert (decision.admitted, decision.reason, decision.retry_after_s) == (False, "queue_wait", 7)
    assert "2700 ms" in decision.detail
    assert refused_total("queue_wait") - before == 1
    within, _ = gate(queues, max_queue_wait_ms=3000)
    assert within.admit().admitted


def test_jobs_queued_now_run_while_the_new_caller_hears_the_greeting() -> None:
    calls = Calls()
    queues = [QueueView("llama", 3, 1.0)]
    for budget_ms, admitted in ((500, False), (1500, True)):
        control = Admission(
            AdmissionSettings(max_queue_wait_ms=budget_ms), calls, lambda: queues, lambda: 2.0
        )
        decision = control.decide()  # 3 s queued, 1 s of it left after a 2 s greeting
        assert decision.admitted is admitted, decision.detail
    assert (
        "~1000 ms after the greeting"
        in Admission(AdmissionSettings(max_queue_wait_ms=0), calls, lambda: queues, lambda: 2.0)
        .decide()
        .detail
    )


def test_workers_measure_their_jobs_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(worker, "time", SimpleNamespace(monotonic=lambda: clock.now))
    model = worker.SingleWorker("test-model", "overloaded: {pending}")
    try:
        assert model.service_s is None

        def job(seconds: float) -> str:
            clock.now += seconds
            return "done"

        assert model.submit(lambda: job(2.0), max_queue=4).result(timeout=60) == "done"
        assert model.service_s == pytest.approx(2.0)
        model.submit(lambda: job(1.0), max_queue=4).result(timeout=60)
        assert model.service_s == pytest.approx(2.0 + worker.SERVICE_SMOOTHING * (1.0 - 2.0))
        view = next(q for q in admission.model_queues() if q.name == "test-model")
        assert (view.pending, view.service_s) == (0, model.service_s)
    finally:
        model.executor.shutdown(wait=True)


class Robot:
    """What admission_for reads of a robot."""

    def __init__(self, settings: AdmissionSettings) -> None:
        self.config = SimpleNamespace(admission=settings, greeting_text=None)
        self.calls_in_progress = 0


def sip_gate() -> SipAdmission:
    return SipAdmission(SipSettings.model_validate({"allow_from": ["10.0.0.0/8"]}))


def test_sip_answers_486_at_the_process_max_calls() -> None:
    robot = Robot(AdmissionSettings(max_calls=1))
    admission.admission_for(robot)  # type: ignore[arg-type]
    sip = sip_gate()
    assert sip.check("10.0.0.1:5060").allowed
    robot.calls_in_progress = 1  # a call on another ingress (WebSocket, AudioSocket)
    refused = sip.check("10.0.0.1:5060")
    assert (refused.status, refused.reason, refused.headers) == (486, "Busy Here", {})
    assert sip.counters()["rejected_busy"] == 1


def test_sip_answers_503_with_retry_after_over_the_queue_budget() -> None:
    robot = Robot(AdmissionSettings(max_queue_wait_ms=2000))
    control = admission.admission_for(robot)  # type: ignore[arg-type]
    control._queues = lambda: [QueueView("llama", 4, 1.0)]  # 4 s of LLM jobs queued
    refused = sip_gate().check("10.0.0.1")
    assert (refused.status, refused.headers) == (503, {"Retry-After": "5"})
    assert control.refused["queue_wait"] == 1


def test_sip_without_process_admission_is_unchanged() -> None:
    assert sip_gate().check("10.0.0.1").allowed


# -- the filler that opens an answer stuck in a queue ----------------------------------------
class Audio:
    """The part of TurnAudio that Fillers uses: what was queued, in order."""

    paused = False

    def __init__(self) -> None:
        self.queued: list[bytes] = []

    def runs_dry_in_s(self, turn: RobotTurn) -> float | None:
        return None  # nothing queued yet: the answer has no audio

    def queue(self, turn: RobotTurn, data: bytes, text: str | None) -> None:
        self.queued.append(data)
        turn.first_audio_at = turn.first_audio_at or 0.0


class Call:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, name: str, **data: Any) -> None:
        self.events.append((name, data))


FILLER = ("Так…", Pcm(b"\x01\x00" * 800, 8000))


async def stuck_answer(released: asyncio.Event) -> AsyncIterator[str]:
    await released.wait()  # the LLM job waits in the queue until the test lets it go
    yield "Ответ."


def fillers(now: float, after_s: float | None) -> tuple[Fillers, Audio, Call]:
    audio, call = Audio(), Call()
    made = Fillers(
        FILLER,
        SpeechRates(),
        audio,  # type: ignore[arg-type]
        call,  # type: ignore[arg-type]
        first_audio_after_s=after_s,
        clock=lambda: now,
    )
    return made, audio, call


async def test_an_answer_stuck_in_the_queue_opens_with_the_filler() -> None:
    made, audio, call = fillers(now=101.6, after_s=1.5)  # 1.6 s since the caller stopped
    turn = RobotTurn(idx=2, user_speech_ended=100.0)
    released = asyncio.Event()
    sentences = stuck_answer(released)
    next_text = asyncio.ensure_future(made.next_sentence(turn, sentences))
    for _ in range(100):  # loop turns, no time: the filler is queued while the answer is stuck
        if call.events:
            break
        await asyncio.sleep(0)
    assert not next_text.done()
    assert audio.queued == [FILLER[1].data] and turn.filler == "Так…"
    assert call.events == [("filler", {"turn": 2, "text": "Так…", "opening": True})]
    released.set()
    assert await next_text == "Ответ."


async def test_text_whose_synthesis_would_come_too_late_is_opened_by_the_filler() -> None:
    made, audio, call = fillers(now=102.4, after_s=2.5)  # 0.1 s left: no TTS is that fast
    turn = RobotTurn(idx=3, user_speech_ended=100.0)
    made.before_synthesis(turn, "Ответ на вопрос.")
    assert audio.queued == [FILLER[1].data]
    assert call.events == [("filler", {"turn": 3, "text": "Так…", "opening": True})]
    in_time, audio, _ = fillers(now=100.2, after_s=2.5)
    in_time.before_synthesis(RobotTurn(idx=3, user_speech_ended=100.0), "Ответ на вопрос.")
    assert audio.queued == []


async def test_an_answer_in_time_has_no_filler() -> None:
    made, audio, call = fillers(now=100.0, after_s=1.5)
    turn = RobotTurn(idx=2, user_speech_ended=100.0)
    released = asyncio.Event()
    released.set()
    assert await made.next_sentence(turn, stuck_answer(released)) == "Ответ."
    assert audio.queued == [] and call.events == [] and turn.filler is None


async def test_no_opening_filler_when_switched_off_or_for_the_greeting() -> None:
    for after_s, ended in ((None, 100.0), (1.5, None)):
        made, audio, _ = fillers(now=200.0, after_s=after_s)  # long past any budget
        turn = RobotTurn(idx=0, user_speech_ended=ended)
        released = asyncio.Event()
        waiting = asyncio.ensure_future(made.next_sentence(turn, stuck_answer(released)))
        for _ in range(20):
            await asyncio.sleep(0)
        released.set()
        assert await waiting == "Ответ."
        assert audio.queued == [] and turn.filler is None


def test_settings_take_one_phrase_and_name_a_missing_wav(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="busy_phrase or busy_wav, not both"):
        AdmissionSettings(busy_phrase="Заняты", busy_wav="busy.wav")
    settings = AdmissionSettings(busy_wav="busy.wav")
    assert settings.problems(tmp_path) == [
        f"admission.busy_wav: {tmp_path / 'busy.wav'} does not exist"
    ]
    (tmp_path / "busy.wav").write_bytes(b"RIFF")
    assert settings.problems(tmp_path) == []
    assert AdmissionSettings().problems(tmp_path) == []


# -- the busy phrase -----------------------------------------------------------------------
async def test_busy_wav_is_read_once_and_a_broken_one_means_a_silent_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from voiceplat.audio.wav import write_wav
    from voiceplat.telephony.busy import BusyPhrase

    pcm = b"\x10\x00" * 4000  # 0.5 s at 8 kHz
    write_wav(tmp_path / "busy.wav", Pcm(pcm, 8000))
    robot = SimpleNamespace(directory=tmp_path)
    phrase = BusyPhrase(robot, AdmissionSettings(busy_wav="busy.wav"))  # type: ignore[arg-type]
    assert await phrase.audio() == pcm
    (tmp_path / "busy.wav").unlink()
    assert await phrase.audio() == pcm  # kept: read once
    broken = BusyPhrase(robot, AdmissionSettings(busy_wav="none.wav"))  # type: ignore[arg-type]
    assert await broken.audio() is None
    assert "busy phrase unavailable" in caplog.text and "none.wav" in caplog.text
    silent = BusyPhrase(robot, AdmissionSettings())  # type: ignore[arg-type]
    assert await silent.audio() is None


def test_check_names_a_busy_wav_that_is_not_there(make_robot, capsys) -> None:
    from voiceplat.cli import main

    robot = make_robot(admission={"max_calls": 1, "busy_wav": "busy.wav"})
    assert main(["check", str(robot)]) == 1
    assert f"admission.busy_wav: {robot / 'busy.wav'} does not exist" in capsys.readouterr().err
