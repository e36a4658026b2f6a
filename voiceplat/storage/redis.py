"""Redis sink: live calls for supervisors (`redis.asyncio`).

- `call:<id>`: hash of the call as it is now: state, robot, mode, source, caller, callee,
  started, answered, ended, end_reason, duration_sec, turns, dtmf (the keys pressed so far),
  transfer_target, outcome, summary, current_turn, current_role, current_text, last_barge_in.
  An amendment of a finished call (the summary made after it) sets only the amended fields, and
  only while the keys live (EXPIREAT ended + 30 min again: past that, the key is gone).
- `call:<id>:history`: list of the call's turns as JSON, element i = turn idx i. A turn is put at
  its index by a small Lua script (LSET when the element exists, RPUSH when it is the next one,
  empty-string placeholders over a gap), so writing a turn again, or replaying a spool, replaces
  it instead of appending a copy as a plain RPUSH would.
- Both keys expire 30 min after the call ends (EXPIREAT ended + 30 min); while the call runs,
  every write pushes their expiry 30 min ahead, so a crashed robot leaves nothing forever.
- Channel `call_events`: JSON messages `call_started`, `turn` (with the names of the tools the
  robot called), `barge_in`, `call_ended` (with the outcome), `call_amended` (the changes), each with
  `call_id`, `robot` and `at`; `replayed: true` marks a message written late, from the spool
  after an outage (pub/sub has no memory, so those may reach a subscriber twice or late).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from voiceplat.storage.records import EventLogged, RecordItem, utcnow
from voiceplat.storage.spool import Entry
from voiceplat.storage.spooled_sink import RetryPolicy, SpooledSink

CHANNEL = "call_events"
PIPELINE_ITEMS = 10
TTL_S = 30 * 60
_TRANSIENT_REPLIES = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY")

MAX_GAP = 1000
"""Turn indexes run 0, 1, 2…; one far ahead of the list is refused rather than padded."""

SET_HISTORY = """
local idx = tonumber(ARGV[1])
local len = redis.call('LLEN', KEYS[1])
if idx > len + tonumber(ARGV[3]) then
  return redis.error_reply('turn index ' .. ARGV[1] .. ' is far beyond the history (' .. len .. ')')
end
while len < idx do
  redis.call('RPUSH', KEYS[1], '')
  len = len + 1
end
if len == idx then
  redis.call('RPUSH', KEYS[1], ARGV[2])
else
  redis.call('LSET', KEYS[1], idx, ARGV[2])
