"""How a call ends: the max-duration goodbye under any caller behaviour, and the record finished first.

The max-duration calls run over a real WebSocket on 127.0.0.1 with the simulated caller; the
fake TTS waits `TTS_DELAY_S` before its first audio, so the goodbye has no audio yet while the
caller talks. Durations are compared with bounds built from the configured delays (doubled), never
with the machine's speed: the bug they catch kept calls going until the caller hung up.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES
from tests.integration.test_calls import final_records
from voiceplat.providers.tts.fake import audio_ms
from voiceplat.simulator import Pause, Say, run_call

HELLO = FIXTURES / "ru_hello.wav"  # speech from 0.16 s to 3.6 s
AGA = FIXTURES / "ru_aga.wav"  # speech from 0.24 s to 0.78 s

MAX_CALL_S = 2.0
TTS_DELAY_S = 1.5
GOODBYE = "Время вышло."
MS_PER_CHAR = 60.0  # the fake TTS's default


def max_call_robot(make_robot, **overrides: Any) -> Path:
    """No greeting (the robot is quiet until max_call_s); every phrase starts TTS_DELAY_S late."""
    settings: dict[str, Any] = {
        "greeting_text": "",
        "max_call_s": MAX_CALL_S,
        "max_call_text": GOODBYE,
        "asr": {"provider": "fake", "texts": ["Хочу записаться к врачу"]},
        "tts": {"provider": "fake", "delay_ms": TTS_DELAY_S * 1000},
    }
    settings.update(overrides)
    return make_robot(**settings)


def longest_max_call_s(tts_wait_s: float = TTS_DELAY_S) -> float:
    """Twice what max_call_s, the TTS's wait and the goodbye's audio add up to."""
    goodbye_s = audio_ms(GOODBYE, MS_PER_CHAR, 200.0) / 1000
    return 2 * (MAX_CALL_S + tts_wait_s + goodbye_s)


def assert_ended_by_max_duration(record: dict, longest_s: float) -> None:
    call = record["call"]
    assert call["end_reason"] == "max_duration", [
        (t["role"], t["text"], t["interrupted"]) for t in record["turns"]
    ]
    goodbye = record["turns"][-1]
    assert (goodbye["role"], goodbye["text"], goodbye["interrupted"]) == ("robot", GOODBYE, False)
    assert call["duration_sec"] < longest_s


async def test_caller_speaking_before_the_goodbye_is_audible_does_not_cancel_it(
    make_robot, robot_server
) -> None:
    """The caller starts talking after max_call_s, while the goodbye's TTS has no audio yet."""
    robot = max_call_robot(make_robot)
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Pause(MAX_CALL_S + 0.1), Say(HELLO), Pause(10)])

    assert result.robot_hung_up
    (record,) = await final_records(robot)
    assert_ended_by_max_duration(record, longest_max_call_s())


async def test_caller_utterance_ending_before_the_goodbye_is_audible_does_not_replace_it(
    make_robot, robot_server
) -> None:
    """Speech from before max_call_s ends while the goodbye has no audio: a newer reason to
    speak (the answer to it) must not replace the goodbye."""
    robot = max_call_robot(make_robot)
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Pause(MAX_CALL_S - 0.5), Say(AGA), Pause(10)])

    assert result.robot_hung_up
    (record,) = await final_records(robot)
    assert_ended_by_max_duration(record, longest_max_call_s())
    assert not [t for t in record["turns"] if t["role"] == "user"]


async def test_goodbye_whose_tts_hangs_still_ends_the_call(make_robot, robot_server) -> None:
    tts_timeout_s = 1.0
    robot = max_call_robot(
        make_robot, tts={"provider": "fake", "fail": "hang", "timeout_s": tts_timeout_s}
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Pause(MAX_CALL_S + 0.5), Say(HELLO), Pause(10)])

    assert result.robot_hung_up
    (record,) = await final_records(robot)
    call = record["call"]
    assert call["end_reason"] == "max_duration"
    goodbye = record["turns"][-1]
    assert goodbye["role"] == "robot" and not goodbye["interrupted"]
    assert goodbye["error"] and "TTS" in goodbye["error"]
    assert call["duration_sec"] < longest_max_call_s(tts_timeout_s)


async def test_non_interruptible_greeting_is_not_cancelled_before_its_audio(
    make_robot, robot_server
) -> None:
    """The caller speaks while the greeting's TTS is still working: the greeting plays in full."""
    robot = make_robot(
        greeting_interruptible=False,
        tts={"provider": "fake", "delay_ms": 2000},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO)])  # speaks after 0.6 s of silence

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    greeting = record["turns"][0]
    assert (greeting["role"], greeting["text"], greeting["interrupted"]) == (
        "robot",
        "Здравствуйте! Чем могу помочь?",
        False,
    )
    events = [e["event"] for e in record["pipeline_log"]]
    assert "answer_cancelled" not in events


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
    from voiceplat.telephony.ingress.audio_fork.channel import AudioForkChannel

    robot = load_robot(robot_dir)
    await robot.start()
    peer = StallingPeer()
    channel: CallChannel = AudioForkChannel(peer)
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
