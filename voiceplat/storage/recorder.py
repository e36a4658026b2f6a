"""The call recorder: sessions hand it records, sinks write them in the background.

Every method a session calls is synchronous and O(1): it updates the in-memory `CallLog` and puts
an item on each sink's queue with `put_nowait`. The audio path never waits on storage. If a sink
falls so far behind that its queue is full, new items for it are dropped and counted (and logged),
rather than blocking a call. Each sink has its own queue and worker, so a slow or failing sink
never delays or stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from voiceplat.storage.records import (
    AMENDABLE,
    CallAmended,
    CallFinished,
    CallOpened,
    CallRecord,
    CallSnapshot,
    CallStatus,
    CallUpdated,
    EventLogged,
    LogEvent,
    RecordItem,
    TurnRecord,
    TurnWritten,
    utcnow,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Sink:
    """A record store. It receives every item of every call, in order per call.

    Whole-call stores (the JSON file) override `write`, called with the snapshot when a call
    opens and when it finishes, and `amend`, called when a finished call's record changes
    afterwards. Per-turn stores (PostgreSQL, MongoDB, Redis) override `handle` and act on each
    item. Exceptions are logged by the recorder and never reach a call.
    """

    name: str = "sink"

    async def start(self) -> None:
        """Opens connections; called by `Recorder.start`."""

    async def handle(self, item: RecordItem) -> None:
        if isinstance(item, CallOpened):
            await self.write(CallSnapshot(call=item.call))
        elif isinstance(item, CallFinished):
            await self.write(item.snapshot)
        elif isinstance(item, CallAmended):
            await self.amend(item)

    async def write(self, snapshot: CallSnapshot) -> None:
        """Stores the whole call as it is now (idempotent: the latest write wins)."""

    async def amend(self, item: CallAmended) -> None:
        """Sets `item.changes` on the finished call's stored record (idempotent)."""

    async def aclose(self) -> None:
        """Flushes and closes; called by `Recorder.aclose` after the queue is drained."""


def sink_name(sink: Sink) -> str:
    return getattr(sink, "name", None) or type(sink).__name__


def _is_power_of_two(n: int) -> bool:
    return n & (n - 1) == 0


_WHOLE_CALL_ITEMS = (CallOpened, CallFinished, CallAmended)


class _SinkWorker:
    """One sink's queue and the task that feeds it."""

    def __init__(self, sink: Sink, queue_size: int) -> None:
        self.sink = sink
        self.name = sink_name(sink)
        self.queue: asyncio.Queue[RecordItem] = asyncio.Queue(queue_size)
        self.dropped = 0
        self.failed = 0
        self.task: asyncio.Task[None] | None = None
        # A whole-call sink (the JSON file) acts on a call's open, finish and amendments only:
        # queueing its turns and events too let a slow disk fill the queue with items it
        # ignores, and drop a call's end (the soak saw it at 50 calls on a starved CPU).
        self.whole_call = type(sink).handle is Sink.handle

    def put(self, item: RecordItem) -> None:
        if self.whole_call and not isinstance(item, _WHOLE_CALL_ITEMS):
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            # Logged at 1, 2, 4, 8, … drops: visible, without flooding the log from the audio path.
            if _is_power_of_two(self.dropped):
                log.warning(
                    "recorder: sink %s is behind, queue full; dropped %d item(s) so far",
                    self.name,
                    self.dropped,
                )

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self.sink.handle(item)
            except Exception:
                self.failed += 1
                log.exception(
                    "recorder: sink %s failed on %s of call %s",
                    self.name,
                    type(item).__name__,
                    item.call.call_id,
                )
            finally:
                self.queue.task_done()


