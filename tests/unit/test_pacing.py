"""AudioForkChannel pacing and push-mode receiving, and the shared Pacer, without sockets or real
time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosedOK

from voiceplat.audio.pcm import frame_bytes
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn
from voiceplat.telephony.ingress.audio_fork.channel import AudioForkChannel
from voiceplat.telephony.pacer import Pacer


class FakeTransport:
    def __init__(self) -> None:
        self.receiver = None
        self.sent: list[str | bytes] = []

    def attach(self, receiver) -> None:
        self.receiver = receiver

    def send_now(self, message: str | bytes) -> bool:
        self.sent.append(message)
        return True

    def write_ready(self) -> bool:
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


class NoPacer:
    def wake(self, client) -> None:
        pass

    def remove(self, client) -> None:
        pass


def make_channel() -> tuple[AudioForkChannel, FakeTransport]:
    transport = FakeTransport()
    channel = AudioForkChannel(transport, lead_ms=200, chunk_ms=60, pacer=NoPacer())  # type: ignore[arg-type]
    return channel, transport


async def test_first_burst_fills_the_lead_then_one_chunk_per_chunk_of_room() -> None:
    channel, transport = make_channel()
    channel.play(b"\x00" * frame_bytes(1000))
    due = channel.pace(10.0, 10.0)
    assert [len(m) for m in transport.sent] == [frame_bytes(60)] * 4  # 240 ms ≥ lead 200 ms
    sends: list[float] = []
    while due is not None:
        sends.append(due)
        transport.sent.clear()
        due = channel.pace(due, due)
        assert len(transport.sent) == 1  # exactly one chunk each time room opens
    # Chunk k (k ≥ 4) starts playing at 10 + 0.06 k and is sent 180 ms before that: real time.
    assert sends == pytest.approx([10.0 + 0.06 * k - 0.18 for k in range(4, 4 + len(sends))])


async def test_marks_follow_their_audio_and_a_short_chunk_does_not_cross_them() -> None:
    channel, transport = make_channel()
    channel.play(b"\x01" * frame_bytes(100))
    channel.mark("m")
    channel.play(b"\x02" * frame_bytes(40))
    channel.pace(0.0, 0.0)
    kinds = [len(m) if isinstance(m, bytes) else json.loads(m)["type"] for m in transport.sent]
    assert kinds == [frame_bytes(60), frame_bytes(40), "mark", frame_bytes(40)]


async def test_audio_is_handled_in_the_reader_and_waits_for_returned_work() -> None:
    channel, transport = make_channel()
    receiver = transport.receiver
    assert receiver is not None
    receiver.on_message(json.dumps({"callId": "c1"}))
    assert (await channel.metadata()).call_id == "c1"
    handled: list[bytes] = []
    release = asyncio.Event()

    async def slow_work() -> None:
        await release.wait()

    def handler(audio: AudioIn):
        handled.append(audio.data)
        return slow_work() if audio.data == b"\x01\x00" else None

    reading = asyncio.create_task(channel.receive_audio(handler))
    await asyncio.sleep(0)  # let it start waiting
    receiver.on_message(b"\x00\x00")
    assert handled == [b"\x00\x00"]  # synchronously, in the reader's call
    receiver.on_message(b"\x01\x00")
    receiver.on_message(b"\x02\x00")
    assert handled == [b"\x00\x00", b"\x01\x00"]  # the next one waits for the work
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert handled == [b"\x00\x00", b"\x01\x00", b"\x02\x00"]
    receiver.on_closed(ConnectionClosedOK(None, None))
    with pytest.raises(Hangup):
        await reading


class FakeLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, at: float, callback: Callable[[], None]):
        loop = self

        class Handle:
            def cancel(self) -> None:
                loop.timers.remove(entry)

        entry = (at, callback)
        self.timers.append(entry)
        return Handle()


class Client:
    def __init__(self, name: str, log: list[tuple[str, float]], dues: list[float]) -> None:
        self.name, self.log, self.dues = name, log, dues

    def pace(self, now: float, horizon: float) -> float | None:
        self.log.append((self.name, now))
        return self.dues.pop(0) if self.dues else None

    def pacing_failed(self, exc: Exception) -> None:
        raise AssertionError(exc)


def test_pacer_serves_every_client_due_within_its_window_with_one_timer() -> None:
    loop = FakeLoop()
    pacer = Pacer(loop, window_s=0.002)  # type: ignore[arg-type]
    log: list[tuple[str, float]] = []
    a = Client("a", log, [1.000, 2.0])
    b = Client("b", log, [1.0015])
    pacer.wake(a)
    pacer.wake(b)
    assert len(loop.timers) == 1
    _, run = loop.timers.pop()
    run()  # both were due now
    assert log == [("a", 0.0), ("b", 0.0)]
    assert [t for t, _ in loop.timers] == [1.000]  # one timer, for the earliest
    loop.now, (_, run) = 1.000, loop.timers.pop()
    run()  # b (due 1.0015) is inside the 2 ms window: served in the same wake-up
    assert log[2:] == [("a", 1.0), ("b", 1.0)]
    assert [t for t, _ in loop.timers] == [2.0]


async def test_transfer_sends_the_command_and_counts_as_accepted() -> None:
    # mod_audio_fork never answers a transfer: the result says so instead of waiting for one.
    channel, transport = make_channel()
    result = await channel.transfer("sip:operator@pbx")
    assert result.accepted
    assert result.reason == "sent to mod_audio_fork"
    assert [json.loads(m) for m in transport.sent] == [
        {"type": "transfer", "data": {"target": "sip:operator@pbx"}}
    ]


async def test_dtmf_handler_is_kept_and_audio_is_not_taken_for_keys() -> None:
    channel, transport = make_channel()
    digits: list[object] = []
    channel.on_dtmf(digits.append)
    assert transport.receiver is not None
    transport.receiver.on_message(json.dumps({"callId": "c1"}))
    transport.receiver.on_message(b"\x00\x00" * 160)
    await channel.metadata()
    assert (await channel.audio()).data == b"\x00\x00" * 160
    assert digits == []
