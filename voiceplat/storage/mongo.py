"""MongoDB sink: one `transcriptions` document per call (PyMongo's asyncio API).

    {call_id, robot, mode, source, caller, callee, started_at, answered_at, ended_at,
     duration_sec, status, end_reason, turns, metadata, dtmf, transfer_target, outcome,
     summary, recording, recording_error, updated_at,
     segments: [{idx, role, text, heard_text, started_at, ended_at, interrupted,
                 asr_ms, llm_ttft_ms, tts_ttfb_ms, v2v_ms, track, error, ignored,
                 starved_ms, starved_max_ms, resumed,
                 tool_calls: [{name, arguments, ok, result, error, ms}, ...]}, ...],  # by idx
     pipeline_log: [{at, event, data}, ...]}

Writes are idempotent: the document is upserted by call_id; a turn replaces the segment with its
idx if there is one (`segments.$`) and is pushed otherwise (the push's filter requires that no
segment has that idx, so a replayed push matches nothing). The pipeline log is written whole
with the finished call, which also rewrites all segments: the final document is the call's
snapshot. Within a batch only the latest state of a call is written (a call whose whole life is
in the batch, as in a spool replay, is one update). An amendment of a finished call (the summary
made after the call) `$set`s only the amended fields, after the call's other updates; the rest of
the call is written only when the document is new (`$setOnInsert`).
Indexes: migrations/mongo_indexes.json.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bson.errors import BSONError
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    OperationFailure,
    PyMongoError,
)

from voiceplat.storage.clean import parse_time
from voiceplat.storage.migrations import MONGO_INDEXES, ensure_mongo_indexes
from voiceplat.storage.records import EventLogged, RecordItem, utcnow
from voiceplat.storage.spool import Entry
from voiceplat.storage.spooled_sink import RetryPolicy, SpooledSink

DEFAULT_DATABASE = "voiceplat"
COLLECTION = "transcriptions"
CALL_TIMES = ("started_at", "answered_at", "ended_at")
TURN_TIMES = ("started_at", "ended_at")
# Server error codes that mean "not now" rather than "not this": shutting down, stepping down,
# not primary, network, time limits.
_TRANSIENT_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 50}


def open_database(uri: str, timeout_s: float = 5.0) -> tuple[AsyncMongoClient, AsyncDatabase]:
    """The client and the database named in the URI's path (default `voiceplat`)."""
    client: AsyncMongoClient = AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=int(timeout_s * 1000),
        connectTimeoutMS=int(timeout_s * 1000),
        socketTimeoutMS=int(timeout_s * 2000),
        appname="voiceplat",
    )
    return client, client.get_default_database(DEFAULT_DATABASE)


