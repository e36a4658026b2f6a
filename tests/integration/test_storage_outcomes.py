"""Outcome, summary and tool calls in every store (issue 12): the record's new fields, a finished
call's amended summary through the spool, and the analysts' views of them. Real PostgreSQL,
MongoDB-protocol and Redis servers (tests/storage_servers.py), synthetic calls as in test_storage."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from tests.integration.stored import from_stores, mongo_documents
from tests.integration.test_storage import FAST, open_recorder
from tests.storage_servers import StoreEnv, free_port
from voiceplat.storage.records import (
    CallAmended,
    CallRecord,
    CallUpdated,
    ToolCallRecord,
    TurnRecord,
)

TOOL_DIALOG: list[dict[str, Any]] = [
    {"role": "robot", "text": "Здравствуйте!"},
    {"role": "user", "text": "Запишите меня к терапевту на завтра"},
    {
        "role": "robot",
        "text": "Записала вас к терапевту на завтра.",
        "tool_calls": [
            {
                "name": "find_slot",
                "arguments": {"doctor": "терапевт"},
                "ok": False,
                "error": "timeout after 5 s",
                "ms": 5000.0,
            },
            {
                "name": "book_visit",
                "arguments": {"doctor": "терапевт", "date": "2025-03-05", "$x.y": 1},
                "ok": True,
                "result": {"visit_id": 17, "a.b": {"$c": [1, None]}},
                "ms": 230.0,
            },
        ],
    },
]


SUMMARY = "Клиентка записалась к терапевту на завтра."


async def test_outcome_summary_and_tool_calls_reach_every_store(
    stores: StoreEnv, tmp_path: Path
) -> None:
    """The outcome set at finish, the summary amended a moment after the call (as the after-call
    worker does) and a robot turn's tool calls, in the JSON file, PostgreSQL, MongoDB and Redis."""
    recorder, sinks = open_recorder(stores.env, tmp_path)
    await recorder.start()
    log = recorder.open_call(CallRecord(call_id="t-0", robot="clinic", mode="pipeline"))
    for idx, turn in enumerate(TOOL_DIALOG):
        log.add_turn(TurnRecord(call_id="t-0", idx=idx, **turn))
    log.finish("completed", "robot_goodbye", outcome="booked")
    for sink in sinks:  # the finished record is written before it is amended
        await asyncio.wait_for(sink.drained(), 60)
    recorder.amend(log.record, summary=SUMMARY)
    await recorder.aclose()

    stored_tools = [
        ToolCallRecord(**tool).model_dump(mode="json") for tool in TOOL_DIALOG[2]["tool_calls"]
    ]
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "logs").glob("*.json")]
    assert (record["call"]["outcome"], record["call"]["summary"]) == ("booked", SUMMARY)
    assert record["turns"][2]["tool_calls"] == stored_tools
    assert record["turns"][0]["tool_calls"] == []

    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        call = await conn.fetchrow("SELECT outcome, summary FROM calls WHERE call_id = 't-0'")
        rows = await conn.fetch("SELECT tool_calls FROM turns WHERE call_id = 't-0' ORDER BY idx")
    finally:
        await conn.close()
    assert (call["outcome"], call["summary"]) == ("booked", SUMMARY)
    assert [json.loads(row["tool_calls"]) for row in rows] == [[], [], stored_tools]

    (document,) = await mongo_documents(stores.env["MONGO_URI"])
    assert (document["outcome"], document["summary"]) == ("booked", SUMMARY)
    mongo_tools = document["segments"][2]["tool_calls"]
    assert [tool["name"] for tool in mongo_tools] == ["find_slot", "book_visit"]
    assert mongo_tools[1]["result"] == {"visit_id": 17, "a．b": {"＄c": [1, None]}}
    assert mongo_tools[1]["arguments"]["＄x．y"] == 1

    client = aioredis.from_url(stores.env["REDIS_URL"], decode_responses=True)
    try:
        live = await client.hgetall("call:t-0")
        history = [json.loads(t) for t in await client.lrange("call:t-0:history", 0, -1)]
        ttl = await client.ttl("call:t-0")
    finally:
        await client.aclose()
    assert (live["outcome"], live["summary"], live["state"]) == ("booked", SUMMARY, "completed")
    assert history[2]["tool_calls"] == stored_tools
    assert 0 < ttl <= 30 * 60  # the amended call still expires


