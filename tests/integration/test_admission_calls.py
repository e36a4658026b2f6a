"""Admission control on real sockets: a call over `admission.max_calls` is refused the way its
ingress allows (WebSocket: close 1013 with a reason; AudioSocket: the hangup frame), gets a call
record with end_reason and outcome "refused", is counted, and hears `busy_phrase` if set; the
place is free again once the call in progress ends. Fake providers; 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.integration.ingress_checks import HELLO, final_records
from voiceplat.robot import load_robot
from voiceplat.simulator import Say, WaitQuiet, run_call
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.telephony import admission
from voiceplat.telephony.ingress.audio_fork.codec import SUBPROTOCOL
from voiceplat.telephony.ingress.audiosocket.codec import (
    KIND_AUDIO,
    KIND_HANGUP,
    FrameReader,
    uuid_frame,
)
from voiceplat.telephony.ingress.audiosocket.server import AudioSocketServer
from voiceplat.telephony.ingress.audiosocket.settings import AudioSocketSettings

OFFER = [Subprotocol(SUBPROTOCOL)]
HANG_S = 60  # only a hang reaches this
BUSY = "Все линии заняты"
MS_PER_CHAR = 60  # the fake TTS
BYTES_PER_MS = 16


@pytest.fixture(autouse=True)
def fresh_admission() -> Iterator[None]:
    admission.clear()
    yield
    admission.clear()


def refused_total(reason: str) -> float:
    return REGISTRY.get_sample_value("voiceplat_calls_refused_total", {"reason": reason}) or 0.0


async def live_call(url: str, call_id: str) -> tuple[ClientConnection, asyncio.Task[None]]:
    """A mod_audio_fork call that has heard the start of its greeting; the task keeps reading."""
    ws = await connect(url, subprotocols=OFFER)
    await ws.send(json.dumps({"callId": call_id}))
    async with asyncio.timeout(HANG_S):
        while not isinstance(await ws.recv(), bytes):
            pass
    return ws, asyncio.create_task(drain(ws))


async def drain(ws: ClientConnection) -> None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


async def refused_ws_call(url: str, metadata: dict[str, str]) -> tuple[int, str, int]:
    """A call the robot refuses: (close code, close reason, bytes of audio heard before)."""
    heard = 0
    async with asyncio.timeout(HANG_S):
        async with connect(url, subprotocols=OFFER) as ws:
            await ws.send(json.dumps(metadata))
            try:
                async for message in ws:
                    heard += len(message) if isinstance(message, bytes) else 0
            except ConnectionClosed:
                pass
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or "", heard


def record_of(records: list[dict[str, Any]], call_id: str) -> dict[str, Any]:
    return next(r for r in records if r["call"]["call_id"] == call_id)


async def test_a_call_over_max_calls_is_closed_1013_recorded_and_counted(
    make_robot: Callable[..., Path], robot_server: Callable[..., Any]
) -> None:
    robot = make_robot(admission={"max_calls": 1})
    url, _, _ = await robot_server(robot)
    held, reading = await live_call(url, "held")
    before = refused_total("max_calls")

    code, reason, heard = await refused_ws_call(url, {"callId": "second", "from": "+79990001122"})

    assert (code, reason, heard) == (1013, "busy: max_calls", 0)
    assert refused_total("max_calls") - before == 1
    await held.close()
    await reading
    records = await final_records(robot, 2)
    refused = record_of(records, "second")["call"]
    assert (refused["end_reason"], refused["outcome"]) == ("refused", "refused")
    assert refused["caller"] == "+79990001122"
    assert record_of(records, "held")["call"]["end_reason"] == "caller_hangup"
    # The call in progress ended: its place is free for the next one.
    again, reading = await live_call(url, "third")
    await again.close()
    await reading


async def test_a_refused_call_hears_the_busy_phrase_then_is_closed(
    make_robot: Callable[..., Path], robot_server: Callable[..., Any]
) -> None:
    robot = make_robot(admission={"max_calls": 1, "busy_phrase": BUSY})
    url, _, _ = await robot_server(robot)
    held, reading = await live_call(url, "held")

    code, reason, heard = await refused_ws_call(url, {"callId": "busy"})

    assert (code, reason) == (1013, "busy: max_calls")
    phrase_ms = len(BUSY) * MS_PER_CHAR
    assert phrase_ms - 20 <= heard / BYTES_PER_MS < phrase_ms + 200
    await held.close()
    await reading
    record = record_of(await final_records(robot, 2), "busy")
    assert record["call"]["end_reason"] == "refused"
    assert [e["event"] for e in record["pipeline_log"]] == ["busy_phrase"]
    assert record["turns"] == []


async def test_a_call_over_the_queue_budget_is_refused_while_the_models_are_busy(
    make_robot: Callable[..., Path], robot_server: Callable[..., Any]
) -> None:
    robot = make_robot(admission={"max_queue_wait_ms": 2000})
    url, server, _ = await robot_server(robot)
    control = admission.admission_for(server.robot)
    # 7.2 s of LLM jobs ahead of a new call: ~4.6 s of them still there after its greeting.
    queued = [admission.QueueView("llama", 8, 0.9)]
    control._queues = lambda: queued  # the fake providers have no model workers
    before = refused_total("queue_wait")

    code, reason, heard = await refused_ws_call(url, {"callId": "late"})

    assert (code, reason, heard) == (1013, "busy: queue_wait", 0)
    assert refused_total("queue_wait") - before == 1
    queued = [admission.QueueView("llama", 1, 0.9)]  # the queue drained
    taken, reading = await live_call(url, "in-time")
    await taken.close()
    await reading
    records = await final_records(robot, 2)
    assert record_of(records, "late")["call"]["metadata"]["refused"] == "queue_wait"
    assert record_of(records, "in-time")["call"]["end_reason"] == "caller_hangup"


@pytest.fixture
async def audiosocket(make_robot: Callable[..., Path]) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[AudioSocketServer, Recorder]] = []

    async def start(**config: Any) -> tuple[Path, AudioSocketServer]:
        folder = make_robot(**config)
        robot = load_robot(folder)
        recorder = Recorder(sinks_from_env(robot.env, robot.logs_dir, robot.directory / "spool"))
        await recorder.start()
        await robot.start()
        server = AudioSocketServer(robot, recorder, AudioSocketSettings())
        await server.start("127.0.0.1", 0)
        started.append((server, recorder))
        return folder, server

    yield start
    for server, recorder in started:
        await server.shutdown(grace_s=5)
        await recorder.aclose()
        await server.robot.aclose()


async def frames_until_closed(reader: asyncio.StreamReader) -> list[int]:
    """The kinds of the frames the robot sends until it closes the socket."""
    frames, kinds = FrameReader(), []
    async with asyncio.timeout(HANG_S):
        while data := await reader.read(4096):
            kinds += [f.kind for f in frames.feed(data)]
    return kinds


async def test_audiosocket_refuses_with_a_hangup_frame_after_the_busy_phrase(
    audiosocket: Callable[..., Any],
) -> None:
    folder, server = await audiosocket(admission={"max_calls": 1, "busy_phrase": BUSY})
    held_id, refused_id = uuid.uuid4(), uuid.uuid4()
    held_reader, held_writer = await asyncio.open_connection("127.0.0.1", server.port)
    held_writer.write(uuid_frame(held_id))
    async with asyncio.timeout(HANG_S):  # the greeting's first audio: the call is in progress
        header = await held_reader.readexactly(3)
    assert header[0] == KIND_AUDIO
    before = refused_total("max_calls")

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(uuid_frame(refused_id))
    kinds = await frames_until_closed(reader)
    writer.close()

    assert kinds[-1] == KIND_HANGUP and set(kinds[:-1]) == {KIND_AUDIO}  # the phrase, then hangup
    assert refused_total("max_calls") - before == 1
    held_writer.close()
    records = await final_records(folder, 2)
    refused = record_of(records, str(refused_id))["call"]
    assert (refused["source"], refused["end_reason"], refused["outcome"]) == (
        "asterisk",
        "refused",
        "refused",
    )


async def test_an_answer_stuck_behind_the_llm_queue_opens_with_the_filler(
    make_robot: Callable[..., Path], robot_server: Callable[..., Any]
) -> None:
    """The LLM's first token comes 2 s after it is asked (a queue of other calls' answers): the
    filler is said first, once, and the answer follows whole (the caller waits on the line
    through the gap after the filler)."""
    reply = "Адрес клиники: улица Ленина, дом пять."
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Какой у вас адрес?"]},
        llm={"provider": "fake", "reply": reply, "delay_ms": 2000},
        filler_text="Так…",
        admission={"filler_after_ms": 500},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), WaitQuiet(3.0)], answer_timeout_s=30)

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    answer = next(t for t in record["turns"] if t["role"] == "robot" and t["idx"] > 0)
    assert answer["text"] == reply
    fillers = [e for e in record["pipeline_log"] if e["event"] == "filler"]
    assert [f["data"] for f in fillers] == [
        {"turn": answer["idx"], "text": "Так…", "opening": True}
    ]
    # The caller heard the greeting, the filler alone, then (after the LLM's wait) the answer.
    _greeting, filler, answered = result.answers
    assert filler.bytes < answered.bytes and filler.end_ms is not None
    assert answered.start_ms > filler.end_ms
