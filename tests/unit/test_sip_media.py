"""The robot's audio buffer between asyncio and PJSIP's media clock, and the batched inbox."""

from __future__ import annotations

import asyncio
import threading

import pjsua2 as pj

from voiceplat.telephony.ingress.sip.frames import FrameWriter, read_vector
from voiceplat.telephony.ingress.sip.media import FRAME_BYTES, LoopInbox, PlayoutBuffer


def test_frames_round_trip_through_pjsip_vectors() -> None:
    data = bytes(range(256)) + bytes(64)
    frame = pj.MediaFrame()
    FrameWriter(len(data)).fill(frame, data)
    assert read_vector(frame.buf) == data
    assert frame.size == len(data)
    assert read_vector(pj.ByteVector()) == b""


def test_buffer_gives_frames_in_order_and_pads_the_last_with_silence() -> None:
    buffer = PlayoutBuffer(lambda played: None)
    buffer.write(b"\x01" * 300)
    buffer.write(b"\x02" * 100)
    first = buffer.take(FRAME_BYTES)
    second = buffer.take(FRAME_BYTES)
    assert first == b"\x01" * 300 + b"\x02" * 20
    assert second == b"\x02" * 80 + bytes(240)
    assert buffer.take(FRAME_BYTES) is None  # nothing queued: the port sends silence
    assert buffer.played == 400  # padding is not robot audio
    assert buffer.queued == 0


def test_flush_drops_everything_not_yet_taken() -> None:
    buffer = PlayoutBuffer(lambda played: None)
    buffer.write(b"\x01" * 1000)
    buffer.take(FRAME_BYTES)
    assert buffer.flush() == 1000 - FRAME_BYTES
    assert buffer.take(FRAME_BYTES) is None
    assert buffer.played == FRAME_BYTES


def test_progress_is_reported_once_when_the_position_is_reached() -> None:
    reports: list[int] = []
    buffer = PlayoutBuffer(reports.append)
    buffer.write(b"\x01" * 1000)
    buffer.want_notice(500)
    buffer.take(FRAME_BYTES)
    assert reports == []
    buffer.take(FRAME_BYTES)
    assert reports == [640]
    buffer.take(FRAME_BYTES)
    assert reports == [640]  # once, until asked again
    buffer.want_notice(100)  # already reached: reported at once
    assert reports == [640, 960]


async def test_inbox_runs_callbacks_from_other_threads_in_order_in_the_loop() -> None:
    loop = asyncio.get_running_loop()
    inbox = LoopInbox(loop)
    seen: list[tuple[int, bool]] = []
    done = asyncio.Event()
    loop_thread = threading.current_thread()

    def record(value: int) -> None:
        seen.append((value, threading.current_thread() is loop_thread))
        if value == 999:
            done.set()

    def producer() -> None:
        for value in range(1000):
            inbox.post(record, value)

    thread = threading.Thread(target=producer)
    thread.start()
    async with asyncio.timeout(60):
        await done.wait()
    thread.join()
    assert [value for value, _ in seen] == list(range(1000))
    assert all(in_loop for _, in_loop in seen)