async def test_an_amendment_waits_in_the_spool_until_the_store_is_back(
    stores: StoreEnv, tmp_path: Path
) -> None:
    """PostgreSQL unreachable when the call ends and its summary comes: both stay in the spool
    through a robot restart, and arrive in order (the summary is not lost, nor undone)."""
    down = {"POSTGRES_DSN": f"postgresql://voiceplat@127.0.0.1:{free_port()}/nowhere"}
    recorder, (sink,) = open_recorder(down, tmp_path)
    await recorder.start()
    log = recorder.open_call(CallRecord(call_id="s-0", robot="clinic", mode="pipeline"))
    log.add_turn(TurnRecord(call_id="s-0", idx=0, role="user", text="Сколько стоит приём?"))
    log.finish("completed", "caller_hangup", outcome="answered")
    log.amend(summary="Спросила цену приёма.")
    log.amend(outcome="no_answer_given")
    await recorder.aclose()
    kept = [json.loads(line)["k"] for line in sink.spool.path.read_text().splitlines()]
    assert kept == ["opened", "turn", "finished", "amended", "amended"]

    recorder, (sink,) = open_recorder({"POSTGRES_DSN": stores.env["POSTGRES_DSN"]}, tmp_path)
    await recorder.start()
    await asyncio.wait_for(sink.drained(), 60)
    await recorder.aclose()
    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        call = await conn.fetchrow("SELECT * FROM calls WHERE call_id = 's-0'")
    finally:
        await conn.close()
    assert (call["summary"], call["outcome"]) == ("Спросила цену приёма.", "no_answer_given")
    assert call["status"] == "completed" and call["turns"] == 1


async def test_an_amendment_of_a_call_the_store_never_got_writes_the_whole_call(
    stores: StoreEnv, tmp_path: Path
) -> None:
    """The finished item was dropped (a full queue): the amendment carries the whole record, so
    PostgreSQL and MongoDB get the call; a later write of the older record keeps the summary."""
    from voiceplat.storage.mongo import MongoSink
    from voiceplat.storage.postgres import PostgresSink

    call = CallRecord(
        call_id="m-0",
        robot="clinic",
        mode="pipeline",
        status="completed",
        end_reason="caller_hangup",
        outcome="answered",
        turns=2,
    )
    amended = call.model_copy(update={"summary": SUMMARY})
    for sink in (
        PostgresSink(stores.env["POSTGRES_DSN"], tmp_path, FAST),
        MongoSink(stores.env["MONGO_URI"], tmp_path, FAST),
    ):
        await sink.start()
        await sink.handle(CallAmended(amended, {"summary": SUMMARY}))
        await asyncio.wait_for(sink.drained(), 60)
        await sink.handle(CallUpdated(call))  # a late replay of an older write, on its own
        await asyncio.wait_for(sink.drained(), 60)
        await sink.aclose()
        assert sink.rejected == 0, sink.name
    stored = await from_stores(stores.env)
    for store in ("postgres", "mongo"):
        assert stored[store]["m-0"].status == "completed", store
    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        row = await conn.fetchrow("SELECT outcome, summary FROM calls WHERE call_id = 'm-0'")
    finally:
        await conn.close()
    assert (row["outcome"], row["summary"]) == ("answered", SUMMARY)
    (document,) = await mongo_documents(stores.env["MONGO_URI"])
    assert (document["outcome"], document["summary"]) == ("answered", SUMMARY)


async def test_outcome_and_tool_views(stores: StoreEnv, tmp_path: Path) -> None:
    recorder, _ = open_recorder(stores.env, tmp_path)
    await recorder.start()
    start = datetime(2025, 3, 4, 10, tzinfo=UTC)
    outcomes = ["booked", "booked", "answered", "no_answer_given"]
    for i, outcome in enumerate(outcomes):
        log = recorder.open_call(
            CallRecord(call_id=f"v-{i}", robot="clinic", mode="pipeline", started_at=start)
        )
        for idx, turn in enumerate(TOOL_DIALOG if outcome == "booked" else TOOL_DIALOG[:2]):
            log.add_turn(TurnRecord(call_id=f"v-{i}", idx=idx, started_at=start, **turn))
        log.finish("completed", "caller_hangup", ended_at=start + timedelta(seconds=60))
        log.amend(outcome=outcome)
        if i:
            log.amend(summary="Итог.")
    other = recorder.open_call(CallRecord(call_id="w", robot="other", mode="pipeline"))
    other.finish("failed", "error", outcome="failed")
    await recorder.aclose()

    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        per_day = await conn.fetch(
            "SELECT * FROM outcomes_per_robot_day WHERE robot = 'clinic' ORDER BY outcome"
        )
        tools = await conn.fetch("SELECT * FROM tool_calls_per_robot ORDER BY tool")
        failed = await conn.fetchrow("SELECT * FROM outcomes_per_robot_day WHERE robot = 'other'")
    finally:
        await conn.close()
    assert [(r["outcome"], r["calls"], float(r["share"])) for r in per_day] == [
        ("answered", 1, 0.25),
        ("booked", 2, 0.5),
        ("no_answer_given", 1, 0.25),
    ]
    assert all(r["day"] == start.date() for r in per_day)
    assert [r["summarised"] for r in per_day] == [1, 1, 1]  # call v-0 has no summary
    assert (failed["outcome"], failed["calls"], float(failed["share"])) == ("failed", 1, 1.0)
    assert [(r["robot"], r["tool"], r["calls"], r["failed"], r["in_calls"]) for r in tools] == [
        ("clinic", "book_visit", 2, 0, 2),
        ("clinic", "find_slot", 2, 2, 2),
    ]
    assert float(tools[0]["p50_ms"]) == 230.0 and float(tools[1]["p95_ms"]) == 5000.0
    assert float(tools[1]["failed_share"]) == 1.0
