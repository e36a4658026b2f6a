"""A turn's audio: starvation on the playout clock, pause and resume from a word boundary."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.doubles.channel import FakeChannel
from voiceplat.sessions.turn import RobotTurn
from voiceplat.sessions.turn_audio import TurnAudio, _word_start


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def event(self, name: str, **data: Any) -> None:
        self.seen.append((name, data))


def tone(ms: int, amplitude: int = 8000) -> bytes:
    n = ms * 8
    return (np.sin(np.arange(n) / 2.0) * amplitude).astype("<i2").tobytes()


def quiet(ms: int) -> bytes:
    return bytes(ms * 16)


def make() -> tuple[TurnAudio, FakeChannel, Clock, Events]:
    channel, clock, events = FakeChannel(), Clock(), Events()
    audio = TurnAudio(channel, events, tts=lambda: None, clock=clock)  # type: ignore[arg-type, return-value]
    return audio, channel, clock, events


async def test_no_starvation_while_audio_keeps_coming_in_time() -> None:
    audio, _, clock, _ = make()
    turn = RobotTurn(1)
    assert audio.runs_dry_in_s(turn) is None  # nothing of the turn queued yet
    audio.queue(turn, tone(500), "Первая.")
    clock.t += 0.4
    assert audio.runs_dry_in_s(turn) is not None and 0.09 < audio.runs_dry_in_s(turn) < 0.11  # type: ignore[operator]
    audio.queue(turn, tone(500), "Вторая.")
    assert turn.starved_ms is None and turn.starved_max_ms is None


async def test_starvation_is_the_silence_between_runs_of_the_same_turn() -> None:
    audio, _, clock, events = make()
    turn = RobotTurn(1)
    audio.queue(turn, tone(300), "Да.")
    clock.t += 1.0  # 700 ms after the audio ran out
    audio.queue(turn, tone(300), "Конечно.")
    clock.t += 0.5  # 200 ms
    audio.queue(turn, tone(300), "Хорошо.")
    assert round(turn.starved_max_ms or 0) == 700 and round(turn.starved_ms or 0) == 900
    assert [d["ms"] for name, d in events.seen if name == "starved"] == [700, 200]


async def test_a_new_turn_starts_its_own_clock() -> None:
    audio, _, clock, _ = make()
    audio.queue(RobotTurn(1), tone(200), "Да.")
    clock.t += 5.0
    second = RobotTurn(2)
    assert audio.runs_dry_in_s(second) is None
    audio.queue(second, tone(200), "Нет.")
    assert second.starved_ms is None  # the pause between turns is not starvation


async def test_pause_holds_the_unheard_rest_and_resume_plays_it_with_its_marks() -> None:
    audio, channel, _, _ = make()
    turn = RobotTurn(1)
    audio.queue(turn, tone(400), "Первая.")
    audio.queue(turn, tone(400), "Вторая.")
    # FakeChannel: the caller has heard everything queued; pretend they heard 600 ms.
    channel.heard_ms = lambda: 600.0  # type: ignore[method-assign]
    heard = await audio.pause(turn, rewind_ms=0)
    assert heard == 600.0 and audio.paused and channel.cleared == 1
    audio.queue(turn, tone(200), "Третья.")  # synthesised while paused: held, not played
    played_before = len(channel.played)
    assert audio.runs_dry_in_s(turn) is None
    back_ms = audio.resume(turn)
    assert not audio.paused and turn.resumed == 1
    resent = bytes(channel.played[played_before:])
    assert len(resent) == (200 + 200) * 16  # the rest of "Вторая." and all of "Третья."
    assert back_ms == 400
    # Sentences moved to where they now are in the stream, so heard_text stays right.
    second, third = turn.sentences[1], turn.sentences[2]
    assert second.end_ms == played_before / 16 + 200 and third.end_ms == len(channel.played) / 16


async def test_wait_heard_waits_while_paused() -> None:
    import asyncio

    audio, _, _, _ = make()
    turn = RobotTurn(1)
    audio.queue(turn, tone(400), "Первая.")
    await audio.pause(turn, rewind_ms=0)
    waiter = asyncio.create_task(audio.wait_heard(bounded=False))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiter.done()  # paused: the turn is not over
    audio.resume(turn)
    async with asyncio.timeout(10):
        await waiter


def test_resume_point_is_the_start_of_the_word_being_heard() -> None:
    # word (300 ms), gap (60 ms), word (400 ms): heard up to 500 ms, inside the second word.
    pcm = tone(300) + quiet(60) + tone(400)
    start = _word_start(pcm, first_ms=1000.0, heard_ms=1500.0, rewind_ms=400)
    assert 1350.0 <= start <= 1360.0
    # Not further back than rewind_ms: then where the caller stopped hearing.
    assert _word_start(pcm, first_ms=1000.0, heard_ms=1500.0, rewind_ms=100) == 1500.0
    # A tone with no quiet in it: nowhere to go back to.
    assert _word_start(tone(800), 0.0, 500.0, 400) == 500.0