end
return len
"""


def call_key(call_id: str) -> str:
    return f"call:{call_id}"


def history_key(call_id: str) -> str:
    return f"call:{call_id}:history"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def call_hash(call: dict[str, Any]) -> dict[str, str]:
    return {
        "state": call["status"],
        "robot": call["robot"],
        "mode": call["mode"],
        "source": call["source"],
        "caller": _text(call["caller"]),
        "callee": _text(call["callee"]),
        "started": call["started_at"],
        "answered": _text(call["answered_at"]),
        "ended": _text(call["ended_at"]),
        "end_reason": _text(call["end_reason"]),
        "duration_sec": _text(call["duration_sec"]),
        "turns": str(call["turns"]),
        "dtmf": _text(call.get("dtmf")),
        "transfer_target": _text(call.get("transfer_target")),
        "outcome": _text(call.get("outcome")),
    }


def history_item(turn: dict[str, Any]) -> str:
    return json.dumps(
        {key: value for key, value in turn.items() if key != "call_id"}, ensure_ascii=False
    )


def message(kind: str, call: dict[str, Any], at: str | None, replayed: bool, **data: Any) -> str:
    body = {**data, "type": kind, "call_id": call["call_id"], "robot": call["robot"], "at": at}
    if replayed:
        body["replayed"] = True
    return json.dumps(body, ensure_ascii=False)


class RedisSink(SpooledSink):
    name = "redis"

    def __init__(self, url: str, spool_dir: Path, retry: RetryPolicy | None = None) -> None:
        super().__init__(spool_dir, retry)
        self.url = url
        self.client: aioredis.Redis | None = None
        self._set_history: Any = None

    def wants(self, item: RecordItem) -> bool:
        return not isinstance(item, EventLogged) or item.event.event == "barge_in"

    async def connect(self) -> None:
        if self.client is None:
            self.client = aioredis.from_url(
                self.url,
                socket_timeout=self.retry.op_timeout_s,
                socket_connect_timeout=self.retry.op_timeout_s,
            )
            self._set_history = self.client.register_script(SET_HISTORY)
        await self.client.ping()

    async def write_batch(self, entries: list[Entry]) -> None:
        assert self.client is not None
        replayed = self.replaying
        # Several small pipelines rather than one: redis-py packs and parses a pipeline in one
        # go on the event loop, and a long one would hold up the calls' audio.
        for start in range(0, len(entries), PIPELINE_ITEMS):
            async with self.client.pipeline(transaction=False) as pipe:
                for entry in entries[start : start + PIPELINE_ITEMS]:
                    await self._queue(pipe, entry, replayed)
                await pipe.execute()

    async def _queue(self, pipe: Any, entry: Entry, replayed: bool) -> None:
        """Queues the commands of one item on `pipe` (awaiting only queues: nothing is sent)."""
        call = entry["call"]
        call_id = call["call_id"]
        keys = (call_key(call_id), history_key(call_id))
        kind = entry["k"]
        if kind == "amended":
            self._queue_amendment(pipe, entry, replayed)
            return
        fields = call_hash(call)
        if call.get("summary") is not None:  # never erased by a write that has none
            fields["summary"] = call["summary"]
        if kind == "turn":
            turn = entry["turn"]
            fields |= {
                "current_turn": str(turn["idx"]),
                "current_role": turn["role"],
                "current_text": turn["text"],
            }
            await self._set_history(
                keys=[keys[1]], args=[turn["idx"], history_item(turn), MAX_GAP], client=pipe
            )
        elif kind == "event":
            event = entry["event"]
            fields["last_barge_in"] = event["at"]
        elif kind == "finished":
            for turn in entry["turns"]:
                await self._set_history(
                    keys=[keys[1]], args=[turn["idx"], history_item(turn), MAX_GAP], client=pipe
                )
        pipe.hset(keys[0], mapping=fields)
        if kind == "finished" and call["ended_at"]:
            expire_at = datetime.fromisoformat(call["ended_at"]) + timedelta(seconds=TTL_S)
            for key in keys:
                pipe.expireat(key, expire_at)
        else:
            for key in keys:
                pipe.expire(key, TTL_S)
        if kind == "opened":
            pipe.publish(
                CHANNEL,
                message(
                    "call_started",
                    call,
                    call["started_at"],
                    replayed,
                    caller=call["caller"],
                    callee=call["callee"],
                    source=call["source"],
                ),
            )
        elif kind == "turn":
            turn = entry["turn"]
            pipe.publish(
                CHANNEL,
                message(
                    "turn",
                    call,
                    turn["started_at"],
                    replayed,
                    idx=turn["idx"],
                    role=turn["role"],
                    text=turn["text"],
                    interrupted=turn["interrupted"],
                    heard_text=turn["heard_text"],
                    v2v_ms=turn["v2v_ms"],
                    tools=[tool["name"] for tool in turn.get("tool_calls") or []],
                ),
            )
        elif kind == "event":
            event = entry["event"]
            pipe.publish(CHANNEL, message("barge_in", call, event["at"], replayed, **event["data"]))
        elif kind == "finished":
            pipe.publish(
                CHANNEL,
                message(
                    "call_ended",
                    call,
                    call["ended_at"],
                    replayed,
                    status=call["status"],
                    end_reason=call["end_reason"],
                    duration_sec=call["duration_sec"],
                    turns=call["turns"],
                    transfer_target=call.get("transfer_target"),
                    outcome=call.get("outcome"),
                ),
            )

    def _queue_amendment(self, pipe: Any, entry: Entry, replayed: bool) -> None:
        call = entry["call"]
        changes = entry.get("changes") or {}
        key = call_key(call["call_id"])
        # EXPIREAT in the past deletes the key: an amendment arriving after the 30 minutes (a
        # spool replayed late) does not bring a dead call back. A call has ended_at once finished.
        ended = call["ended_at"]
        expire_at = (
            datetime.fromisoformat(ended) + timedelta(seconds=TTL_S)
            if ended
            else utcnow() + timedelta(seconds=TTL_S)
        )
        if changes:
            pipe.hset(key, mapping={name: _text(value) for name, value in changes.items()})
        pipe.expireat(key, expire_at)
        pipe.publish(
            CHANNEL, message("call_amended", call, utcnow().isoformat(), replayed, **changes)
        )

    def is_transient(self, exc: Exception) -> bool:
        if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
            return True
        if isinstance(exc, redis_errors.ResponseError):
            return str(exc).startswith(_TRANSIENT_REPLIES)
        if isinstance(exc, redis_errors.RedisError):
            return False
        return super().is_transient(exc)

    async def disconnect(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            try:
                await asyncio.wait_for(client.aclose(), self.retry.close_timeout_s)
            except TimeoutError:
                pass
