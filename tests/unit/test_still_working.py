"""Still-working phrases while an answer keeps the caller waiting (sessions/still_working.py), and
the filler of an answer that follows an interrupted, paused turn. Fake clocks, no waiting: a clock
that jumps ahead on every reading makes every phrase due at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tests.doubles.channel import FakeChannel
from voiceplat.audio.pcm import Pcm
from voiceplat.sessions.fillers import Fillers
from voiceplat.sessions.speech_rates import SpeechRates
from voiceplat.sessions.still_working import StillWorking
from voiceplat.sessions.turn import RobotTurn
from voiceplat.sessions.turn_audio import TurnAudio

PHRASES = [
    ("Минутку…", Pcm(b"\x01\x00" * 4000, 8000)),  # 0.5 s each
    ("Ещё секунду…", Pcm(b"\x02\x00" * 4000, 8000)),
    ("Почти готово…", Pcm(b"\x03\x00" * 4000, 8000)),
]
FILLER = ("Так…", Pcm(b"\x09\x00" * 800, 8000))


class Clock:
    """The session's clock; `step` is added at every reading (0: it stands still)."""

    def __init__(self, t: float = 100.0, step: float = 0.0) -> None:
        self.t, self.step = t, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


class Audio:
    """The part of TurnAudio the phrases use: what was queued, when it runs out on the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.paused = False
        self.queued: list[bytes] = []
        self.dry_at: float | None = None

    def runs_dry_in_s(self, turn: RobotTurn) -> float | None:
        if self.dry_at is None or self.paused:
            return None
        return self.dry_at - self.clock()

    def queue(self, turn: RobotTurn, data: bytes, text: str | None) -> None:
        now = self.clock()
        self.queued.append(data)
        turn.first_audio_at = turn.first_audio_at or now
        self.dry_at = max(now, self.dry_at or now) + len(data) / 16000


class Call:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, name: str, **data: Any) -> None:
        self.events.append((name, data))


def still_working(
    clock: Clock, *, max_per_turn: int = 4, after_s: float | None = 2.5
) -> tuple[StillWorking, Audio, Call]:
    audio, call = Audio(clock), Call()
    made = StillWorking(
        PHRASES,
        audio,
        call,  # type: ignore[arg-type]
        repeat_s=3.0,
        max_per_turn=max_per_turn,
        clock=clock,
        first_audio_after_s=after_s,
    )
    return made, audio, call


async def stuck_answer(released: asyncio.Event) -> AsyncIterator[str]:
    await released.wait()  # the LLM's first token comes when the test lets it
    yield "Ответ."


async def until(condition: Any) -> None:
    for _ in range(200):  # loop turns, no time
        if condition():
            return
        await asyncio.sleep(0)


def test_a_phrase_is_due_repeat_s_after_the_robot_went_quiet() -> None:
    clock = Clock()
    still, audio, _ = still_working(clock)
    turn = RobotTurn(2, user_speech_ended=99.0)
    audio.queue(turn, b"\x00\x00" * 8000, None)  # the Hold phrase: 1 s, runs out at 101
    assert still.due_in_s(turn) == 4.0  # 3 s of silence after it
    clock.t = 104.0
    assert still.due_in_s(turn) == 0.0
    clock.t = 110.0
    assert still.due_in_s(turn) == -6.0  # overdue: said at once


def test_with_no_audio_yet_not_before_the_filler_s_moment() -> None:
    clock = Clock()
    turn = RobotTurn(2, user_speech_ended=100.0)
    assert still_working(clock, after_s=2.5)[0].due_in_s(turn) == 3.0  # repeat_s after the turn
    assert still_working(clock, after_s=5.0)[0].due_in_s(turn) == 5.0  # the filler comes first
    assert still_working(clock, after_s=None)[0].due_in_s(turn) == 3.0
    greeting = RobotTurn(0)  # no caller turn before it: not an answer that waits
    still, audio, _ = still_working(clock)
    assert still.due_in_s(greeting) is None
    audio.queue(greeting, b"\x00\x00" * 800, None)  # its sentences are known: none waits
    assert still.due_in_s(greeting) is None


def test_none_once_the_answer_s_own_words_are_in() -> None:
    clock = Clock(t=200.0)  # long silent
    still, audio, _ = still_working(clock)
    turn = RobotTurn(2, user_speech_ended=100.0)
    audio.queue(turn, b"\x00\x00" * 800, None)
    turn.llm_ttft_ms = 9000.0
    assert still.due_in_s(turn) is None


def test_a_paused_turn_is_only_looked_at_again() -> None:
    clock = Clock()
    still, audio, _ = still_working(clock)
    turn = RobotTurn(2, user_speech_ended=99.0)
    audio.queue(turn, b"\x00\x00" * 8000, None)
    audio.paused = True
    clock.t = 500.0  # however long it has been paused
    assert still.due_in_s(turn) == 3.0  # not now: looked at again repeat_s later
    audio.paused = False
    assert still.due_in_s(turn) is not None and still.due_in_s(turn) < 0  # type: ignore[operator]


def fillers(clock: Clock, still: StillWorking, audio: Audio, call: Call) -> Fillers:
    made = Fillers(
        None,  # no filler: only the phrases
        SpeechRates(),
        audio,  # type: ignore[arg-type]
        call,  # type: ignore[arg-type]
        first_audio_after_s=2.5,
        clock=clock,
    )
    made.still_working = still
    return made


async def test_phrases_cycle_up_to_the_max_then_the_answer_follows() -> None:
    clock = Clock(step=10.0)  # every reading is 10 s later: each phrase is due at once
    still, audio, call = still_working(clock, max_per_turn=4)
    turn = RobotTurn(2, user_speech_ended=100.0)
    released = asyncio.Event()
    next_text = asyncio.ensure_future(
        fillers(clock, still, audio, call).next_sentence(turn, stuck_answer(released))
    )
    await until(lambda: len(call.events) >= 4 and not next_text.done())
    for _ in range(20):  # more loop turns, long past any repeat: no fifth phrase
        await asyncio.sleep(0)
    assert [(name, d["text"], d["repeat"]) for name, d in call.events] == [
        ("still_working", "Минутку…", 1),
        ("still_working", "Ещё секунду…", 2),
        ("still_working", "Почти готово…", 3),
        ("still_working", "Минутку…", 4),
    ]
    assert audio.queued == [PHRASES[i][1].data for i in (0, 1, 2, 0)]
    assert not next_text.done()
    released.set()
    assert await next_text == "Ответ."
    assert still.said(RobotTurn(3)) == 0  # counted per answer


async def test_no_phrase_when_the_answer_s_text_is_in() -> None:
    clock = Clock(step=10.0)
    still, audio, call = still_working(clock)
    turn = RobotTurn(2, user_speech_ended=100.0, llm_ttft_ms=800.0)
    released = asyncio.Event()
    released.set()
    made = fillers(clock, still, audio, call)
    assert await made.next_sentence(turn, stuck_answer(released)) == "Ответ."
    assert call.events == [] and audio.queued == []


async def test_no_phrase_while_the_turn_is_paused() -> None:
    clock = Clock(step=10.0)
    still, audio, call = still_working(clock)
    turn = RobotTurn(2, user_speech_ended=100.0)
    audio.queue(turn, b"\x00\x00" * 800, None)  # the Hold phrase, then the caller talks over it
    audio.paused = True
    still.repeat_s = 0.0  # looked at again at every loop turn
    released = asyncio.Event()
    next_text = asyncio.ensure_future(
        fillers(clock, still, audio, call).next_sentence(turn, stuck_answer(released))
    )
    for _ in range(50):
        await asyncio.sleep(0)
    assert call.events == [] and len(audio.queued) == 1
    audio.paused = False  # resumed: the wait goes on, so does the robot
    await until(lambda: call.events)
    assert call.events[0][0] == "still_working"
    released.set()
    assert await next_text == "Ответ."


async def test_an_answer_after_an_interrupted_paused_turn_still_gets_its_filler() -> None:
    """The caller talked over the Hold phrase (the turn paused), then really interrupted: the
    held audio of that turn stays until the next turn queues its own. It must not count as the
    next answer's pause: that answer (its LLM slow) opens with the filler and the phrases."""
    clock = Clock(t=100.0)
    channel = FakeChannel()
    audio = TurnAudio(channel, Call(), tts=lambda: None, clock=clock)  # type: ignore[arg-type, return-value]
    cut = RobotTurn(1, user_speech_ended=99.0)
    audio.queue(cut, b"\x05\x00" * 8000, "Сейчас посмотрю…")
    await audio.pause(cut, rewind_ms=0)
    assert audio.paused  # the interruption cancels the speaker; nothing resumes this turn

    clock.t = 120.0  # the next caller turn ended at 110: its answer is 10 s late
    call = Call()
    answer = RobotTurn(2, user_speech_ended=110.0)
    made = Fillers(FILLER, SpeechRates(), audio, call, first_audio_after_s=2.5, clock=clock)  # type: ignore[arg-type]
    made.still_working = StillWorking(
        PHRASES,
        audio,
        call,  # type: ignore[arg-type]
        repeat_s=3.0,
        max_per_turn=1,
        clock=clock,
        first_audio_after_s=2.5,
    )
    released = asyncio.Event()
    next_text = asyncio.ensure_future(made.next_sentence(answer, stuck_answer(released)))
    await until(lambda: call.events)
    assert call.events[0] == ("filler", {"turn": 2, "text": "Так…", "opening": True})
    assert not audio.paused  # the new turn's audio is its own
    released.set()
    assert await next_text == "Ответ."
