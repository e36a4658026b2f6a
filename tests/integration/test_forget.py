"""`voiceplat forget` and the records' retention against real PostgreSQL, MongoDB-protocol and
Redis servers (tests/storage_servers.py): calls recorded through the recorder's sinks, then one
caller's (or the old) calls deleted from each store, the JSON files and the recordings."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.integration.stored import mongo_documents
from tests.storage_servers import StoreEnv
from voiceplat.cli import main
from voiceplat.privacy.retention import sweep_records
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import CallRecord, TurnRecord, utcnow
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.storage.spooled_sink import RetryPolicy

FAST = RetryPolicy(first_delay_s=0.05, max_delay_s=0.5, op_timeout_s=5, close_timeout_s=30)
ALICE, BOB = "+79161234567", "+79990001122"
STORE_VARIABLES = ("POSTGRES_DSN", "MONGO_URI", "REDIS_URL")


def record(
    recorder: Recorder,
    call_id: str,
    caller: str,
    *,
    robot: str = "robot",
    age: timedelta = timedelta(0),
    finished: bool = True,
    recording: Path | None = None,
) -> None:
    start = utcnow() - age
    log = recorder.open_call(
        CallRecord(
            call_id=call_id,
            robot=robot,
            mode="pipeline",
            caller=caller,
            started_at=start,
            recording=str(recording) if recording else None,
        )
    )
    log.add_turn(TurnRecord(call_id=call_id, idx=0, role="robot", text="Здравствуйте!"))
    log.add_turn(TurnRecord(call_id=call_id, idx=1, role="user", text="Мой номер " + caller))
    if finished:
        log.finish("completed", "caller_hangup", ended_at=start + timedelta(seconds=20))


async def stored_ids(env: dict[str, str]) -> dict[str, list[str]]:
    """The call ids each store holds (PostgreSQL: with the calls their turns belong to)."""
    conn = await asyncpg.connect(env["POSTGRES_DSN"])
    try:
        calls = [r["call_id"] for r in await conn.fetch("SELECT call_id FROM calls ORDER BY 1")]
        turns = [r["call_id"] for r in await conn.fetch("SELECT DISTINCT call_id FROM turns")]
    finally:
        await conn.close()
    import redis.asyncio as aioredis

    client = aioredis.from_url(env["REDIS_URL"], decode_responses=True)
    try:
        keys = sorted([key async for key in client.scan_iter(match="call:*")])
    finally:
        await client.aclose()
    return {
        "postgres": calls,
        "postgres turns": sorted(turns),
        "mongo": sorted(doc["call_id"] for doc in await mongo_documents(env["MONGO_URI"])),
        "redis": keys,
    }


@pytest.fixture
def robot(tmp_path: Path, stores: StoreEnv, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in STORE_VARIABLES:  # the robot's .env names the stores, nothing else does
        monkeypatch.delenv(variable, raising=False)
    folder = tmp_path / "robot"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"recording": {"enabled": True}}))
    (folder / ".env").write_text(stores.env_file())
    return folder


async def test_forget_deletes_one_callers_calls_everywhere(
    robot: Path, stores: StoreEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    day = robot / "recordings" / utcnow().strftime("%Y-%m-%d")
    day.mkdir(parents=True)
    for name in ("a1.wav", "b1.wav"):
        (day / name).write_bytes(b"RIFF")
    recorder = Recorder(sinks_from_env(stores.env, robot / "logs", robot / "spool", retry=FAST))
    await recorder.start()
    record(recorder, "a1", ALICE, recording=day / "a1.wav")
    record(recorder, "a2", ALICE, finished=False)  # still in progress: live in Redis
    record(recorder, "b1", BOB, recording=day / "b1.wav")
    await recorder.aclose()
    before = await stored_ids(stores.env)
    assert before["postgres"] == ["a1", "a2", "b1"] and before["mongo"] == ["a1", "a2", "b1"]
    assert "call:a2:history" in before["redis"]

    code = await asyncio.to_thread(main, ["forget", ALICE, str(robot)])
    out = capsys.readouterr().out
    assert code == 0, out
    after = await stored_ids(stores.env)
    assert after == {
        "postgres": ["b1"],
        "postgres turns": ["b1"],
        "mongo": ["b1"],
        "redis": ["call:b1", "call:b1:history"],
    }
    files = [json.loads(p.read_text())["call"]["call_id"] for p in (robot / "logs").iterdir()]
    assert files == ["b1"]
    assert sorted(p.name for p in day.iterdir()) == ["b1.wav"]
    lines = out.splitlines()
    assert any(
        line.startswith("postgres ") and "2 call(s) deleted (4 turn(s)" in line for line in lines
    )
    assert any(line.startswith("mongo ") and ": 2 call(s) deleted" in line for line in lines)
    assert any(line.startswith("redis ") and ": 2 call(s) deleted" in line for line in lines)
    assert f"forgot 2 call(s) of {ALICE}" in lines


async def test_retention_deletes_the_robots_old_records_in_every_store(
    robot: Path, stores: StoreEnv
) -> None:
    recorder = Recorder(sinks_from_env(stores.env, robot / "logs", robot / "spool", retry=FAST))
    await recorder.start()
    old = timedelta(days=31)
    record(recorder, "old", ALICE, age=old, finished=False)  # Redis keeps only unfinished ones
    record(recorder, "old_done", BOB, age=old)
    record(recorder, "recent", ALICE, age=timedelta(days=29))
    record(recorder, "other_robot_old", ALICE, robot="other", age=old, finished=False)
    await recorder.aclose()

    places = await sweep_records("robot", robot / "logs", stores.env, 30, utcnow())
    assert [place.error for place in places] == [None] * 4
    after = await stored_ids(stores.env)
    assert after["postgres"] == ["other_robot_old", "recent"]
    assert after["postgres turns"] == ["other_robot_old", "recent"]
    assert after["mongo"] == ["other_robot_old", "recent"]
    assert "call:old" not in after["redis"] and "call:other_robot_old" in after["redis"]
    files = [json.loads(p.read_text())["call"]["call_id"] for p in (robot / "logs").iterdir()]
    assert sorted(files) == ["other_robot_old", "recent"]
