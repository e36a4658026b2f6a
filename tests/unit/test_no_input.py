"""The no-input timer both listening and realtime modes use, on a fake clock (no waiting)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from voiceplat.config import NoInputSettings
from voiceplat.sessions.no_input import NoInputTimer


class Goodbye(Exception):
    pass


@dataclass
class FakeCall:
    """A session as the timer sees it, on a clock that moves only when the timer sleeps."""

    now: float = 0.0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    last_activity: float = 0.0
    reprompts: int = 0
    caller_speaking: bool = False
    said: list[tuple[float, str]] = field(default_factory=list)
    events: list[tuple[str, dict]] = field(default_factory=list)
    sleeps: int = 0
    script: dict[float, str] = field(default_factory=dict)
    """What the caller does at a clock time: "speak" (a whole utterance), "start"/"stop"."""

    def __post_init__(self) -> None:
        self.idle.set()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps > 1000:
            raise AssertionError("the timer never fired")
        self.now += seconds
        for at in sorted(t for t in self.script if t <= self.now):
            action = self.script.pop(at)
            if action == "speak":  # what the session does when the caller speaks
                self.last_activity, self.reprompts = at, 0
            self.caller_speaking = action == "start"

    async def reprompt(self) -> None:
        self.said.append((self.now, "reprompt"))
        self.last_activity = self.now  # the phrase is said at once, in this fake

    async def goodbye(self) -> None:
        self.said.append((self.now, "goodbye"))
        raise Goodbye

    def timer(self, **settings: float) -> NoInputTimer:
        return NoInputTimer(
            self,
            NoInputSettings(**settings),
            clock=self.clock,
            paused=lambda: self.caller_speaking,
            reprompt=self.reprompt,
            goodbye=self.goodbye,
            record=lambda name, **data: self.events.append((name, data)),
            poll_s=0.1,
            sleep=self.sleep,
        )


async def test_silence_gets_reprompts_then_the_goodbye() -> None:
    call = FakeCall()
    with pytest.raises(Goodbye):
        await call.timer(reprompt_after_s=5, max_reprompts=2).run()
    assert call.said == [(5, "reprompt"), (10, "reprompt"), (15, "goodbye")]
    assert call.events == [("no_input", {"count": n}) for n in (1, 2, 3)]


async def test_a_caller_who_answers_starts_the_count_again() -> None:
    call = FakeCall(script={7.0: "speak"})
    with pytest.raises(Goodbye):
        await call.timer(reprompt_after_s=5, max_reprompts=1).run()
    # 5: first reprompt; the caller answers at 7; 12 is a first reprompt again, 17 the goodbye.
    assert call.said == [(5, "reprompt"), (12, "reprompt"), (17, "goodbye")]


async def test_no_reprompt_while_the_caller_speaks_or_the_robot_talks() -> None:
    call = FakeCall(script={4.0: "start", 9.0: "stop"})
    with pytest.raises(Goodbye):
        await call.timer(reprompt_after_s=5, max_reprompts=0).run()
    ((at, what),) = call.said
    assert what == "goodbye" and 9.0 <= at < 9.2  # held while speaking, then at once

    robot_talking = FakeCall()
    robot_talking.idle.clear()
    task = asyncio.create_task(robot_talking.timer(reprompt_after_s=5, max_reprompts=0).run())
    await asyncio.sleep(0)
    assert not task.done() and robot_talking.said == []  # waits for the robot's turn to end
    robot_talking.last_activity = robot_talking.now = 30.0  # it ended at 30 s
    robot_talking.idle.set()
    with pytest.raises(Goodbye):
        await task
    assert robot_talking.said == [(35.0, "goodbye")]
