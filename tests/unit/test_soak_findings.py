"""What benchmarks/soak.py found, pinned so it stays fixed.

1. "Task exception was never retrieved ... StopAsyncIteration" in the robot's log, a few per
   thousand calls: the LLM's stream ended in the same loop turn as the answer was cancelled
   (a barge-in, a caller gone). The task waiting for the stream's next token then held the
   StopAsyncIteration nobody read, and asyncio logged it as an ERROR when the task was freed.
2. "recorder: sink jsonfile is behind, queue full; dropped N item(s)" at 50 calls on a starved
   CPU: the JSON file sink writes a call only when it opens and ends, but its queue held every
   turn and event too, so a slow disk filled it with items it ignores and calls' ends were
   dropped (records left `in_progress`).
3. "postgres: a batch was refused (cannot switch to state N; another operation (N) is in
   progress); writing it item by item", after a write cut by the timeout on a starved CPU:
   asyncpg's InternalClientError was taken for the data's fault, so had the connection stayed
   busy, each item would have been set aside as refused (lost to the table).
4. 39 000 `Message` objects left in a robot with no call after 6 137 calls: the fake LLM, one
   per process, remembered every prompt of every call for tests; it keeps the recent ones.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from asyncpg.exceptions._base import InternalClientError

from voiceplat.providers.base import Message
from voiceplat.providers.llm.fake import KEEP_RECENT, FakeLLM, FakeLLMSettings
from voiceplat.sessions.reply_writer import _timed
from voiceplat.storage.postgres import PostgresSink
from voiceplat.storage.recorder import Recorder, Sink
from voiceplat.storage.records import (
    CallOpened,
    CallRecord,
    CallSnapshot,
    RecordItem,
    TurnRecord,
    utcnow,
)
from voiceplat.storage.spool import Entry
from voiceplat.storage.spooled_sink import RetryPolicy


async def test_a_stream_ending_as_its_reader_is_cancelled_leaves_no_unread_exception() -> None:
    loop = asyncio.get_running_loop()
    unread: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unread.append(context))
    waiting, release = asyncio.Event(), asyncio.Event()

    async def tokens() -> AsyncIterator[str]:
        yield "first"
        waiting.set()
        await release.wait()  # ... then the stream ends

    async def reader() -> list[str | None]:
        return [item async for item in _timed(tokens(), lambda: None)]

    try:
        task = asyncio.create_task(reader())
        await waiting.wait()
        release.set()  # the stream's end and the cancel land in the same loop turn
        task.cancel()
        await asyncio.wait({task})
        assert task.cancelled()
        del task
        gc.collect()  # a task that holds an unread exception logs it when it is freed
        await asyncio.sleep(0)  # the handler is called from the loop
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("message") for c in unread] == []


async def test_the_stream_still_gives_every_item_and_ends() -> None:
    async def tokens() -> AsyncIterator[str]:
        for token in ("a", "b", "c"):
            yield token

    assert [item async for item in _timed(tokens(), lambda: None)] == ["a", "b", "c"]


class SlowWholeCallSink(Sink):
    """The JSON file sink's shape: `write` per call open and end, each waiting on the disk."""

    def __init__(self) -> None:
        self.disk = asyncio.Event()
        self.written: dict[str, str] = {}

    async def write(self, snapshot: CallSnapshot) -> None:
        await self.disk.wait()
        self.written[snapshot.call.call_id] = snapshot.call.status


class EveryItemSink(Sink):
    def __init__(self) -> None:
        self.items: list[RecordItem] = []

    async def handle(self, item: RecordItem) -> None:
        self.items.append(item)


def busy_call(recorder: Recorder, n: int) -> None:
    start = utcnow()
    call = recorder.open_call(
        CallRecord(call_id=f"c{n}", robot="soak", mode="pipeline", started_at=start)
    )
    for idx in range(4):
        call.event("tts_first_audio", turn=idx)
        call.add_turn(
            TurnRecord(
                call_id=f"c{n}", idx=idx, role="robot" if idx % 2 else "user", started_at=start
            )
        )
    call.finish("completed", "caller_hangup")


async def test_a_slow_whole_call_sink_loses_no_call_end_to_turns_and_events() -> None:
    slow, every = SlowWholeCallSink(), EveryItemSink()
    recorder = Recorder([slow, every], queue_size=8)  # 2 calls' open and end; 1 call's items
    await recorder.start()
    for n in range(4):
        busy_call(recorder, n)
    slow.disk.set()
    await recorder.aclose()
    assert slow.written == {f"c{n}": "completed" for n in range(4)}
    # A sink that takes every item still gets them all, up to its queue's size.
    assert len(every.items) == 8
    assert recorder.dropped == 4 * 10 - 8


class BusyConnectionSink(PostgresSink):
    """PostgreSQL's sink with the server replaced: its first writes meet a connection still busy
    with a cut operation, as asyncpg reports it."""

    def __init__(self, spool_dir: Path, busy_writes: int) -> None:
        super().__init__("postgresql://127.0.0.1:1/unused", spool_dir, FAST)
        self.busy_writes = busy_writes
        self.rows: list[str] = []

    async def connect(self) -> None:
        pass

    async def write_batch(self, entries: list[Entry]) -> None:
        if self.busy_writes:
            self.busy_writes -= 1
            raise InternalClientError(
                "cannot switch to state 1; another operation (2) is in progress"
            )
        self.rows += [entry["call"]["call_id"] for entry in entries]


FAST = RetryPolicy(first_delay_s=0.005, max_delay_s=0.02, op_timeout_s=5, close_timeout_s=5)


async def test_a_busy_postgres_connection_is_retried_not_taken_for_bad_data(tmp_path: Path) -> None:
    sink = BusyConnectionSink(tmp_path, busy_writes=2)  # the batch, then its one item
    await sink.start()
    await sink.handle(CallOpened(CallRecord(call_id="c1", robot="soak", mode="pipeline")))
    async with asyncio.timeout(60):  # only a hang takes so long
        await sink.drained()
    await sink.aclose()
    assert sink.rejected == 0
    assert sink.rows == ["c1"]
    assert not sink.spool.rejected_path.exists()


async def test_the_fake_llm_remembers_only_the_recent_prompts() -> None:
    llm = FakeLLM(FakeLLMSettings(provider="fake"), {})
    for n in range(3 * KEEP_RECENT):
        async for _ in llm.stream([Message(role="user", content=f"q{n}")]):
            pass
    assert KEEP_RECENT <= len(llm.streamed) <= 2 * KEEP_RECENT
    assert llm.streamed[-1] == [Message(role="user", content=f"q{3 * KEEP_RECENT - 1}")]
