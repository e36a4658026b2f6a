"""How a call ends: the record is finished before the connection is closed."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# -- the record is finished before the connection is closed -------------------------------------


class StallingPeer:
    """A peer that answers every mark at once but never completes the close handshake."""

    def __init__(self) -> None:
        self.receiver: Any = None
        self.audio_started = asyncio.Event()
        self.close_started = asyncio.Event()
        self.close_started_at: datetime | None = None
        self.disconnected = False
        self._never = asyncio.Event()

    def attach(self, receiver: Any) -> None:
        self.receiver = receiver

    def send_now(self, message: str | bytes) -> bool:
        if isinstance(message, bytes):
            self.audio_started.set()
            return True
        data = json.loads(message)
        if data.get("type") == "disconnect":
            self.disconnected = True
        if data.get("type") == "mark":
            reply = {"type": "mark", "data": {"name": data["data"]["name"], "event": "playout"}}
            asyncio.get_running_loop().call_soon(self.receiver.on_message, json.dumps(reply))
        return True

    def write_ready(self) -> bool:
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.close_started_at is None:
            self.close_started_at = datetime.now(UTC)
        self.close_started.set()
        await self._never.wait()


async def start_stalled_call(robot_dir: Path) -> tuple[Any, StallingPeer, asyncio.Task[str], Any]:
    from voiceplat.robot import load_robot
    from voiceplat.sessions.pipeline import PipelineSession
    from voiceplat.storage.recorder import Recorder
    from voiceplat.telephony.channel import CallChannel

    robot = load_robot(robot_dir)
    await robot.start()
    peer = StallingPeer()
    channel = CallChannel(peer)
    session = PipelineSession(robot, channel, Recorder([]))
    peer.receiver.on_message(json.dumps({"callId": "stalled"}))
    return session, peer, asyncio.create_task(session.run()), robot


async def stop(run: asyncio.Task[str], robot: Any) -> None:
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await robot.aclose()


async def test_robot_goodbye_finishes_the_record_before_the_close_handshake(make_robot) -> None:
    robot_dir = make_robot(greeting_text="", max_call_s=0.5, max_call_text="Пока.")
    session, peer, run, robot = await start_stalled_call(robot_dir)
    try:
        async with asyncio.timeout(30):  # only a hang gets there
            await peer.close_started.wait()
        assert peer.disconnected
        assert session.call.finished
        record = session.call.record
        assert (record.status, record.end_reason) == ("completed", "max_duration")
        assert record.ended_at is not None and peer.close_started_at is not None
        assert record.ended_at <= peer.close_started_at
    finally:
        await stop(run, robot)


async def test_shutdown_finishes_the_record_before_anything_awaits(make_robot) -> None:
    robot_dir = make_robot(tts={"provider": "fake", "ms_per_char": 1000})  # a long greeting
    session, peer, run, robot = await start_stalled_call(robot_dir)
    try:
        async with asyncio.timeout(30):
            await peer.audio_started.wait()
        run.cancel()  # what RobotServer.shutdown does to a call still going after the grace
        async with asyncio.timeout(30):
            await peer.close_started.wait()
        assert session.call.finished
        record = session.call.record
        assert (record.status, record.end_reason) == ("failed", "shutdown")
        greeting = session.call.turns[0]
        assert greeting.role == "robot" and greeting.interrupted
    finally:
        await stop(run, robot)
