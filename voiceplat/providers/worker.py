"""Local models shared by a whole process: one worker thread per model, a bounded queue in front of
it, and a registry that loads a model for its first user and frees it after its last.

A model runs one job at a time on its own thread: jobs queue instead of oversubscribing the cores.
Beyond `max_queue` waiting jobs a new one fails fast with ProviderError rather than waiting for
minutes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from voiceplat.providers.base import ProviderError

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleWorker:
    """One thread running jobs in order; `pending` counts the jobs queued or running."""

    def __init__(self, thread_name: str, overloaded: str) -> None:
        """`overloaded`: the ProviderError message for a full queue, with a `{pending}` field."""
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self.pending = 0
        self._lock = threading.Lock()
        self._overloaded = overloaded

    def _reserve(self, max_queue: int) -> None:
        with self._lock:
            if self.pending >= max_queue:
                raise ProviderError(self._overloaded.format(pending=self.pending))
            self.pending += 1

    def _finished(self, _future: object = None) -> None:
        with self._lock:
            self.pending -= 1

    def submit(self, job: Callable[[], T], max_queue: int) -> Future[T]:
        """Queues `job` (or raises ProviderError when the queue is full); a thread future."""
        self._reserve(max_queue)
        future = self.executor.submit(job)
        future.add_done_callback(self._finished)  # also runs when cancelled before it started
        return future

    def run(self, job: Callable[[], T], max_queue: int) -> asyncio.Future[T]:
        """Queues `job` now (or raises ProviderError when the queue is full); await the result.

        A job whose future was cancelled before it started (the caller hung up or barged in)
        is skipped, so a stale job never holds up the ones queued behind it.
        """
        self._reserve(max_queue)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[T] = loop.create_future()

        def work() -> None:
            try:
                if outcome.cancelled():
                    return
                try:
                    value = job()
                except Exception as exc:
                    _settle(loop, outcome, exc, None)
                else:
                    _settle(loop, outcome, None, value)
            finally:
                self._finished()

        self.executor.submit(work)
        return outcome


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

    try:
        loop.call_soon_threadsafe(deliver)
    except RuntimeError:  # the loop is closed: nobody waits for this result
        pass


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
