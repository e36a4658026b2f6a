"""Local models shared by a whole process: one worker thread per model, a bounded queue in front of
it, and a registry that loads a model for its first user and frees it after its last.

A model runs one job at a time on its own thread: jobs queue instead of oversubscribing the cores.
Beyond `max_queue` waiting jobs a new one fails fast with ProviderError rather than waiting for
minutes.

A job's timeout bounds its own run, not its wait in the queue: the clock starts when the worker
thread starts the job. Four callers' utterances queued on one model on a busy machine are a queue,
not a failure; a job that hangs is one. How long a job may wait is the queue's business
(`max_queue`), and the caller's (a call that ends cancels what it queued).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from voiceplat.providers.base import ProviderError

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


_workers: weakref.WeakSet[SingleWorker] = weakref.WeakSet()
SERVICE_SMOOTHING = 0.3
"""Weight of the newest job in `service_s`: a change of load shows within a few jobs."""


def model_workers() -> list[SingleWorker]:
    """Every model worker of the process that is still alive, by name (the metrics read them)."""
    return sorted(list(_workers), key=lambda w: w.name)


def saturated() -> list[str]:
    """The models whose queue is full now: a new call would get errors instead of answers, so an
    ingress that can refuse a call (SIP: 503) does. Thread-safe; a snapshot."""
    return [w.name for w in list(_workers) if w.max_queue is not None and w.pending >= w.max_queue]


class SingleWorker:
    """One thread running jobs in order; `pending` counts the jobs queued or running."""

    def __init__(self, thread_name: str, overloaded: str) -> None:
        """`overloaded`: the ProviderError message for a full queue, with a `{pending}` field."""
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self.name = thread_name
        self.pending = 0
        self.max_queue: int | None = None
        """The queue's bound as its last job gave it."""
        self.service_s: float | None = None
        """A job's run time, smoothed over the last few (None before the first): with `pending`
        it estimates how long a new job would wait (telephony/admission.py)."""
        self._lock = threading.Lock()
        self._overloaded = overloaded
        _workers.add(self)

    def _reserve(self, max_queue: int) -> None:
        with self._lock:
            self.max_queue = max_queue
            if self.pending >= max_queue:
                raise ProviderError(self._overloaded.format(pending=self.pending))
            self.pending += 1

    def _finished(self, _future: object = None) -> None:
        with self._lock:
            self.pending -= 1

    def _timed(self, job: Callable[[], T]) -> T:
        """Runs `job` on the worker thread, measuring it into `service_s`."""
        started = time.monotonic()
        try:
            return job()
        finally:
            took = time.monotonic() - started
            with self._lock:
                old = self.service_s
                self.service_s = took if old is None else old + SERVICE_SMOOTHING * (took - old)

    def submit(self, job: Callable[[], T], max_queue: int) -> Future[T]:
        """Queues `job` (or raises ProviderError when the queue is full); a thread future."""
        self._reserve(max_queue)
        future = self.executor.submit(self._timed, job)
        future.add_done_callback(self._finished)  # also runs when cancelled before it started
        return future

    def run(
        self, job: Callable[[], T], max_queue: int, timeout_s: float | None = None
    ) -> asyncio.Future[T]:
        """Queues `job` now (or raises ProviderError when the queue is full); await the result.

        A job whose future was cancelled before it started (the caller hung up or barged in)
        is skipped, so a stale job never holds up the ones queued behind it.

        `timeout_s` counts from the moment the worker starts the job (time in the queue is not
        counted); past it the future fails with TimeoutError. The thread cannot be interrupted:
        it finishes the job, whose result is then dropped, before it starts the next one.
        """
        self._reserve(max_queue)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[T] = loop.create_future()

        def start_clock() -> None:  # on the event loop, when the job starts
            if timeout_s is None or outcome.done():
                return
            expiry = loop.call_later(timeout_s, _expire, outcome, timeout_s)
            outcome.add_done_callback(lambda _: expiry.cancel())

        def work() -> None:
            try:
                if outcome.cancelled():
                    return
                _call_soon(loop, start_clock)  # before the result: the loop runs them in order
                try:
                    value = self._timed(job)
                except Exception as exc:
                    _settle(loop, outcome, exc, None)
                else:
                    _settle(loop, outcome, None, value)
            finally:
                self._finished()

        self.executor.submit(work)
        return outcome


def _expire(outcome: asyncio.Future[T], timeout_s: float) -> None:
    if not outcome.done():
        outcome.set_exception(TimeoutError(f"the job ran longer than {timeout_s:g} s"))


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop is closed: nobody waits for this job
        pass


def _settle(
    loop: asyncio.AbstractEventLoop,
    outcome: asyncio.Future[T],
    error: Exception | None,
    value: T | None,
) -> None:
    """Hands a worker's result to the event loop (if it is still running and anyone waits)."""

    def deliver() -> None:
        if outcome.done():
            return
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(value)  # type: ignore[arg-type]

    _call_soon(loop, deliver)


@dataclass
class _Entry(Generic[V]):
    value: V
    users: int = 0


class SharedModels(Generic[K, V]):
    """Loaded models by key (path and load settings), shared by every provider that asks for one."""

    def __init__(self) -> None:
        self._entries: dict[K, _Entry[V]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: K, load: Callable[[], V]) -> V:
        """The model for `key`, loaded (under the lock: once) if nobody holds it yet."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(load())
            entry.users += 1
            return entry.value

    def release(self, value: V) -> bool:
        """One user fewer; True when that was the last: the caller then frees the model."""
        with self._lock:
            for key, entry in list(self._entries.items()):
                if entry.value is value:
                    entry.users -= 1
                    if entry.users > 0:
                        return False
                    del self._entries[key]
                    return True
        return False
