"""The store sinks against real PostgreSQL, MongoDB-protocol and Redis servers (started by the
suite, tests/storage_servers.py), driven through the recorder with synthetic calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.stored import from_json_files, from_stores, mongo_documents
from tests.storage_servers import StoreEnv
from voiceplat.cli import main
from voiceplat.storage.migrations import migrate_postgres, read_migrations
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import (
    CallRecord,
    CallStatus,
    TurnRecord,
    utcnow,
)
from voiceplat.storage.scenarios import CACHE_TTL_S, Scenario, ScenarioStore
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.storage.spooled_sink import RetryPolicy, SpooledSink

FAST = RetryPolicy(first_delay_s=0.05, max_delay_s=0.5, op_timeout_s=5, close_timeout_s=30)


def open_recorder(env: dict[str, str], folder: Path) -> tuple[Recorder, list[SpooledSink]]:
    sinks = sinks_from_env(env, folder / "logs", folder / "spool", retry=FAST)
    return Recorder(sinks), [s for s in sinks if isinstance(s, SpooledSink)]


def record_call(
    recorder: Recorder,
    call_id: str,
    *,
    robot: str = "robot",
    turns: list[dict] | None = None,
    metadata: dict | None = None,
    status: CallStatus = "completed",
    start: datetime | None = None,
) -> None:
    start = start or utcnow()
    log = recorder.open_call(
        CallRecord(
            call_id=call_id,
            robot=robot,
            mode="pipeline",
            caller="+79990001122",
            started_at=start,
            answered_at=start,
            metadata=metadata or {},
        )
    )
    for idx, turn in enumerate(turns or []):
        log.add_turn(TurnRecord(call_id=call_id, idx=idx, started_at=start, **turn))
    log.event("barge_in", turn=0, heard_ms=700)
    log.finish(status, "caller_hangup", ended_at=start + timedelta(seconds=30))


DIALOG = [
    {"role": "robot", "text": "Здравствуйте!", "tts_ttfb_ms": 80.0},
    {"role": "user", "text": "Хочу записаться", "asr_ms": 120.0},
    {
        "role": "robot",
        "text": "Конечно. На какой день?",
        "heard_text": "Конечно.",
        "interrupted": True,
        "v2v_ms": 700.0,
        "llm_ttft_ms": 200.0,
        "tts_ttfb_ms": 90.0,
    },
    {"role": "user", "text": "На завтра", "asr_ms": 100.0},
    {"role": "robot", "text": "Записала.", "v2v_ms": 900.0, "llm_ttft_ms": 300.0},
]


async def test_migrations_run_twice_and_concurrently(stores: StoreEnv) -> None:
    dsn = stores.env["POSTGRES_DSN"]
    connections = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        first = await asyncio.gather(*(migrate_postgres(conn) for conn in connections))
        again = await asyncio.gather(*(migrate_postgres(conn) for conn in connections))
        conn = connections[0]
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        tables = {
            row["table_name"]
            for row in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    finally:
        for conn in connections:
            await conn.close()
    names = [f"{m.version:03d}_{m.name}" for m in read_migrations()]
    assert sorted(first, key=len) == [[], [], [], names]  # exactly one robot applied them
    assert again == [[], [], [], []]
    assert [row["version"] for row in versions] == [m.version for m in read_migrations()]
    assert {"calls", "turns", "scenarios", "users", "calls_per_robot_day"} <= tables
    assert {"latency_per_robot", "answer_rate_per_robot_day"} <= tables
    assert "interrupted_share_per_robot" in tables


def test_migrate_command_prepares_both_stores(
    stores: StoreEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    robot = tmp_path / "robot"
    robot.mkdir()
    (robot / ".env").write_text(stores.env_file())
    assert main(["migrate", str(robot)]) == 0
    out = capsys.readouterr().out
    assert "postgres: applied 001_init" in out and "call_id_unique" in out
    assert main(["migrate", str(robot)]) == 0
    assert "postgres: up to date" in capsys.readouterr().out

    async def indexes() -> Mapping[str, Any]:
        from voiceplat.storage.mongo import open_database

        client, db = open_database(stores.env["MONGO_URI"])
        try:
            return await db.transcriptions.index_information()
        finally:
            await client.close()

    info = asyncio.run(indexes())
    assert info["call_id_unique"]["unique"] is True
    assert "robot_started_at" in info


async def test_calls_reach_every_store_alike(stores: StoreEnv, tmp_path: Path) -> None:
    recorder, sinks = open_recorder(stores.env, tmp_path)
    await recorder.start()
    assert [s.name for s in sinks] == ["postgres", "mongo", "redis"]
    for i in range(5):
        record_call(recorder, f"call-{i}", turns=DIALOG)
    await recorder.aclose()

    expected = from_json_files(
        [json.loads(p.read_text()) for p in (tmp_path / "logs").glob("*.json")]
    )
    assert len(expected) == 5
    for store, stored in (await from_stores(stores.env)).items():
        assert stored == expected, store
    for sink in sinks:
        assert sink.spool.path.stat().st_size == 0 and sink.rejected == 0

    (document,) = [
        d for d in await mongo_documents(stores.env["MONGO_URI"]) if d["call_id"] == "call-0"
    ]
    assert [e["event"] for e in document["pipeline_log"]] == ["barge_in"]
    assert document["segments"][2]["v2v_ms"] == 700.0
    assert document["started_at"].tzinfo is not None


async def test_writing_everything_twice_changes_nothing(stores: StoreEnv, tmp_path: Path) -> None:
    start = utcnow()
    recorder, _ = open_recorder(stores.env, tmp_path)
    await recorder.start()
    for i in range(3):
        record_call(recorder, f"call-{i}", turns=DIALOG, start=start)
    await recorder.aclose()
    before = await from_stores(stores.env)

    # The same items once more, as a replay after a crash would write them.
    recorder, _ = open_recorder(stores.env, tmp_path / "again")
    await recorder.start()
    for i in range(3):
        record_call(recorder, f"call-{i}", turns=DIALOG, start=start)
    await recorder.aclose()
    assert await from_stores(stores.env) == before


async def test_views_answer_the_analysts_questions(stores: StoreEnv, tmp_path: Path) -> None:
    recorder, _ = open_recorder(stores.env, tmp_path)
    await recorder.start()
    for i in range(4):
        record_call(recorder, f"a-{i}", robot="alpha", turns=DIALOG)
    record_call(recorder, "b-0", robot="beta", turns=DIALOG[:1], status="failed")
    await recorder.aclose()

    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        per_day = await conn.fetch("SELECT * FROM calls_per_robot_day ORDER BY robot")
        rate = await conn.fetch("SELECT * FROM answer_rate_per_robot_day ORDER BY robot")
        latency = await conn.fetchrow("SELECT * FROM latency_per_robot WHERE robot = 'alpha'")
        cut = await conn.fetchrow("SELECT * FROM interrupted_share_per_robot WHERE robot = 'alpha'")
    finally:
        await conn.close()
    assert [(r["robot"], r["calls"], r["completed"], r["failed"]) for r in per_day] == [
        ("alpha", 4, 4, 0),
        ("beta", 1, 0, 1),
    ]
    assert [(r["robot"], float(r["answer_rate"]), float(r["engaged_rate"])) for r in rate] == [
        ("alpha", 1.0, 1.0),
        ("beta", 1.0, 0.0),
    ]
    assert latency["answers"] == 8 and float(latency["v2v_avg_ms"]) == 800.0
    assert 700 < float(latency["v2v_p95_ms"]) <= 900
    assert float(latency["asr_avg_ms"]) == 110.0
    assert (cut["robot_turns"], cut["interrupted"]) == (12, 4)
    assert float(cut["interrupted_share"]) == pytest.approx(0.333, abs=0.001)


async def test_turn_taking_fields_reach_every_store(stores: StoreEnv, tmp_path: Path) -> None:
    """Ignored utterances, dead air inside an answer and resumed answers (issue 11), in the JSON
    file, the PostgreSQL row and the MongoDB segment alike, and in the analysts' view."""
    recorder, _ = open_recorder(stores.env, tmp_path)
    await recorder.start()
    dialog: list[dict[str, Any]] = [
        {"role": "robot", "text": "Здравствуйте!", "starved_ms": 0.0, "starved_max_ms": 0.0},
        {"role": "user", "text": "Продолжение следует...", "ignored": "hallucination"},
        {"role": "user", "text": "Хочу записаться", "asr_ms": 110.0},
        {
            "role": "robot",
            "text": "Конечно. На какой день вам удобно?",
            "starved_ms": 420.0,
            "starved_max_ms": 310.0,
            "resumed": 1,
        },
    ]
    record_call(recorder, "tt-0", robot="gamma", turns=dialog)
    record_call(recorder, "tt-1", robot="gamma", turns=dialog[:2])  # only noise from the caller
    await recorder.aclose()

    fields = ("idx", "ignored", "starved_ms", "starved_max_ms", "resumed")
    defaults = {"ignored": None, "starved_ms": None, "starved_max_ms": None, "resumed": 0}
    expected = [
        tuple({**defaults, "idx": i, **turn}[f] for f in fields) for i, turn in enumerate(dialog)
    ]
    (record,) = [
        json.loads(p.read_text()) for p in (tmp_path / "logs").glob("*.json") if "tt-0" in p.name
    ]
    assert [tuple(t[f] for f in fields) for t in record["turns"]] == expected
    (document,) = [
        d for d in await mongo_documents(stores.env["MONGO_URI"]) if d["call_id"] == "tt-0"
    ]
    assert [tuple(s[f] for f in fields) for s in document["segments"]] == expected
    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        rows = await conn.fetch("SELECT * FROM turns WHERE call_id = 'tt-0' ORDER BY idx")
        view = await conn.fetchrow("SELECT * FROM turn_taking_per_robot WHERE robot = 'gamma'")
        rate = await conn.fetchrow("SELECT * FROM answer_rate_per_robot_day WHERE robot = 'gamma'")
    finally:
        await conn.close()
    assert [tuple(row[f] for f in fields) for row in rows] == expected
    assert (view["user_turns"], view["ignored"], view["hallucinations"]) == (3, 2, 2)
    assert (view["robot_turns"], view["resumed"], view["starved_over_300ms"]) == (3, 1, 1)
    assert float(view["starved_max_ms"]) == 310.0
    # the call whose caller only made noise is answered but not engaged
    assert (rate["calls"], rate["engaged"]) == (2, 1)


