"""Bad input from the network or from providers ends (or degrades) only the affected call, with a
logged reason and a JSON record; the process and every other call go on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.conftest import FIXTURES, read_call_records
from voiceplat.audio.wav import read_wav

SUBPROTOCOLS = [Subprotocol("audio.drachtio.org")]


async def drain(ws) -> list[str | bytes]:
    received: list[str | bytes] = []
    try:
        async for message in ws:
            received.append(message)
    except ConnectionClosed:
        pass
    return received


async def wait_for_records(robot: Path, count: int, status: str | None = None) -> list[dict]:
    """The JSON sink writes in its own task: poll the folder until the records are final (bounded,
    at a limit only a hang reaches)."""
    async with asyncio.timeout(60):
        while True:
            records = [r for r in read_call_records(robot) if r["call"]["status"] != "in_progress"]
            if len(records) >= count:
                return records
            await asyncio.sleep(0.05)


async def healthy_call(url: str) -> list[str | bytes]:
    """A normal caller: metadata, a second of silence, then (if it has not come yet) a wait for the
    greeting's first audio; returns what the robot sent."""
    async with connect(url, subprotocols=SUBPROTOCOLS) as ws:
        await ws.send(json.dumps({"callId": "healthy"}))
        received: list[str | bytes] = []
        for _ in range(50):
            await ws.send(bytes(320))
            await asyncio.sleep(0.02)
            while True:
                try:
                    received.append(await asyncio.wait_for(ws.recv(), 0.001))
                except TimeoutError:
                    break
        # A busy machine may greet later than that second: only a hang keeps the greeting away.
        async with asyncio.timeout(60):
            while not any(isinstance(m, bytes) for m in received):
                received.append(await ws.recv())
        return received


@pytest.mark.parametrize(
    ("first_message", "reason"),
    [
        ("this is not json", "metadata is not JSON"),
        (b"\x00\x00" * 160, "audio arrived before the metadata"),
        ("[1,2,3]", "metadata must be a JSON object"),
    ],
)
async def test_broken_start_of_stream_ends_that_call_with_a_record(
    make_robot, robot_server, first_message: str | bytes, reason: str
) -> None:
    robot = make_robot()
    url, _, _ = await robot_server(robot)
    async with connect(url, subprotocols=SUBPROTOCOLS) as ws:
        await ws.send(first_message)
        await drain(ws)
    (record,) = await wait_for_records(robot, 1)
    assert record["call"]["status"] == "failed"
    assert record["call"]["end_reason"] == "protocol_error"
    assert any(reason in json.dumps(e, ensure_ascii=False) for e in record["pipeline_log"])
    assert any(isinstance(m, bytes) for m in await healthy_call(url))  # server still answers


async def test_huge_frame_ends_only_that_call(make_robot, robot_server) -> None:
    robot = make_robot()
    url, _, _ = await robot_server(robot)
    other = asyncio.create_task(healthy_call(url))
    ws = await connect(url, subprotocols=SUBPROTOCOLS, max_size=None)
    await ws.send(json.dumps({"callId": "huge"}))
    # The robot closes while we are still writing the 5 MiB: that send may fail in any way.
    sending = asyncio.create_task(ws.send(bytes(5 * 1024 * 1024)))
    await ws.wait_closed()
    await asyncio.wait([sending])
    assert ws.close_code == 1009  # "message too big"
    assert any(isinstance(m, bytes) for m in await other)
    records = {r["call"]["call_id"]: r for r in await wait_for_records(robot, 2)}
    assert records["huge"]["call"]["end_reason"] == "protocol_error"
    assert records["healthy"]["call"]["end_reason"] == "caller_hangup"


