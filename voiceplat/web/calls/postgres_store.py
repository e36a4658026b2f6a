"""Calls from PostgreSQL (the `calls` and `turns` tables of migrations/), for the web pages.

Every filter is a parameter of one SQL statement (never text pasted into it); the page and its
total come from the same WHERE clause. PostgreSQL keeps no pipeline log, so a call's log comes
from the robot's JSON file when the web service can see it. Columns are read by name and only
those CallRecord / TurnRecord know are kept, so a column a newer migration adds (the recording's
path) appears once the record has the field, and an older database without it still works.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from voiceplat.storage.migrations import migrate_postgres
from voiceplat.storage.records import CallRecord, CallSnapshot, TurnRecord
from voiceplat.web.calls.json_store import JsonCallStore
from voiceplat.web.calls.store import CallPage, CallQuery, CallStoreError, RobotStats

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 15.0
_CALL_FIELDS = frozenset(CallRecord.model_fields)
_TURN_FIELDS = frozenset(TurnRecord.model_fields)


def like_pattern(text: str) -> str:
    """`text` anywhere in a value, for ILIKE: its own % and _ match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def day_start(day: Any) -> datetime:
    return datetime.combine(day, time(), UTC)


def where_clause(query: CallQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of `query` over `calls c`, and its parameters ($1...)."""
    conditions: list[str] = []
    params: list[Any] = []

    def add(condition: str, value: Any) -> None:
        params.append(value)
        conditions.append(condition.replace("$?", f"${len(params)}"))

    if query.robot is not None:
        add("c.robot = $?", query.robot)
    if query.date_from is not None:
        add("c.started_at >= $?", day_start(query.date_from))
    if query.date_to is not None:
        add("c.started_at < $?", day_start(query.date_to) + timedelta(days=1))
    if query.status is not None:
        add("c.status = $?", query.status)
    if query.end_reason is not None:
        add("c.end_reason = $?", query.end_reason)
    if query.caller is not None:
        add("c.caller ILIKE $?", like_pattern(query.caller))
    if query.min_duration_s is not None:
        add("c.duration_sec >= $?", query.min_duration_s)
    if query.max_duration_s is not None:
        add("c.duration_sec <= $?", query.max_duration_s)
    if query.text is not None:
        add(
            "EXISTS (SELECT 1 FROM turns t WHERE t.call_id = c.call_id"
            " AND (t.text ILIKE $? OR t.heard_text ILIKE $?))",
            like_pattern(query.text),
        )
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


def _decoded(value: Any) -> Any:
    # asyncpg hands jsonb over as its JSON text.
    return json.loads(value) if isinstance(value, str) else value


def call_from_row(row: Mapping[str, Any]) -> CallRecord:
    values = {key: row[key] for key in row.keys() if key in _CALL_FIELDS}
    values["metadata"] = _decoded(values.get("metadata")) or {}
    values["dtmf"] = values.get("dtmf") or ""
    return CallRecord.model_validate(values)


def turn_from_row(row: Mapping[str, Any]) -> TurnRecord:
    values = {key: row[key] for key in row.keys() if key in _TURN_FIELDS}
    values["tool_calls"] = _decoded(values.get("tool_calls")) or []
    values["resumed"] = values.get("resumed") or 0
    return TurnRecord.model_validate(values)


class PostgresCallStore:
    def __init__(self, dsn: str, logs_dirs: Mapping[str, Path] | None = None) -> None:
        self.dsn = dsn
        self.logs = JsonCallStore(logs_dirs) if logs_dirs else None
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _connection_pool(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                try:
                    pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=0,
                        max_size=4,
                        timeout=CONNECT_TIMEOUT_S,
                        command_timeout=QUERY_TIMEOUT_S,
                        server_settings={"application_name": "voiceplat-web"},
                    )
                    # The web service may start before any robot has made the tables.
                    async with pool.acquire() as conn:
                        await migrate_postgres(conn)
                except (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    TimeoutError,
                ) as exc:
                    raise CallStoreError(f"PostgreSQL is not reachable: {exc}") from exc
                self._pool = pool
            return self._pool

    async def _fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        pool = await self._connection_pool()
        try:
            async with pool.acquire() as conn:
                rows: list[asyncpg.Record] = await conn.fetch(sql, *params)
                return rows
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise CallStoreError(f"PostgreSQL query failed: {exc}") from exc

    async def list_calls(self, query: CallQuery) -> CallPage:
        where, params = where_clause(query)
        count = await self._fetch(f"SELECT count(*) AS n FROM calls c{where}", *params)
        n = len(params)
        rows = await self._fetch(
            f"SELECT c.* FROM calls c{where}"
            f" ORDER BY c.started_at DESC, c.call_id DESC LIMIT ${n + 1} OFFSET ${n + 2}",
            *params,
            query.per_page,
            query.offset,
        )
        return CallPage(
            items=[call_from_row(row) for row in rows],
            total=count[0]["n"],
            page=query.page,
            per_page=query.per_page,
        )

    async def get_call(self, call_id: str) -> CallSnapshot | None:
        rows = await self._fetch("SELECT * FROM calls WHERE call_id = $1", call_id)
        if not rows:
            return None
        turns = await self._fetch("SELECT * FROM turns WHERE call_id = $1 ORDER BY idx", call_id)
        snapshot = CallSnapshot(
            call=call_from_row(rows[0]), turns=[turn_from_row(row) for row in turns]
        )
        if self.logs is not None:
            from_file = await self.logs.get_call(call_id)
            if from_file is not None:
                snapshot = snapshot.model_copy(update={"pipeline_log": from_file.pipeline_log})
        return snapshot

    async def robot_stats(self, robot: str, last_calls: int = 100) -> RobotStats:
        today = day_start(datetime.now(UTC).date())
        counted = await self._fetch(
            "SELECT count(*) AS n FROM calls WHERE robot = $1 AND started_at >= $2"
            " AND started_at < $3",
            robot,
            today,
            today + timedelta(days=1),
        )
        recent = (
            "SELECT call_id, end_reason FROM calls WHERE robot = $1"
            " ORDER BY started_at DESC, call_id DESC LIMIT $2"
        )
        latency = await self._fetch(
            f"WITH recent AS ({recent})"
            " SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t.v2v_ms) AS p50,"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY t.v2v_ms) AS p95,"
            " array_agg(t.v2v_ms ORDER BY t.started_at, t.idx) AS v2v"
            " FROM turns t JOIN recent USING (call_id)"
            " WHERE t.role = 'robot' AND t.v2v_ms IS NOT NULL",
            robot,
            last_calls,
        )
        reasons = await self._fetch(
            f"WITH recent AS ({recent}) SELECT end_reason, count(*) AS n FROM recent"
            " WHERE end_reason IS NOT NULL GROUP BY end_reason ORDER BY n DESC, end_reason",
            robot,
            last_calls,
        )
        row = latency[0]
        return RobotStats(
            calls_today=counted[0]["n"],
            v2v_p50_ms=row["p50"],
            v2v_p95_ms=row["p95"],
            v2v_ms=list(row["v2v"] or []),
            end_reasons={r["end_reason"]: r["n"] for r in reasons},
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()
        if self.logs is not None:
            await self.logs.aclose()