def safe_keys(value: Any) -> Any:
    """Metadata keys MongoDB would refuse in an update: a leading `$`, or a dot (a path)."""
    if isinstance(value, dict):
        return {_safe_key(key): safe_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [safe_keys(item) for item in value]
    return value


def _safe_key(key: str) -> str:
    if key.startswith("$"):
        key = "＄" + key[1:]  # FULLWIDTH DOLLAR SIGN, as MongoDB's docs suggest
    return key.replace(".", "．")  # FULLWIDTH FULL STOP


def call_fields(call: dict[str, Any]) -> dict[str, Any]:
    fields = {**call, "metadata": safe_keys(call["metadata"]), "updated_at": utcnow()}
    for name in CALL_TIMES:
        fields[name] = parse_time(call[name])
    return fields


def segment(turn: dict[str, Any]) -> dict[str, Any]:
    fields = {key: value for key, value in turn.items() if key != "call_id"}
    for name in TURN_TIMES:
        fields[name] = parse_time(turn[name])
    if "tool_calls" in fields:  # a webhook's answer may have any keys
        fields["tool_calls"] = safe_keys(fields["tool_calls"])
    return fields


def log_entry(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": parse_time(event["at"]),
        "event": event["event"],
        "data": safe_keys(event["data"]),
    }


AFTER_CALL = ("summary", "recording_error")
"""Fields that only ever come after the call (amendments)."""


def _keep_summary(fields: dict[str, Any]) -> dict[str, Any]:
    """A summary (or a recording error) only ever comes after the call (an amendment): a write
    without one (a replayed earlier item) never erases it. Returns what to set only on a new
    document."""
    return {name: fields.pop(name, None) for name in AFTER_CALL if fields.get(name) is None}


def upsert_call(call: dict[str, Any]) -> UpdateOne:
    fields = call_fields(call)
    on_insert = {**_keep_summary(fields), "segments": [], "pipeline_log": []}
    return UpdateOne(
        {"call_id": call["call_id"]}, {"$set": fields, "$setOnInsert": on_insert}, upsert=True
    )


def put_segment(call_id: str, turn: dict[str, Any]) -> list[UpdateOne]:
    """Replace the segment with this idx, or push it if there is none (never both)."""
    seg = segment(turn)
    idx = seg["idx"]
    return [
        UpdateOne({"call_id": call_id, "segments.idx": idx}, {"$set": {"segments.$": seg}}),
        UpdateOne(
            {"call_id": call_id, "segments.idx": {"$ne": idx}},
            {"$push": {"segments": {"$each": [seg], "$sort": {"idx": 1}}}},
        ),
    ]


def finish_call(entry: Entry) -> UpdateOne:
    """The finished call's snapshot: every field, all segments and the pipeline log."""
    fields = call_fields(entry["call"])
    fields["segments"] = sorted((segment(turn) for turn in entry["turns"]), key=lambda s: s["idx"])
    fields["pipeline_log"] = [log_entry(event) for event in entry["pipeline_log"]]
    on_insert = _keep_summary(fields)
    return UpdateOne(
        {"call_id": entry["call"]["call_id"]},
        {"$set": fields, "$setOnInsert": on_insert},
        upsert=True,
    )


def amend_call(entry: Entry) -> UpdateOne:
    """Only the amended fields; the whole call if there is no document yet."""
    changes = entry.get("changes") or {}
    fields = call_fields(entry["call"])
    update = {name: fields.pop(name) for name in changes}
    update["updated_at"] = fields.pop("updated_at")
    return UpdateOne(
        {"call_id": entry["call"]["call_id"]},
        {"$set": update, "$setOnInsert": {**fields, "segments": [], "pipeline_log": []}},
        upsert=True,
    )


def batch_ops(entries: list[Entry]) -> list[UpdateOne]:
    """The updates of a batch, per call: only the latest state of each segment is written, and a
    finished snapshot makes everything before it in the batch unnecessary. Amendments come last
    (a call is amended only once it is finished), in order."""
    calls: dict[str, dict[str, Any]] = {}
    for entry in entries:
        call = entry["call"]
        state = calls.setdefault(
            call["call_id"], {"call": None, "finished": None, "segments": {}, "amends": []}
        )
        if entry["k"] == "amended":
            state["amends"].append(entry)
            continue
        state["call"] = call
        if entry["k"] == "finished":
            state["finished"] = entry
            state["segments"] = {}
        elif entry["k"] == "turn":
            state["segments"][entry["turn"]["idx"]] = entry["turn"]
    ops: list[UpdateOne] = []
    for call_id, state in calls.items():
        if state["finished"] is not None:
            ops.append(finish_call(state["finished"]))
        if state["call"] is not None and (state["finished"] is None or state["segments"]):
            ops.append(upsert_call(state["call"]))
            for turn in state["segments"].values():
                ops += put_segment(call_id, turn)
        ops += [amend_call(entry) for entry in state["amends"]]
    return ops


class MongoSink(SpooledSink):
    name = "mongo"

    def __init__(
        self,
        uri: str,
        spool_dir: Path,
        retry: RetryPolicy | None = None,
        *,
        indexes: Path = MONGO_INDEXES,
    ) -> None:
        super().__init__(spool_dir, retry)
        self.uri = uri
        self.indexes = indexes
        self.client: AsyncMongoClient | None = None
        self.db: AsyncDatabase | None = None

    def wants(self, item: RecordItem) -> bool:
        return not isinstance(item, EventLogged)

    async def connect(self) -> None:
        if self.client is None:
            self.client, self.db = open_database(self.uri, self.retry.op_timeout_s)
        assert self.db is not None
        await ensure_mongo_indexes(self.db, self.indexes)

    async def write_batch(self, entries: list[Entry]) -> None:
        assert self.db is not None
        await self.db[COLLECTION].bulk_write(batch_ops(entries), ordered=True)

    def is_transient(self, exc: Exception) -> bool:
        if isinstance(exc, ConnectionFailure):
            return True
        if isinstance(exc, BulkWriteError):
            errors = exc.details.get("writeErrors") or []
            concern = exc.details.get("writeConcernErrors") or []
            return bool(concern) or any(e.get("code") in _TRANSIENT_CODES for e in errors)
        if isinstance(exc, OperationFailure):
            return exc.code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError")
        if isinstance(exc, DocumentTooLarge | BSONError):
            return False
        if isinstance(exc, PyMongoError):
            return exc.has_error_label("RetryableWriteError")
        return super().is_transient(exc)

    async def disconnect(self) -> None:
        if self.client is not None:
            client, self.client, self.db = self.client, None, None
            try:
                await asyncio.wait_for(client.close(), self.retry.close_timeout_s)
            except TimeoutError:
                pass