async def test_odd_length_frames_lose_no_audio(make_robot, robot_server) -> None:
    """Speech split into odd-sized messages is still heard whole: the robot answers it."""
    robot = make_robot()
    url, _, _ = await robot_server(robot)
    speech = read_wav(FIXTURES / "ru_hello.wav").data
    audio = bytes(320 * 10) + speech + bytes(320 * 60)
    async with connect(url, subprotocols=SUBPROTOCOLS) as ws:
        await ws.send(json.dumps({"callId": "odd"}))
        for i in range(0, len(audio), 161):
            await ws.send(audio[i : i + 161])
            await asyncio.sleep(161 / 16000)
    (record,) = await wait_for_records(robot, 1)
    users = [t for t in record["turns"] if t["role"] == "user"]
    assert len(users) == 1
    spoken = float(users[0]["text"].removeprefix("<speech ").removesuffix(" s>"))
    assert abs(spoken - len(speech) / 16000) < 1.0  # the whole utterance reached ASR


async def test_audio_faster_than_real_time_is_refused(make_robot, robot_server) -> None:
    robot = make_robot()
    url, _, _ = await robot_server(robot)
    async with connect(url, subprotocols=SUBPROTOCOLS) as ws:
        await ws.send(json.dumps({"callId": "flood"}))
        for _ in range(1000):  # 20 s of audio in a burst
            await ws.send(bytes(320))
        await drain(ws)
    (record,) = await wait_for_records(robot, 1)
    assert record["call"]["end_reason"] == "protocol_error"
    assert "faster than real time" in json.dumps(record["pipeline_log"])


async def test_socket_dying_mid_answer_records_the_call(make_robot, robot_server) -> None:
    robot = make_robot(tts={"provider": "fake", "ms_per_char": 200})  # a long answer
    url, _, _ = await robot_server(robot)
    speech = read_wav(FIXTURES / "ru_hello.wav").data
    audio = bytes(320 * 10) + speech + bytes(320 * 45)
    async with connect(url, subprotocols=SUBPROTOCOLS) as ws:
        await ws.send(json.dumps({"callId": "dies"}))
        for i in range(0, len(audio), 320):
            await ws.send(audio[i : i + 320])
            await asyncio.sleep(0.02)
        # the answer has begun; the caller vanishes without a close handshake
        ws.transport.abort()
    (record,) = await wait_for_records(robot, 1)
    assert record["call"]["end_reason"] == "caller_hangup"
    robot_turns = [t for t in record["turns"] if t["role"] == "robot"]
    assert robot_turns[-1]["interrupted"] is True


@pytest.mark.parametrize(
    ("provider", "settings"),
    [
        ("asr", {"provider": "fake", "fail": "raise"}),
        ("asr", {"provider": "fake", "fail": "hang", "timeout_s": 0.5}),
        ("llm", {"provider": "fake", "fail": "raise"}),
        ("llm", {"provider": "fake", "fail": "hang", "timeout_s": 0.5}),
        ("tts", {"provider": "fake", "fail": "mid"}),
    ],
)
async def test_failing_provider_gives_a_spoken_fallback(
    make_robot, robot_server, provider: str, settings: dict
) -> None:
    robot = make_robot(
        greeting_text=None, fallback_text="Извините, ошибка.", **{provider: settings}
    )
    url, _, _ = await robot_server(robot)
    speech = read_wav(FIXTURES / "ru_hello.wav").data
    audio = bytes(320 * 10) + speech + bytes(320 * 150)
    robot_audio = 0
    async with connect(url, subprotocols=SUBPROTOCOLS) as ws:
        await ws.send(json.dumps({"callId": f"fail-{provider}"}))
        for i in range(0, len(audio), 320):
            await ws.send(audio[i : i + 320])
            await asyncio.sleep(0.02)
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.001)
                except TimeoutError:
                    break
                robot_audio += len(message) if isinstance(message, bytes) else 0
        if provider != "tts":
            # The fallback phrase, however long the machine took to get to it (only a hang
            # takes this long); with a failing TTS there may be no audio at all.
            async with asyncio.timeout(60):
                while not robot_audio:
                    message = await ws.recv()
                    robot_audio += len(message) if isinstance(message, bytes) else 0
    (record,) = await wait_for_records(robot, 1)
    assert record["call"]["end_reason"] == "caller_hangup"
    robot_turns = [t for t in record["turns"] if t["role"] == "robot"]
    assert robot_turns and robot_turns[-1]["error"]
    if provider != "tts":
        assert robot_turns[-1]["text"] == "Извините, ошибка."
        assert robot_audio > 0  # the caller heard the fallback phrase
