"""PostgreSQL sink: tables `calls` and `turns` for analysts (schema in migrations/).

Every item carries the call, so every batch upserts the call rows it touches (ON CONFLICT
(call_id)) and then the turn rows (ON CONFLICT (call_id, idx)), in one transaction. Writing an
item twice, or replaying a spool, leaves the same rows. A finished call's snapshot rewrites all
its turns, so the final record is whole even if the recorder dropped an item on the way.
An amendment of a finished call (its summary, written after the call; a recording that could not
be written) sets only the amended columns, after the batch's other rows; it inserts the whole
call only if the row is missing.
Pipeline events are not kept here (MongoDB and the JSON file have them).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import asyncpg

from voiceplat.storage.clean import parse_time
from voiceplat.storage.migrations import MIGRATIONS_DIR, migrate_postgres
from voiceplat.storage.records import EventLogged, RecordItem
from voiceplat.storage.spool import Entry
from voiceplat.storage.spooled_sink import RetryPolicy, SpooledSink

log = logging.getLogger(__name__)

INSERT_CALL = """
INSERT INTO calls (call_id, robot, mode, source, caller, callee, started_at, answered_at,
                   ended_at, duration_sec, status, end_reason, turns, metadata, outcome,
                   summary, recording, recording_error, dtmf, transfer_target, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16, $17, $18,
        $19, $20, now())
"""

UPSERT_CALL = (
    INSERT_CALL
    + """ON CONFLICT (call_id) DO UPDATE SET
    robot = EXCLUDED.robot, mode = EXCLUDED.mode, source = EXCLUDED.source,
    caller = EXCLUDED.caller, callee = EXCLUDED.callee, started_at = EXCLUDED.started_at,
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    duration_sec = EXCLUDED.duration_sec, status = EXCLUDED.status,
    end_reason = EXCLUDED.end_reason, turns = EXCLUDED.turns, metadata = EXCLUDED.metadata,
    dtmf = EXCLUDED.dtmf, transfer_target = EXCLUDED.transfer_target,
    outcome = EXCLUDED.outcome, recording = EXCLUDED.recording,
    -- A summary or a recording error only ever comes after the call (an amendment): no earlier
    -- write erases it.
    summary = COALESCE(EXCLUDED.summary, calls.summary),
    recording_error = COALESCE(EXCLUDED.recording_error, calls.recording_error), updated_at = now()
-- A finished call is final: an older in-progress write arriving late never reopens it.
WHERE calls.status = 'in_progress' OR EXCLUDED.status <> 'in_progress'
"""
)

AMEND_CALL = (
    INSERT_CALL
    + """ON CONFLICT (call_id) DO UPDATE SET
    -- $21-$24: whether the amendment changes the outcome, the summary, the recording, its
    -- error; nothing else changes.
    outcome = CASE WHEN $21::boolean THEN EXCLUDED.outcome ELSE calls.outcome END,
    summary = CASE WHEN $22::boolean THEN EXCLUDED.summary ELSE calls.summary END,
    recording = CASE WHEN $23::boolean THEN EXCLUDED.recording ELSE calls.recording END,
    recording_error = CASE WHEN $24::boolean THEN EXCLUDED.recording_error
                           ELSE calls.recording_error END,
    updated_at = now()
"""
)

UPSERT_TURN = """
INSERT INTO turns (call_id, idx, role, text, heard_text, started_at, ended_at, interrupted,
                   asr_ms, llm_ttft_ms, tts_ttfb_ms, v2v_ms, track, error, tool_calls,
                   ignored, starved_ms, starved_max_ms, resumed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16, $17, $18,
        $19)
ON CONFLICT (call_id, idx) DO UPDATE SET
    role = EXCLUDED.role, text = EXCLUDED.text, heard_text = EXCLUDED.heard_text,
    started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,
    interrupted = EXCLUDED.interrupted, asr_ms = EXCLUDED.asr_ms,
    llm_ttft_ms = EXCLUDED.llm_ttft_ms, tts_ttfb_ms = EXCLUDED.tts_ttfb_ms,
    v2v_ms = EXCLUDED.v2v_ms, track = EXCLUDED.track, error = EXCLUDED.error,
    ignored = EXCLUDED.ignored, starved_ms = EXCLUDED.starved_ms,
    starved_max_ms = EXCLUDED.starved_max_ms, resumed = EXCLUDED.resumed,
    tool_calls = EXCLUDED.tool_calls
