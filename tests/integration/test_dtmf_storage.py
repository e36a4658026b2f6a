"""The keys a caller pressed and a call's transfer target reach every store (real PostgreSQL,
MongoDB-protocol and Redis servers, tests/storage_servers.py) and the JSON file alike."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from tests.integration.stored import mongo_documents
from tests.integration.test_storage import open_recorder
from tests.storage_servers import StoreEnv
from voiceplat.storage.postgres import call_row
from voiceplat.storage.records import CallRecord, utcnow


def record_keyed_call(recorder, call_id: str, keys: str, target: str | None) -> None:
    start = utcnow()
    log = recorder.open_call(CallRecord(call_id=call_id, robot="robot", mode="pipeline"))
    pressed = ""
    for key in keys:  # as a session records them: the record grows with each key
        pressed += key
        log.update(dtmf=pressed)
        log.event("dtmf", digit=key)
    if target is not None:
        log.update(transfer_target=target)
    reason = "transferred" if target else "caller_hangup"
    log.finish("completed", reason, ended_at=start + timedelta(seconds=20))


async def test_keys_and_transfer_target_reach_every_store(stores: StoreEnv, tmp_path: Path) -> None:
    recorder, _ = open_recorder(stores.env, tmp_path)
    await recorder.start()
    record_keyed_call(recorder, "keyed", "12#0", "sip:operator@pbx")
    record_keyed_call(recorder, "plain", "", None)
    await recorder.aclose()

    files = {
        r["call"]["call_id"]: r["call"]
        for r in (json.loads(p.read_text()) for p in (tmp_path / "logs").glob("*.json"))
    }
    assert (files["keyed"]["dtmf"], files["keyed"]["transfer_target"]) == (
        "12#0",
        "sip:operator@pbx",
    )
    assert (files["plain"]["dtmf"], files["plain"]["transfer_target"]) == ("", None)

    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        rows = {
            r["call_id"]: (r["dtmf"], r["transfer_target"], r["end_reason"])
            for r in await conn.fetch("SELECT * FROM calls")
        }
        (day,) = await conn.fetch("SELECT * FROM transfers_per_robot_day")
    finally:
        await conn.close()
    assert rows == {
        "keyed": ("12#0", "sip:operator@pbx", "transferred"),
        "plain": ("", None, "caller_hangup"),
    }
    assert (day["calls"], day["transferred"], day["used_keys"]) == (2, 1, 1)

    documents = {d["call_id"]: d for d in await mongo_documents(stores.env["MONGO_URI"])}
    assert documents["keyed"]["dtmf"] == "12#0"
    assert documents["keyed"]["transfer_target"] == "sip:operator@pbx"
    assert documents["plain"]["transfer_target"] is None

    client = aioredis.from_url(stores.env["REDIS_URL"], decode_responses=True)
    try:
        keyed = await client.hgetall("call:keyed")
    finally:
        await client.aclose()
    assert (keyed["dtmf"], keyed["transfer_target"]) == ("12#0", "sip:operator@pbx")


def test_a_spooled_call_from_before_these_fields_still_makes_a_row() -> None:
    old = CallRecord(call_id="old", robot="r", mode="pipeline").model_dump(mode="json")
    del old["dtmf"], old["transfer_target"]
    row = call_row(old)
    assert row[-2:] == ("", None)
