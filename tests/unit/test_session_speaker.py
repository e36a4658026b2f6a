"""The call's one speaker: barge-in, replacing it, and the goodbye nothing may cut.

A `Session` with stand-ins for the robot, the channel and the record: no sockets, no providers.
Ordering is made with events, never with sleeps.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from voiceplat.config import RobotConfig
from voiceplat.sessions.base import Session
from voiceplat.sessions.turn import RobotTurn
from voiceplat.sessions.turn_audio import TurnAudio


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
    session.audio = TurnAudio(channel, call, tts=lambda: None, clock=session.clock)  # type: ignore[arg-type, return-value]
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


async def test_a_newer_reason_to_speak_does_not_replace_a_final_goodbye() -> None:
    session, _, _ = make_session()
    goodbye_heard = asyncio.Event()
    spoken: list[str] = []

    async def goodbye() -> None:
        await goodbye_heard.wait()
        spoken.append("goodbye")

    async def answer() -> None:
        spoken.append("answer")

    async with asyncio.TaskGroup() as tasks:
        session._tasks = tasks
        assert session.start_speaker(goodbye, final=True)
        assert not session.start_speaker(answer)
        assert session.speaker_protected()
        goodbye_heard.set()
    assert spoken == ["goodbye"]


async def test_an_ordinary_speaker_is_replaced() -> None:
    session, _, _ = make_session()
    spoken: list[str] = []

    async def thinking() -> None:
        await asyncio.get_running_loop().create_future()

    async def answer() -> None:
        spoken.append("answer")

    async with asyncio.TaskGroup() as tasks:
        session._tasks = tasks
        assert session.start_speaker(thinking)
        first = session.speaker
        assert not session.speaker_protected()
        assert session.start_speaker(answer)
    assert first is not None and first.cancelled()
    assert spoken == ["answer"]


@pytest.mark.parametrize("force", [False, True])
async def test_barge_in_cuts_a_final_goodbye_only_when_forced(force: bool) -> None:
    session, channel, call = make_session()
    goodbye_heard = asyncio.Event()

    async def goodbye() -> None:
        await goodbye_heard.wait()

    async with asyncio.TaskGroup() as tasks:
        session._tasks = tasks
        session.start_speaker(goodbye, final=True)
        speaker = session.speaker
        assert speaker is not None
        session.turn = RobotTurn(0, interruptible=False)
        await session.barge_in(force=force)
        assert speaker.cancelled() is force
        assert channel.cleared == int(force)
        goodbye_heard.set()
    if not force:
        assert ("speech_ignored", {"reason": "the robot is saying goodbye"}) in call.events