"""

# SQLSTATE classes meaning "the server is unavailable or busy", not "the data is wrong":
# 08 connection, 40 rollback (deadlock, serialization), 53 resources, 57 operator intervention
# (shutdown, starting up), 58 system error.
_TRANSIENT_CLASSES = {"08", "40", "53", "57", "58"}
# The schema is gone (a recreated database): connect again, which applies the migrations.
_SCHEMA_MISSING = {"42P01", "3F000", "3D000"}


def call_row(call: dict[str, Any]) -> tuple[Any, ...]:
    return (
        call["call_id"],
        call["robot"],
        call["mode"],
        call["source"],
        call["caller"],
        call["callee"],
        parse_time(call["started_at"]),
        parse_time(call["answered_at"]),
        parse_time(call["ended_at"]),
        call["duration_sec"],
        call["status"],
        call["end_reason"],
        call["turns"],
        json.dumps(call["metadata"], ensure_ascii=False),
        # A spool written before these fields existed replays without them.
        call.get("outcome"),
        call.get("summary"),
        call.get("recording"),
        call.get("recording_error"),
        call.get("dtmf") or "",
        call.get("transfer_target"),
    )


def amend_row(entry: Entry) -> tuple[Any, ...]:
    changes = entry.get("changes") or {}
    amended = ("outcome", "summary", "recording", "recording_error")
    return (*call_row(entry["call"]), *(name in changes for name in amended))


def turn_row(turn: dict[str, Any]) -> tuple[Any, ...]:
    return (
        turn["call_id"],
        turn["idx"],
        turn["role"],
        turn["text"],
        turn["heard_text"],
        parse_time(turn["started_at"]),
        parse_time(turn["ended_at"]),
        turn["interrupted"],
        turn["asr_ms"],
        turn["llm_ttft_ms"],
        turn["tts_ttfb_ms"],
        turn["v2v_ms"],
        turn["track"],
        turn["error"],
        # A spool written before these fields existed (issues 11, 12) replays without them.
        json.dumps(turn.get("tool_calls") or [], ensure_ascii=False),
        turn.get("ignored"),
        turn.get("starved_ms"),
        turn.get("starved_max_ms"),
        turn.get("resumed") or 0,
    )


Rows = list[tuple[Any, ...]]


def batch_rows(entries: list[Entry]) -> tuple[Rows, Rows, Rows]:
    """The call, turn and amendment rows of a batch: the latest version of each call and turn
    (entries are in order), and every amendment, in order (they are applied last: a call is
    amended only once it is finished, after all its other items)."""
    calls: dict[str, tuple[Any, ...]] = {}
    turns: dict[tuple[str, int], tuple[Any, ...]] = {}
    amends: Rows = []
    for entry in entries:
        call = entry["call"]
        if entry["k"] == "amended":
            amends.append(amend_row(entry))
            continue
        calls[call["call_id"]] = call_row(call)
        for turn in entry.get("turns") or ([entry["turn"]] if "turn" in entry else []):
            # A turn belongs to the call that carries it, whatever its own call_id says.
            turns[(call["call_id"], turn["idx"])] = turn_row({**turn, "call_id": call["call_id"]})
    return list(calls.values()), list(turns.values()), amends


class PostgresSink(SpooledSink):
    name = "postgres"

    def __init__(
        self,
        dsn: str,
        spool_dir: Path,
        retry: RetryPolicy | None = None,
        *,
        migrations_dir: Path = MIGRATIONS_DIR,
    ) -> None:
        super().__init__(spool_dir, retry)
        self.dsn = dsn
        self.migrations_dir = migrations_dir
        self.pool: asyncpg.Pool | None = None

    def wants(self, item: RecordItem) -> bool:
        return not isinstance(item, EventLogged)

    async def connect(self) -> None:
        if self.pool is None:
            self.pool = await asyncpg.create_pool(
                self.dsn,
                # No floor to keep: asyncpg would log a traceback per try while the server is down.
                min_size=0,
                max_size=2,
                timeout=self.retry.op_timeout_s,
                command_timeout=self.retry.op_timeout_s,
                server_settings={"application_name": "voiceplat"},
            )
        async with self.pool.acquire() as conn:
            await migrate_postgres(conn, self.migrations_dir)

    async def write_batch(self, entries: list[Entry]) -> None:
        assert self.pool is not None
        calls, turns, amends = batch_rows(entries)
        async with self.pool.acquire() as conn, conn.transaction():
            if calls:
                await conn.executemany(UPSERT_CALL, calls)
            if turns:
                await conn.executemany(UPSERT_TURN, turns)
            if amends:
                await conn.executemany(AMEND_CALL, amends)

    def is_transient(self, exc: Exception) -> bool:
        if isinstance(exc, asyncpg.PostgresError):
            state = exc.sqlstate or ""
            return state[:2] in _TRANSIENT_CLASSES or state in _SCHEMA_MISSING
        if isinstance(exc, asyncpg.InterfaceError):
            # "connection is closed", "pool is closing": the link, not the data.
            return not isinstance(exc, asyncpg.DataError | ValueError)
        if isinstance(exc, asyncpg.exceptions._base.InternalClientError):
            # "cannot switch to state N; another operation is in progress": a connection still
            # busy with a write cut by the timeout (seen in the soak). The link, not the data:
            # taken for a refusal, its items would be set aside as bad.
            return True
        return super().is_transient(exc)

    def needs_reconnect(self, exc: Exception) -> bool:
        return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _SCHEMA_MISSING

    async def disconnect(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            try:
                await asyncio.wait_for(pool.close(), self.retry.close_timeout_s)
            except TimeoutError:
                pool.terminate()
