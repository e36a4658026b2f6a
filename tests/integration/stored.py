"""What the stores hold, read back into one comparable shape per call.

`Stored` keeps what must agree across the JSON file, PostgreSQL, MongoDB and Redis: the call's
status, end reason and turn count, and its turns in stored order (a duplicated or missing turn
shows as a difference).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Turn = tuple[int, str, str, str | None, bool]
"""(idx, role, text, heard_text, interrupted)"""


@dataclass(frozen=True)
class Stored:
    caller: str | None
    status: str
    end_reason: str | None
    turn_count: int
    turns: tuple[Turn, ...]


def _turn(turn: dict[str, Any]) -> Turn:
    return (turn["idx"], turn["role"], turn["text"], turn["heard_text"], turn["interrupted"])


def from_json_files(records: list[dict[str, Any]]) -> dict[str, Stored]:
    return {
        r["call"]["call_id"]: Stored(
            r["call"]["caller"],
            r["call"]["status"],
            r["call"]["end_reason"],
            r["call"]["turns"],
            tuple(_turn(t) for t in r["turns"]),
        )
        for r in records
    }


async def from_postgres(dsn: str) -> dict[str, Stored]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        calls = await conn.fetch("SELECT * FROM calls ORDER BY call_id")
        turns = await conn.fetch("SELECT * FROM turns ORDER BY call_id, idx")
    finally:
        await conn.close()
    by_call: dict[str, list[Turn]] = {}
    for row in turns:
        by_call.setdefault(row["call_id"], []).append(_turn(dict(row)))
    return {
        c["call_id"]: Stored(
            c["caller"],
            c["status"],
            c["end_reason"],
            c["turns"],
            tuple(by_call.get(c["call_id"], [])),
        )
        for c in calls
    }


async def mongo_documents(uri: str) -> list[dict[str, Any]]:
    from voiceplat.storage.mongo import COLLECTION, open_database

    client, db = open_database(uri)
    try:
        return await db[COLLECTION].find({}).to_list(None)
    finally:
        await client.close()


async def from_mongo(uri: str) -> dict[str, Stored]:
    documents = await mongo_documents(uri)
    stored = {
        d["call_id"]: Stored(
            d["caller"],
            d["status"],
            d["end_reason"],
            d["turns"],
            tuple(_turn(s) for s in d["segments"]),
        )
        for d in documents
    }
    assert len(stored) == len(documents), "two documents for one call"
    return stored


def _decoded_hash(fields: dict[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash read with decode_responses=True, typed as the str it is (redis's types allow bytes)."""
    decoded: dict[str, str] = {}
    for name, value in fields.items():
        assert isinstance(name, str) and isinstance(value, str), "client does not decode responses"
        decoded[name] = value
    return decoded


async def from_redis(url: str) -> dict[str, Stored]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, decode_responses=True)
    try:
        stored = {}
        async for key in client.scan_iter(match="call:*"):
            if key.endswith(":history"):
                continue
            call = _decoded_hash(await client.hgetall(key))
            history = [json.loads(t) for t in await client.lrange(f"{key}:history", 0, -1)]
            stored[key.removeprefix("call:")] = Stored(
                call["caller"] or None,
                call["state"],
                call["end_reason"] or None,
                int(call["turns"]),
                tuple(_turn(t) for t in history),
            )
        return stored
    finally:
        await client.aclose()


async def from_stores(env: dict[str, str]) -> dict[str, dict[str, Stored]]:
    return {
        "postgres": await from_postgres(env["POSTGRES_DSN"]),
        "mongo": await from_mongo(env["MONGO_URI"]),
        "redis": await from_redis(env["REDIS_URL"]),
    }
