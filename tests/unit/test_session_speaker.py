"""The call's one speaker: barge-in.

A `Session` with stand-ins for the robot, the channel and the record: no sockets, no providers.
Ordering is made with events, never with sleeps.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from voiceplat.config import RobotConfig
from voiceplat.sessions.base import Session
from voiceplat.sessions.turn import RobotTurn


class FakeChannel:
    def __init__(self) -> None:
        self.cleared = 0

    def heard_ms(self) -> float:
        return 0.0

    async def clear(self) -> float:
        self.cleared += 1
        return 0.0


class FakeCall:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, name: str, **data: Any) -> None:
        self.events.append((name, data))


def make_session() -> tuple[Session, FakeChannel, FakeCall]:
    channel = FakeChannel()
    robot = SimpleNamespace(config=RobotConfig(), name="test")
    session = Session(robot, channel, recorder=None)  # type: ignore[arg-type]
    call = FakeCall()
    session.call = call  # type: ignore[assignment]
    return session, channel, call


async def test_barge_in_does_not_swallow_a_cancel_of_the_task_running_it() -> None:
    session, channel, _ = make_session()
    cleaning_up = asyncio.Event()

    async def speaker() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # speaks until cancelled
        finally:
            cleaning_up.set()
            await asyncio.Event().wait()  # a slow cleanup: the barge-in is still waiting

    session.speaker = asyncio.create_task(speaker())
    session.turn = RobotTurn(0)
    barger = asyncio.create_task(session.barge_in())
    await cleaning_up.wait()  # the barge-in has flushed and now waits for the speaker
    assert channel.cleared == 1
    barger.cancel()  # the call's TaskGroup aborts: the task running the barge-in is cancelled
    await asyncio.gather(barger, return_exceptions=True)
    assert barger.cancelled()
    session.speaker.cancel()
    await asyncio.gather(session.speaker, return_exceptions=True)
