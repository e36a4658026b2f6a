"""Live calls, in process: a recorder sink that keeps the calls in progress with their turns.

Every robot process has one (`cli._serve` adds it to the recorder's sinks). The robot port's
`GET /live`, the web service running inside `serve` and the talk page's transcript read it:

- `calls()`: the calls in progress now, oldest first, each with its turns so far. A finished
  call leaves it (after its `call_ended` event went out).
- `subscribe(call_id | None)`: an async iterator of `LiveEvent`s, the same events (same meaning)
  the Redis sink publishes on `call_events`: `call_started`, `turn`, `barge_in`, `call_ended`,
  plus `call_updated` (answered, DTMF, metadata…). Each subscriber has a bounded queue: a reader
  that falls behind loses its oldest events (counted in `dropped`), never stalls the recorder.

Use it from the event loop that runs the recorder (it is not thread-safe).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, Field

from voiceplat.storage.recorder import Sink
from voiceplat.storage.records import (
    CallFinished,
    CallOpened,
    CallRecord,
    CallUpdated,
    EventLogged,
    RecordItem,
    TurnRecord,
    TurnWritten,
    UtcDatetime,
    utcnow,
)

EventType = Literal["call_started", "call_updated", "turn", "barge_in", "call_ended"]

DEFAULT_QUEUE_SIZE = 256


class LiveCall(BaseModel):
    call: CallRecord
    turns: list[TurnRecord] = Field(default_factory=list)


class LiveEvent(BaseModel):
    type: EventType
    call_id: str
    robot: str
    at: UtcDatetime
    call: CallRecord | None = None
    """The call as it is after this event (every type has it)."""
    turn: TurnRecord | None = None
    """The turn written (type "turn")."""
    data: dict[str, Any] = Field(default_factory=dict)
    """The pipeline event's data (type "barge_in")."""


class Subscription:
    """Events of one call (or of every call) as an async iterator; `close()` ends it."""

    def __init__(self, owner: LiveCalls, call_id: str | None, max_queue: int) -> None:
        self.call_id = call_id
        self.dropped = 0
        self._owner = owner
        self._queue: deque[LiveEvent] = deque()
        self._max_queue = max(1, max_queue)
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, event: LiveEvent) -> None:
        if self._closed or (self.call_id is not None and event.call_id != self.call_id):
            return
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()  # the oldest goes: a slow page misses history, not news
            self.dropped += 1
        self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._owner._forget(self)
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        return self

    async def __anext__(self) -> LiveEvent:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveCalls(Sink):
    """The calls in progress in this process, fed by the recorder."""

    name = "live"

    def __init__(self, max_queue: int = DEFAULT_QUEUE_SIZE) -> None:
        self._calls: dict[str, LiveCall] = {}  # insertion order = oldest first
        self._turns: dict[str, dict[int, TurnRecord]] = {}
        self._subscriptions: list[Subscription] = []
        self._max_queue = max_queue

    def calls(self) -> list[LiveCall]:
        """The calls in progress, oldest first (copies: a caller may keep them)."""
        return [self._live_call(call_id) for call_id in self._calls]

    def get(self, call_id: str) -> LiveCall | None:
        return self._live_call(call_id) if call_id in self._calls else None

    def subscribe(self, call_id: str | None = None, max_queue: int | None = None) -> Subscription:
        """Events from now on, of `call_id` or (None) of every call."""
        subscription = Subscription(self, call_id, max_queue or self._max_queue)
        self._subscriptions.append(subscription)
        return subscription

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    async def handle(self, item: RecordItem) -> None:
        self.apply(item)

    def apply(self, item: RecordItem) -> None:
        """Applies one record item (synchronous: `handle` without the queue)."""
        call = item.call
        if isinstance(item, CallFinished):
            self._track(call)
            self._emit("call_ended", call, call.ended_at)
            self._calls.pop(call.call_id, None)
            self._turns.pop(call.call_id, None)
            return
        if call.status != "in_progress":
            return  # an amendment of a finished call, or a late item: not live any more
        known = call.call_id in self._calls
        self._track(call)
        if isinstance(item, CallOpened):
            self._emit("call_started", call, call.started_at)
        elif isinstance(item, CallUpdated):
            self._emit("call_updated" if known else "call_started", call, utcnow())
        elif isinstance(item, TurnWritten):
            self._turns[call.call_id][item.turn.idx] = item.turn
            self._emit("turn", call, item.turn.started_at, turn=item.turn)
        elif isinstance(item, EventLogged) and item.event.event == "barge_in":
            self._emit("barge_in", call, item.event.at, data=item.event.data)

    def _track(self, call: CallRecord) -> None:
        """Keeps the latest record of a call; one first seen mid-call (a sink added late) is
        picked up from whatever item arrives."""
        if call.call_id in self._calls:
            self._calls[call.call_id].call = call
        else:
            self._calls[call.call_id] = LiveCall(call=call)
            self._turns[call.call_id] = {}

    def _live_call(self, call_id: str) -> LiveCall:
        turns = self._turns.get(call_id, {})
        return LiveCall(call=self._calls[call_id].call, turns=[turns[idx] for idx in sorted(turns)])

    def _emit(
        self,
        kind: EventType,
        call: CallRecord,
        at: Any,
        *,
        turn: TurnRecord | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if not self._subscriptions:
            return
        event = LiveEvent(
            type=kind,
            call_id=call.call_id,
            robot=call.robot,
            at=at or utcnow(),
            call=call,
            turn=turn,
            data=data or {},
        )
        for subscription in list(self._subscriptions):
            subscription.put(event)

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def aclose(self) -> None:
        """Ends every subscription (their iterators stop once drained)."""
        for subscription in list(self._subscriptions):
            subscription.close()
