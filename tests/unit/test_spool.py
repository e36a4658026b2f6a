"""The spool and the spooled sink, against an in-memory store that can be down or refuse data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from voiceplat.storage.recorder import CallLog, Recorder
from voiceplat.storage.records import CallOpened, CallRecord, RecordItem, TurnRecord, utcnow
from voiceplat.storage.spool import Entry, Spool
from voiceplat.storage.spooled_sink import RetryPolicy, SpooledSink

FAST = RetryPolicy(first_delay_s=0.005, max_delay_s=0.02, op_timeout_s=0.5, close_timeout_s=2)
HANG_S = 60
"""Waits for what the writer does next are bounded at this: only a hang takes so long."""


class MemoryStore(SpooledSink):
    """A store keyed like the real ones: calls by call_id, turns by (call_id, idx)."""

    name = "memory"

    def __init__(self, spool_dir: Path, retry: RetryPolicy = FAST) -> None:
        super().__init__(spool_dir, retry)
        self.down = False
        self.hang = False
        self.refuse: set[str] = set()
        self.calls: dict[str, dict[str, Any]] = {}
        self.turns: dict[tuple[str, int], dict[str, Any]] = {}
        self.applied: list[tuple[str, str]] = []
        self.failed = asyncio.Event()
        self.hung = asyncio.Event()

    async def connect(self) -> None:
        if self.down:
            self.failed.set()
            raise ConnectionRefusedError("down")

    async def write_batch(self, entries: list[Entry]) -> None:
        if self.hang:
            self.hung.set()
            await asyncio.get_running_loop().create_future()
        if self.down:
            self.failed.set()
            raise ConnectionRefusedError("down")
        for entry in entries:
            if entry["call"]["call_id"] in self.refuse:
                raise ValueError(f"bad call {entry['call']['call_id']}")
        for entry in entries:
            call = entry["call"]
            self.calls[call["call_id"]] = call
            for turn in entry.get("turns") or ([entry["turn"]] if "turn" in entry else []):
                self.turns[(call["call_id"], turn["idx"])] = turn
            self.applied.append((call["call_id"], entry["k"]))


class Collector:
    """Stands in for the recorder: keeps what a CallLog publishes."""

    def __init__(self) -> None:
        self.items: list[RecordItem] = []

    def publish(self, item: RecordItem) -> None:
        self.items.append(item)

    def open_call(self, call: CallRecord) -> CallLog:
        log = CallLog(self, call, utcnow)  # type: ignore[arg-type]
        self.publish(CallOpened(call))
        return log


def make_call(recorder: Recorder | Collector, call_id: str, turns: int = 2) -> None:
    log = recorder.open_call(CallRecord(call_id=call_id, robot="r", mode="pipeline"))
    for idx in range(turns):
        role = "robot" if idx % 2 == 0 else "user"
        log.add_turn(TurnRecord(call_id=call_id, idx=idx, role=role, text=f"{call_id} {idx}"))
    log.event("speech_start")
    log.finish("completed", "caller_hangup")


async def test_items_reach_the_store_in_order(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    recorder = Recorder([store])
    await recorder.start()
    make_call(recorder, "a")
    await recorder.aclose()  # hands everything queued to the sink, which writes it
    assert store.applied == [("a", k) for k in ("opened", "turn", "turn", "event", "finished")]
    assert store.calls["a"]["status"] == "completed"
    assert store.spool.path.stat().st_size == 0  # caught up: the file is emptied


async def hand_over(store: MemoryStore, *call_ids: str) -> None:
    collector = Collector()
    for call_id in call_ids:
        make_call(collector, call_id)
    for item in collector.items:
        await store.handle(item)


async def test_a_down_store_spools_then_gets_everything_in_order(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    store.down = True
    await store.start()
    assert not store.available
    await hand_over(store, "a", "b", "c")
    assert store.spool.pending == 15
    store.failed.clear()
    async with asyncio.timeout(HANG_S):
        await store.failed.wait()  # the writer tried again, and failed
    assert store.calls == {}
    lines = store.spool.path.read_bytes().splitlines()
    assert [json.loads(line)["k"] for line in lines[:5]] == [
        "opened",
        "turn",
        "turn",
        "event",
        "finished",
    ]

    store.down = False
    async with asyncio.timeout(HANG_S):
        await store.drained()
    assert store.available and store.outages == 1
    assert [k for call_id, k in store.applied if call_id == "b"] == [
        "opened",
        "turn",
        "turn",
        "event",
        "finished",
    ]
    assert set(store.calls) == {"a", "b", "c"} and len(store.turns) == 6
    await store.aclose()


async def test_handle_never_waits_for_a_hung_store(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path, RetryPolicy(first_delay_s=0.005, op_timeout_s=0.05))
    await store.start()
    store.hang = True
    await hand_over(store, "first")
    async with asyncio.timeout(HANG_S):
        await store.hung.wait()  # the writer is stuck in the store
    # Handing items over is an append, no waiting on the store: it returns while the store still
    # hangs (a hand-over that waited for the store would wait for as long as that lasts).
    async with asyncio.timeout(HANG_S):
        await hand_over(store, *(f"c{i}" for i in range(50)))
    store.hang = False
    async with asyncio.timeout(HANG_S):
        await store.drained()  # the stuck write timed out, and the retry wrote everything
    assert len(store.calls) == 51 and store.outages == 1
    await store.aclose()


async def test_a_refused_item_is_set_aside_and_the_rest_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore(tmp_path)
    store.refuse = {"bad"}
    recorder = Recorder([store])
    await recorder.start()
    make_call(recorder, "good1")
    make_call(recorder, "bad")
    make_call(recorder, "good2")
    await recorder.aclose()
    assert set(store.calls) == {"good1", "good2"}
    assert store.rejected == 5  # opened, two turns, an event, finished
    rejected = [json.loads(line) for line in store.spool.rejected_path.read_text().splitlines()]
    assert {r["item"]["call"]["call_id"] for r in rejected} == {"bad"}
    assert all(r["reason"] == "ValueError: bad call bad" for r in rejected)
    assert "call bad: a record item was refused" in caplog.text


async def test_the_spool_survives_a_restart(tmp_path: Path) -> None:
    first = MemoryStore(tmp_path)
    first.down = True
    recorder = Recorder([first])
    await recorder.start()
    make_call(recorder, "a")
    make_call(recorder, "b")
    await recorder.aclose()  # the store is still down: the items stay in the spool
    assert first.spool.path.stat().st_size > 0

    second = MemoryStore(tmp_path)
    recorder = Recorder([second])
    await recorder.start()
    async with asyncio.timeout(HANG_S):
        await second.drained()
    assert set(second.calls) == {"a", "b"} and len(second.turns) == 4
    assert second.spool.path.stat().st_size == 0
    await recorder.aclose()


async def test_close_writes_what_the_store_takes(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path, RetryPolicy(first_delay_s=60, max_delay_s=60))
    store.down = True
    recorder = Recorder([store])
    await recorder.start()
    make_call(recorder, "a")
    async with asyncio.timeout(HANG_S):
        await store.failed.wait()  # the writer now waits 30-60 s before trying again
    store.down = False
    await recorder.aclose()  # cuts that wait short
    assert "a" in store.calls and store.spool.pending == 0


def test_spool_keeps_its_offset_and_drops_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    spool = Spool(path)
    assert spool.open() == 0
    for i in range(3):
        spool.append(json.dumps({"n": i}).encode() + b"\n")
    ((_, offset),) = spool.read(1, 1 << 20)
    spool.ack(offset, 1)
    spool.close()
    with path.open("ab") as file:
        file.write(b'{"n": 3, "tr')  # the robot died in the middle of a write

    spool = Spool(path)
    assert spool.open() == 2
    assert [json.loads(line)["n"] for line, _ in spool.read(10, 1 << 20)] == [1, 2]
    assert path.read_bytes().endswith(b"\n")
    spool.close()


def test_spool_reads_batches_and_long_lines_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    spool.open()
    long = json.dumps({"text": "x" * 5000}).encode() + b"\n"
    short = b'{"n":1}\n'
    for line in (short, long, short, short):
        spool.append(line)
    batch = spool.read(10, 100)  # about 100 bytes: the first line, then the long one whole
    assert [line for line, _ in batch] == [short, long]
    spool.ack(batch[-1][1], 2)
    assert [line for line, _ in spool.read(1, 1 << 20)] == [short]
    rest = spool.read(10, 1 << 20)
    spool.ack(rest[-1][1], len(rest))
    assert spool.pending == 0 and spool.path.stat().st_size == 0
    spool.close()
