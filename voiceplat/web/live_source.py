"""Where the live page's calls in progress come from, in one shape whichever the source.

- `InProcessLive`: the robot's own LiveCalls, when the web service runs inside `voiceplat serve`.
- `RedisLive`: the Redis sink's `call:<id>` hashes and `call_events` channel (REDIS_URL).
- `PollingLive`: each robot's `GET /live` on its ws port, polled (robots in other processes).

`calls()` gives `[{"call": {...CallRecord fields...}, "turns": [{...TurnRecord fields...}]}]`, oldest
first; `events()` yields `{"type", "call_id", "robot", "at", "call"?, "turn"?, "data"?}` with the
types of `storage/live.py` (call_started, call_updated, turn, barge_in, call_ended).
`await subscribe()` is `events()` subscribed before it returns: nothing after it is missed (the
live page's stream says "connected" only then).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from voiceplat.storage.redis import CHANNEL

if TYPE_CHECKING:
    from voiceplat.robot import Robot
    from voiceplat.storage.live import LiveCalls, Subscription

log = logging.getLogger("voiceplat.web")

LiveDict = dict[str, Any]


class LiveSource(Protocol):
    name: str
    errors: dict[str, str]
    """What the last read could not reach (e.g. a robot that is down), by what it is."""

    async def calls(self) -> list[LiveDict]: ...

    def events(self) -> AsyncIterator[LiveDict]: ...

    async def subscribe(self) -> AsyncIterator[LiveDict]: ...

    async def aclose(self) -> None: ...


class InProcessLive:
    name = "in-process"

    def __init__(self, live: LiveCalls) -> None:
        self.live = live
        self.errors: dict[str, str] = {}

    async def calls(self) -> list[LiveDict]:
        return [call.model_dump(mode="json") for call in self.live.calls()]

    def events(self) -> AsyncIterator[LiveDict]:
        return self._events(self.live.subscribe())  # subscribed at once: no await needed

    async def subscribe(self) -> AsyncIterator[LiveDict]:
        return self.events()

    async def _events(self, subscription: Subscription) -> AsyncIterator[LiveDict]:
        with subscription:
            async for event in subscription:
                yield event.model_dump(mode="json", exclude_none=True)

    async def aclose(self) -> None:
        pass  # the LiveCalls belongs to the robot's process, which closes it


# --- Redis -------------------------------------------------------------------------------------

_HASH_FIELDS = {  # call:<id> hash field -> CallRecord field
    "state": "status",
    "started": "started_at",
    "answered": "answered_at",
    "ended": "ended_at",
}
_TURN_KEYS = ("idx", "role", "text", "interrupted", "heard_text", "v2v_ms")


def call_from_hash(call_id: str, fields: Mapping[str, str]) -> LiveDict:
    """A `call:<id>` hash as CallRecord-like fields (empty strings are unset values)."""
    call: LiveDict = {"call_id": call_id}
    for name, value in fields.items():
        key = _HASH_FIELDS.get(name, name)
        if key == "turns":
            call[key] = int(value or 0)
        elif key == "duration_sec":
            call[key] = float(value) if value else None
        else:
            call[key] = value if value != "" else None
    return call


def event_from_message(body: Mapping[str, Any]) -> LiveDict:
    """A `call_events` message in the in-process event shape (the turn's fields under "turn")."""
    event: LiveDict = {key: body.get(key) for key in ("type", "call_id", "robot", "at")}
    if body.get("type") == "turn":
        event["turn"] = {key: body.get(key) for key in _TURN_KEYS}
    elif body.get("type") == "call_ended":
        event["call"] = {
            "call_id": body.get("call_id"),
            "robot": body.get("robot"),
            **{key: body.get(key) for key in ("status", "end_reason", "duration_sec", "turns")},
        }
    else:
        skip = {"type", "call_id", "robot", "at"}
        event["data"] = {key: value for key, value in body.items() if key not in skip}
    return event


class RedisLive:
    name = "redis"

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        import redis.asyncio as aioredis

        # decode_responses: str keys and values (redis-py's stubs cannot say so).
        self.client: Any = aioredis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self.errors: dict[str, str] = {}

    async def calls(self) -> list[LiveDict]:
        try:
            found = await self._calls()
        except Exception as exc:  # the page says Redis is down rather than failing
            self.errors = {"redis": f"{type(exc).__name__}: {exc}"}
            return []
        self.errors = {}
        return found

    async def _calls(self) -> list[LiveDict]:
        # The sink keeps no index of live calls: scan the hashes (they expire 30 min after a
        # call ends, so the keyspace stays as small as the recent calls).
        ids = [
            key.removeprefix("call:")
            async for key in self.client.scan_iter(match="call:*", count=500)
            if not key.endswith(":history")
        ]
        found: list[LiveDict] = []
        for call_id in ids:
            fields: dict[str, str] = await self.client.hgetall(f"call:{call_id}")
            if fields.get("state") != "in_progress":
                continue
            history = await self.client.lrange(f"call:{call_id}:history", 0, -1)
            turns = [json.loads(item) for item in history if item]
            found.append({"call": call_from_hash(call_id, fields), "turns": turns})
        found.sort(key=lambda live: live["call"].get("started_at") or "")
        return found

    async def events(self) -> AsyncIterator[LiveDict]:
        async for event in await self.subscribe():
            yield event

    async def subscribe(self) -> AsyncIterator[LiveDict]:
        pubsub = self.client.pubsub()
        await pubsub.subscribe(CHANNEL)
        return self._listen(pubsub)

    async def _listen(self, pubsub: Any) -> AsyncIterator[LiveDict]:
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    body = json.loads(message["data"])
                except (TypeError, ValueError):
                    log.warning("call_events: not JSON: %.200r", message.get("data"))
                    continue
                if body.get("type") in ("call_started", "turn", "barge_in", "call_ended"):
                    yield event_from_message(body)
                elif body.get("type") == "call_amended":
                    yield {**event_from_message(body), "type": "call_updated"}
        finally:
            await pubsub.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()


# --- polling each robot's GET /live ------------------------------------------------------------


def live_url(robot: Robot) -> str:
    host = robot.config.ws_host
    if host in ("0.0.0.0", "", "::"):  # listening everywhere: this machine reaches it on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{robot.config.ws_port}/live"


def diff_events(before: Mapping[str, LiveDict], now: Mapping[str, LiveDict]) -> list[LiveDict]:
    """The events that turn the calls `before` (by call id) into the calls `now`."""
    events: list[LiveDict] = []
    for call_id, live in now.items():
        call = live["call"]
        head = {"call_id": call_id, "robot": call.get("robot"), "call": call}
        old = before.get(call_id)
        if old is None:
            events.append({"type": "call_started", "at": call.get("started_at"), **head})
        elif old["call"] != call:
            events.append({"type": "call_updated", "at": None, **head})
        seen = {turn.get("idx"): turn for turn in (old or {}).get("turns", [])}
        for turn in live.get("turns", []):
            if seen.get(turn.get("idx")) != turn:
                events.append({"type": "turn", "at": turn.get("started_at"), "turn": turn, **head})
    for call_id, live in before.items():
        if call_id not in now:
            call = {**live["call"], "status": "ended"}
            events.append(
                {
                    "type": "call_ended",
                    "call_id": call_id,
                    "robot": call.get("robot"),
                    "at": None,
                    "call": call,
                }
            )
    return events


class PollingLive:
    name = "polling"

    def __init__(
        self,
        robots: Mapping[str, Robot],
        token: str | None = None,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.urls = {name: live_url(robot) for name, robot in robots.items()}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=timeout_s, transport=transport)
        self.interval_s = interval_s
        self.errors: dict[str, str] = {}

    async def _robot_calls(self, name: str, url: str) -> list[LiveDict]:
        try:
            response = await self.client.get(url)
            response.raise_for_status()
            body = response.json()
        except Exception as exc:  # a robot that is down shows as such, the others still do
            self.errors[name] = f"{url}: {type(exc).__name__}: {exc}"
            return []
        self.errors.pop(name, None)
        items = body.get("calls", []) if isinstance(body, dict) else body
        return [item for item in items if isinstance(item, dict) and "call" in item]

    async def calls(self) -> list[LiveDict]:
        found = await asyncio.gather(
            *(self._robot_calls(name, url) for name, url in self.urls.items())
        )
        merged = [live for calls in found for live in calls]
        merged.sort(key=lambda live: live["call"].get("started_at") or "")
        return merged

    async def events(self) -> AsyncIterator[LiveDict]:
        async for event in await self.subscribe():
            yield event

    async def subscribe(self) -> AsyncIterator[LiveDict]:
        before = {live["call"]["call_id"]: live for live in await self.calls()}
        return self._poll(before)

    async def _poll(self, before: dict[str, LiveDict]) -> AsyncIterator[LiveDict]:
        while True:
            await asyncio.sleep(self.interval_s)
            now = {live["call"]["call_id"]: live for live in await self.calls()}
            for event in diff_events(before, now):
                yield event
            before = now

    async def aclose(self) -> None:
        await self.client.aclose()


def live_source_for(
    env: Mapping[str, str],
    robots: Mapping[str, Robot],
    in_process: LiveCalls | None = None,
    token: str | None = None,
) -> LiveSource:
    """In-process inside `serve`, else Redis when REDIS_URL is set, else polling the robots."""
    if in_process is not None:
        return InProcessLive(in_process)
    if url := env.get("REDIS_URL"):
        return RedisLive(url)
    return PollingLive(robots, token=token)
