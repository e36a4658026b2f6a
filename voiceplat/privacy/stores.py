"""Deleting call records where they are kept: JSON record files, PostgreSQL, MongoDB, Redis.

One selection for all of them (`Selection`): one caller's calls (`voiceplat forget`), or a robot's
calls started before a time (retention). Each place answers with what it deleted (`Deleted`): the
call ids and the recordings its records name, so the recordings can go too. A store that cannot
be reached is an answer too (`error`), never an exception: the other places are still cleaned,
and the command says which place still holds the calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
_RECORD_FILE = re.compile(r"^(\d{8}_\d{6})_.+\.json$")


@dataclass(frozen=True)
class Selection:
    """Which calls: every condition given must hold (at least one is)."""

    caller: str | None = None
    robot: str | None = None
    started_before: datetime | None = None

    def __post_init__(self) -> None:
        if self.caller is None and self.started_before is None:
            raise ValueError("a selection needs a caller or a time: it would select every call")

    def matches(self, call: dict[str, Any]) -> bool:
        if self.caller is not None and call.get("caller") != self.caller:
            return False
        if self.robot is not None and call.get("robot") != self.robot:
            return False
        if self.started_before is not None:
            started = _time(call.get("started_at") or call.get("started"))
            if started is None or started >= self.started_before:
                return False
        return True


@dataclass
class Deleted:
    place: str
    calls: list[str] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)
    """Recording paths the deleted records named (the files are deleted separately)."""
    details: str = ""
    """What else went with the calls (PostgreSQL: their turns)."""
    error: str | None = None
    unit: str = "call(s)"
    """What `calls` counts (the recordings' place counts files)."""

    def line(self) -> str:
        if self.error is not None:
            return f"{self.place}: NOT cleaned: {self.error}"
        extra = f" ({self.details})" if self.details else ""
        return f"{self.place}: {len(self.calls)} {self.unit} deleted{extra}"


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def safe_url(url: str) -> str:
    """The store's URL without its password, for output."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = f"{parts.username}:***@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=user + netloc))
    except ValueError:
        return "<unparsable URL>"


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --- JSON record files -------------------------------------------------------------------------


def delete_json_records(logs_dir: Path, selection: Selection) -> Deleted:
    """The robot's record files whose call matches. A retention-only selection is decided by
    the call's start in the file name, without reading the file."""
    deleted = Deleted(f"json records {logs_dir}")
    try:
        paths = sorted(p for p in logs_dir.iterdir() if _RECORD_FILE.match(p.name))
    except FileNotFoundError:
        return deleted
    except OSError as exc:
        deleted.error = _failure(exc)
        return deleted
    for path in paths:
        try:
            record = _selected_record(path, selection)
            if record is None:
                continue
            path.unlink()
        except OSError as exc:
            deleted.error = f"{path}: {_failure(exc)}"
            continue
        call = record.get("call") or {}
        deleted.calls.append(str(call.get("call_id") or path.stem))
        if call.get("recording"):
            deleted.recordings.append(str(call["recording"]))
    return deleted


def _selected_record(path: Path, selection: Selection) -> dict[str, Any] | None:
    if selection.caller is None and selection.started_before is not None:
        match = _RECORD_FILE.match(path.name)
        assert match is not None
        started = datetime.strptime(match.group(1), "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
        if started >= selection.started_before:
            return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        log.warning("privacy: %s is not a JSON record; left as it is", path)
        return None
    call = record.get("call") if isinstance(record, dict) else None
    if not isinstance(call, dict) or not selection.matches(call):
        return None
    return record


# --- spools ------------------------------------------------------------------------------------


def spooled_calls(spool_dir: Path, caller: str) -> list[Deleted]:
    """Items of the caller's calls a store sink has not written yet (`<sink>.jsonl` past its
    offset), or that a store refused (`<sink>.rejected.jsonl`). They are not deleted: the robot
    that owns the spool may be appending to it; the pending ones reach the store when it is
    back, so `forget` says to run it again then."""
    found: list[Deleted] = []
    try:
        paths = sorted(spool_dir.glob("*.jsonl"))
    except OSError:
        return found
    for path in paths:
        offset = 0
        if not path.name.endswith(".rejected.jsonl"):
            try:
                raw = path.with_suffix(".offset").read_text().strip()
                offset = int(raw) if raw.isdigit() else 0
            except OSError:
                offset = 0
        try:
            with path.open("rb") as file:
                file.seek(offset)
                calls = sorted(
                    {c for line in file if (c := _spooled_call(line, caller)) is not None}
                )
        except OSError as exc:
            found.append(Deleted(f"spool {path}", error=_failure(exc)))
            continue
        if calls:
            rejected = path.name.endswith(".rejected.jsonl")
            what = "refused by the store" if rejected else "not yet written to the store"
            found.append(
                Deleted(
                    f"spool {path}",
                    calls=[str(c) for c in calls],
                    error=f"{len(calls)} call(s) of this caller {what} there; "
                    "run forget again once the store has them",
                )
            )
    return found


def _spooled_call(line: bytes, caller: str) -> str | None:
    try:
        call = json.loads(line).get("call") or {}
    except (ValueError, AttributeError):
        return None
    return str(call.get("call_id")) if call.get("caller") == caller else None


# --- PostgreSQL ----------------------------------------------------------------------------------

_PG_WHERE = """($1::text IS NULL OR c.caller = $1) AND ($2::text IS NULL OR c.robot = $2)
AND ($3::timestamptz IS NULL OR c.started_at < $3)"""


async def delete_postgres(dsn: str, selection: Selection) -> Deleted:
    """The matching `calls` rows and their `turns`, in one transaction."""
    import asyncpg

    deleted = Deleted(f"postgres {safe_url(dsn)}")
    args = (selection.caller, selection.robot, selection.started_before)
    try:
        conn = await asyncpg.connect(dsn, timeout=TIMEOUT_S, command_timeout=TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        deleted.error = _failure(exc)
        return deleted
    try:
        async with conn.transaction():
            turns = await conn.execute(
                f"DELETE FROM turns t USING calls c WHERE t.call_id = c.call_id AND {_PG_WHERE}",
                *args,
            )
            rows = await conn.fetch(
                f"DELETE FROM calls c WHERE {_PG_WHERE} RETURNING c.call_id, c.recording", *args
            )
    except asyncpg.UndefinedTableError:
        deleted.details = "no calls table: nothing was recorded there"
        return deleted
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        deleted.error = _failure(exc)
        return deleted
    finally:
        await conn.close(timeout=TIMEOUT_S)
    deleted.calls = [row["call_id"] for row in rows]
    deleted.recordings = [row["recording"] for row in rows if row["recording"]]
    deleted.details = f"{turns.split()[-1]} turn(s) with them"
    return deleted


# --- MongoDB -------------------------------------------------------------------------------------


async def delete_mongo(uri: str, selection: Selection) -> Deleted:
    """The matching `transcriptions` documents (their segments and pipeline log are in them)."""
    from pymongo.errors import PyMongoError

    from voiceplat.storage.mongo import COLLECTION, open_database

    deleted = Deleted(f"mongo {safe_url(uri)}")
    query: dict[str, Any] = {}
    if selection.caller is not None:
        query["caller"] = selection.caller
    if selection.robot is not None:
        query["robot"] = selection.robot
    if selection.started_before is not None:
        query["started_at"] = {"$lt": selection.started_before}
    try:
        client, db = open_database(uri, TIMEOUT_S)
    except (PyMongoError, ValueError) as exc:
        deleted.error = _failure(exc)
        return deleted
    try:
        found = await db[COLLECTION].find(query, {"call_id": 1, "recording": 1}).to_list(None)
        if found:
            await db[COLLECTION].delete_many({"_id": {"$in": [doc["_id"] for doc in found]}})
    except PyMongoError as exc:
        deleted.error = _failure(exc)
        return deleted
    finally:
        await client.close()
    deleted.calls = [str(doc.get("call_id")) for doc in found]
    deleted.recordings = [doc["recording"] for doc in found if doc.get("recording")]
    return deleted


# --- Redis ---------------------------------------------------------------------------------------


async def delete_redis(url: str, selection: Selection) -> Deleted:
    """The matching `call:<id>` hashes and their `call:<id>:history` lists (they expire 30 min
    after a call ends anyway: this matters for calls still in progress or just ended)."""
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors

    from voiceplat.storage.redis import call_key, history_key

    deleted = Deleted(f"redis {safe_url(url)}")
    client: Any = aioredis.from_url(
        url, decode_responses=True, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
    )
    try:
        async for key in client.scan_iter(match="call:*", count=500):
            if key.endswith(":history"):
                continue
            fields = await client.hgetall(key)
            call_id = key.removeprefix("call:")
            if not selection.matches(fields):
                continue
            await client.delete(call_key(call_id), history_key(call_id))
            deleted.calls.append(call_id)
    except (redis_errors.RedisError, OSError) as exc:
        deleted.error = _failure(exc)
    finally:
        await client.aclose()
    return deleted


async def delete_in_stores(env: dict[str, str], selection: Selection) -> list[Deleted]:
    """Every store the env names (POSTGRES_DSN, MONGO_URI, REDIS_URL), cleaned at once."""
    work = []
    if dsn := env.get("POSTGRES_DSN"):
        work.append(delete_postgres(dsn, selection))
    if uri := env.get("MONGO_URI"):
        work.append(delete_mongo(uri, selection))
    if url := env.get("REDIS_URL"):
        work.append(delete_redis(url, selection))
    return list(await asyncio.gather(*work))
