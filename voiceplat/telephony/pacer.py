"""One timer for the outbound audio of every call in the process.

Each call's next chunk is due at a known moment (when one chunk of room has opened in the peer's
buffer). A sleeping task per call costs a timer and a task wake-up per chunk per call; here one
heap of due times and one timer callback serve them all. Chunks due within `window_s` of the
moment the callback runs go out together, so hundreds of calls cost at most one wake-up per
window; a chunk is then at most `window_s` early and never late by the pacer's own doing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import weakref
from typing import Protocol

log = logging.getLogger(__name__)

WINDOW_S = 0.002


class Paced(Protocol):
    def pace(self, now: float, horizon: float) -> float | None:
        """Sends what is due by `horizon`; returns when it is next due, None when idle."""

    def pacing_failed(self, exc: Exception) -> None: ...


class Pacer:
    def __init__(self, loop: asyncio.AbstractEventLoop, window_s: float = WINDOW_S) -> None:
        self._loop = loop
        self._window = window_s
        self._heap: list[tuple[float, int, Paced]] = []
        self._due: dict[Paced, float] = {}  # the one live heap entry per client
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._running = False

    def wake(self, client: Paced) -> None:
        """The client has something to send: look at it in this loop iteration (if not scheduled)."""
        if client not in self._due:
            self._schedule(client, self._loop.time())

    def remove(self, client: Paced) -> None:
        self._due.pop(client, None)  # its heap entries become stale

    def _schedule(self, client: Paced, at: float) -> None:
        self._due[client] = at
        heapq.heappush(self._heap, (at, next(self._order), client))
        if not self._running:
            self._arm()

    def _arm(self) -> None:
        """Points the one timer at the earliest live entry."""
        heap, due = self._heap, self._due
        while heap and due.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # stale: rescheduled or removed
        at = heap[0][0] if heap else float("inf")
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(at, self._run)
            self._timer_at = at

    def _run(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self._loop.time()
        horizon = now + self._window
        heap, due = self._heap, self._due
        self._running = True
        try:
            while heap and heap[0][0] <= horizon:
                at, _, client = heapq.heappop(heap)
                if due.get(client) != at:
                    continue  # stale: rescheduled or removed
                del due[client]
                try:
                    later = client.pace(now, horizon)
                except Exception as exc:  # one call's failure must not stop the others' audio
                    log.exception("pacing failed")
                    client.pacing_failed(exc)
                    continue
                if later is not None:
                    self._schedule(client, later)
        finally:
            self._running = False
            self._arm()


_pacers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pacer] = weakref.WeakKeyDictionary()


def shared_pacer() -> Pacer:
    """The running loop's pacer."""
    loop = asyncio.get_running_loop()
    pacer = _pacers.get(loop)
    if pacer is None:
        pacer = _pacers[loop] = Pacer(loop)
    return pacer