async def test_bad_data_is_stored_or_set_aside_with_a_reason(
    stores: StoreEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deep: dict = {}
    node = deep
    for _ in range(300):
        node["junk"] = {}
        node = node["junk"]
    metadata = {
        "nested": deep,
        "nan": float("nan"),
        "huge": 10**40,
        "$where": "1",
        "a.b": {"c\x00d": ["x", None, {"": []}]},
        "odd": "\ud800 \u202e\u200d👩‍👩‍👧 \U0010ffff",
    }
    transcript = ("Длинная расшифровка звонка. " * 4000)[:100_000] + "\x00конец"
    recorder, sinks = open_recorder(stores.env, tmp_path)
    await recorder.start()
    record_call(
        recorder,
        "odd",
        turns=[{"role": "user", "text": transcript}, {"role": "robot", "text": "ok\x00"}],
        metadata=metadata,
    )
    log = recorder.open_call(CallRecord(call_id="far", robot="robot", mode="pipeline"))
    log.add_turn(TurnRecord(call_id="far", idx=2**31, role="user", text="idx beyond int4"))
    log.finish("completed", "caller_hangup")
    record_call(recorder, "after", turns=DIALOG)
    await recorder.aclose()

    stored = await from_stores(stores.env)
    for store in ("postgres", "mongo", "redis"):
        odd = stored[store]["odd"]
        assert odd.turns[0][2] == transcript.replace("\x00", ""), store
        assert odd.turns[1][2] == "ok"
        assert stored[store]["after"].turn_count == 5  # nothing behind a bad item is held up
    files = from_json_files([json.loads(p.read_text()) for p in (tmp_path / "logs").glob("*.json")])
    assert files["odd"] == stored["postgres"]["odd"]  # the JSON file too, cleaned the same way
    assert "NUL character(s) removed" in caplog.text
    assert "lone surrogate" in caplog.text and "nested deeper than" in caplog.text

    # A turn index PostgreSQL's integer cannot hold, and Redis refuses to pad a list for: set
    # aside, with the reason, in <sink>.rejected.jsonl; MongoDB takes it.
    by_name = {sink.name: sink for sink in sinks}
    assert by_name["postgres"].rejected == 2 and by_name["redis"].rejected == 2
    assert by_name["mongo"].rejected == 0
    assert stored["mongo"]["far"].turns[0][0] == 2**31
    reasons = [
        json.loads(line)["reason"]
        for line in by_name["postgres"].spool.rejected_path.read_text().splitlines()
    ]
    assert all("int32 range" in reason for reason in reasons)
    assert "far: a record item was refused" in caplog.text

    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        meta = json.loads(await conn.fetchval("SELECT metadata FROM calls WHERE call_id = 'odd'"))
    finally:
        await conn.close()
    assert meta["nan"] is None and meta["huge"] == str(10**40) and meta["$where"] == "1"
    assert meta["a.b"] == {"cd": ["x", None, {"": []}]}
    assert meta["odd"].startswith("\ufffd \u202e")


async def test_scenarios_are_read_through_the_redis_cache(stores: StoreEnv, tmp_path: Path) -> None:
    recorder, _ = open_recorder(stores.env, tmp_path)
    await recorder.start()  # connecting applies the migrations
    await recorder.aclose()
    store = await ScenarioStore.open(stores.env)
    try:
        assert await store.get_scenario("booking") is None
        await store.put(Scenario(name="booking", robot="robot", body={"steps": ["day", "time"]}))
        first = await store.get_scenario("booking")
        assert first is not None and first.body == {"steps": ["day", "time"]}
        assert store.redis is not None, "the suite's stores include a Redis cache"
        ttl = await store.redis.ttl("scenario:booking")
        assert 0 < ttl <= CACHE_TTL_S

        # Changed behind the cache's back: readers see the cached copy until it expires...
        await store.pool.execute("UPDATE scenarios SET body = '{\"steps\": []}'")
        cached = await store.get_scenario("booking")
        assert cached is not None and cached.body == {"steps": ["day", "time"]}
        # ...while a change through the store is seen at once.
        await store.put(Scenario(name="booking", body={"steps": ["day"]}))
        changed = await store.get_scenario("booking")
        assert changed is not None
        assert changed.body == {"steps": ["day"]} and changed.version == 2
    finally:
        await store.aclose()