class Recorder:
    """Fans call records out to sinks. One per process, shared by all calls."""

    def __init__(
        self, sinks: Sequence[Sink], queue_size: int = 10000, *, clock: Clock = utcnow
    ) -> None:
        self._workers = [_SinkWorker(sink, queue_size) for sink in sinks]
        self._clock = clock
        self._started = False
        self._closed = False

    @property
    def sinks(self) -> list[Sink]:
        """The sinks items fan out to, in order."""
        return [worker.sink for worker in self._workers]

    @property
    def dropped(self) -> int:
        """Items not handed to a sink because its queue was full (or the recorder was closed)."""
        return sum(worker.dropped for worker in self._workers)

    @property
    def failed(self) -> int:
        """Items a sink raised on."""
        return sum(worker.failed for worker in self._workers)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for worker in self._workers:
            try:
                await worker.sink.start()
            except Exception:
                # The sink stays: per-item failures are logged, and it may recover (reconnect).
                log.exception("recorder: sink %s failed to start", worker.name)
            worker.task = asyncio.create_task(worker.run(), name=f"recorder-{worker.name}")

    def open_call(self, call: CallRecord) -> CallLog:
        call_log = CallLog(self, call.model_copy(), self._clock)
        self.publish(CallOpened(call_log.record))
        return call_log

    def amend(self, call: CallRecord, **changes: Any) -> CallRecord:
        """Changes a finished call's record afterwards (the summary made after the call, or the
        outcome), for every sink, through the same queues (and the store sinks' spools) as the
        call's other items; returns the amended record. Synchronous and non-blocking.

        `call` is the finished record (e.g. the snapshot's); only fields in AMENDABLE may change.
        """
        unknown = set(changes) - AMENDABLE
        if unknown:
            raise ValueError(
                f"only {', '.join(sorted(AMENDABLE))} of a finished call can change, "
                f"not {', '.join(sorted(unknown))}"
            )
        if call.status == "in_progress":
            raise ValueError(f"call {call.call_id} is not finished; use CallLog.update")
        amended = CallRecord.model_validate({**call.model_dump(), **changes})
        if changes:
            self.publish(CallAmended(amended, {k: getattr(amended, k) for k in changes}))
        return amended

    def publish(self, item: RecordItem) -> None:
        """Queues `item` for every sink without waiting."""
        if self._closed:
            for worker in self._workers:
                worker.dropped += 1
            log.warning(
                "recorder: closed; %s of call %s not recorded",
                type(item).__name__,
                item.call.call_id,
            )
            return
        for worker in self._workers:
            worker.put(item)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Writes what is queued (waiting at most `timeout_s`), then closes the sinks."""
        if self._closed:
            return
        self._closed = True
        # Each started worker with its task, so the task's type is known not to be None.
        running = [(worker, worker.task) for worker in self._workers if worker.task is not None]
        if running:
            drains = [asyncio.create_task(worker.queue.join()) for worker, _ in running]
            _, pending = await asyncio.wait(drains, timeout=timeout_s)
            for drain in pending:
                drain.cancel()
            for worker, task in running:
                if worker.queue.qsize():
                    log.warning(
                        "recorder: sink %s did not finish in %g s; %d item(s) not written",
                        worker.name,
                        timeout_s,
                        worker.queue.qsize(),
                    )
                task.cancel()
            await asyncio.gather(*(task for _, task in running), return_exceptions=True)
        for worker in self._workers:
            try:
                await worker.sink.aclose()
            except Exception:
                log.exception("recorder: sink %s failed to close", worker.name)


def _jsonable(value: Any) -> Any:
    """Event data as JSON-friendly values, so one odd object never breaks a sink's write."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


class CallLog:
    """The record of one call, as a session builds it. Not thread-safe: use it from the loop."""

    def __init__(self, recorder: Recorder, record: CallRecord, clock: Clock) -> None:
        self._recorder = recorder
        self._record = record
        self._clock = clock
        self._turns: dict[int, TurnRecord] = {}
        self._log: list[LogEvent] = []
        self._finished = False

    @property
    def call_id(self) -> str:
        return self._record.call_id

    @property
    def record(self) -> CallRecord:
        """The call as recorded now (read-only: change it with `update`)."""
        return self._record

    @property
    def turns(self) -> list[TurnRecord]:
        return sorted(self._turns.values(), key=lambda turn: turn.idx)

    @property
    def log(self) -> list[LogEvent]:
        return list(self._log)

    @property
    def finished(self) -> bool:
        return self._finished

    def add_turn(self, turn: TurnRecord) -> None:
        """Records a new turn; its `idx` (assigned by the session) must be new."""
        if turn.idx in self._turns:
            raise ValueError(f"turn {turn.idx} of call {self.call_id} exists; use update_turn")
        self._write_turn(turn)

    def update_turn(self, turn: TurnRecord) -> None:
        """Replaces the turn with the same `idx` (e.g. heard_text after a barge-in)."""
        if turn.idx not in self._turns:
            raise KeyError(f"no turn {turn.idx} in call {self.call_id}; use add_turn")
        self._write_turn(turn)

    def event(self, name: str, **data: Any) -> None:
        """Appends a pipeline-log event stamped with the current time."""
        if self._ignored_after_finish(f"event {name}"):
            return
        entry = LogEvent(at=self._clock(), event=name, data=_jsonable(data))
        self._log.append(entry)
        self._recorder.publish(EventLogged(self._record, entry))

    def update(self, **fields: Any) -> None:
        """Changes call fields (answered_at, metadata, …); unknown or invalid fields raise."""
        if self._ignored_after_finish("update"):
            return
        self._set(**fields)
        self._recorder.publish(CallUpdated(self._record))

    def snapshot(self) -> CallSnapshot:
        """The call, its turns and its pipeline log as recorded now."""
        return CallSnapshot(call=self._record, turns=self.turns, pipeline_log=self.log)

    def finish(
        self,
        status: CallStatus,
        end_reason: str | None,
        ended_at: datetime | None = None,
        *,
        outcome: str | Callable[[CallSnapshot], str | None] | None = None,
    ) -> None:
        """Closes the record: sets ended_at, duration_sec and turns, and emits the final write.

        `outcome` is the call's outcome, or a function that decides it from the finished
        snapshot (e.g. `sessions.outcome.decide_outcome`); if it raises, the outcome stays None
        and the call is still recorded. Only the first call counts; later ones (a cleanup path
        after an error) are ignored.
        """
        if self._finished:
            return
        ended_at = ended_at or self._clock()
        started_at = self._record.started_at
        duration = max(0.0, (ended_at - started_at).total_seconds())
        self._set(
            status=status,
            end_reason=end_reason,
            ended_at=ended_at,
            duration_sec=round(duration, 3),
            turns=len(self._turns),
        )
        self._finished = True
        if callable(outcome):
            try:
                outcome = outcome(self.snapshot())
            except Exception:
                log.exception("recorder: call %s: deciding the outcome failed", self.call_id)
                outcome = None
        if outcome is not None:
            self._set(outcome=outcome)
        self._recorder.publish(CallFinished(self.snapshot()))

    def amend(self, **changes: Any) -> None:
        """Changes the finished call's summary or outcome (see `Recorder.amend`)."""
        if not self._finished:
            raise ValueError(f"call {self.call_id} is not finished; use update")
        self._record = self._recorder.amend(self._record, **changes)

    def _set(self, **fields: Any) -> None:
        self._record = CallRecord.model_validate({**self._record.model_dump(), **fields})

    def _write_turn(self, turn: TurnRecord) -> None:
        if turn.call_id != self.call_id:
            raise ValueError(f"turn of call {turn.call_id} given to call {self.call_id}")
        if self._ignored_after_finish(f"turn {turn.idx}"):
            return
        # A copy: the session may keep mutating its object; queued items must not change.
        turn = turn.model_copy()
        self._turns[turn.idx] = turn
        if self._record.turns != len(self._turns):
            self._record = self._record.model_copy(update={"turns": len(self._turns)})
        self._recorder.publish(TurnWritten(self._record, turn))

    def _ignored_after_finish(self, what: str) -> bool:
        if self._finished:
            log.debug("recorder: call %s already finished; %s not recorded", self.call_id, what)
        return self._finished
