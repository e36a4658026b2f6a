"""One 20 ms clock for every simulated call in the process.

Hundreds of calls each sleeping in their own 20 ms loop would cost hundreds of timer wake-ups
per frame; one task that wakes once per frame and serves every live call costs one. A call's
tick k happens k frames after it joined, on the shared grid; when the loop runs late the ticker
catches up tick by tick (the media clock of a phone call does not skip), and records how late
it was so an overloaded simulator shows in the report.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

log = logging.getLogger(__name__)


class TickClient(Protocol):
    def on_tick(self, k: int, lag_s: float) -> None: ...

    def on_tick_error(self, exc: Exception) -> None: ...


class Ticker:
    def __init__(self, frame_ms: int) -> None:
        self.period = frame_ms / 1000.0
        self._clients: dict[TickClient, int] = {}  # client -> global tick index of its tick 0
        self._task: asyncio.Task[None] | None = None
        self._origin = 0.0
        self._index = 0
        self.lags: list[float] = []
        """Seconds late, per global tick served."""

    def add(self, client: TickClient) -> float:
        """Registers a call; returns the loop time of its tick 0 (the next tick is its tick 1)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._task is None or self._task.done():
            self._origin, self._index = now, 0
            self._task = loop.create_task(self._run(), name="simulator-ticker")
        offset = max(self._index, int((now - self._origin) / self.period))
        self._clients[client] = offset
        return self._origin + offset * self.period

    def remove(self, client: TickClient) -> None:
        self._clients.pop(client, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.period
        while self._clients:
            now = loop.time()
            due = int((now - self._origin) / period)
            while self._index < due:
                self._index += 1
                lag = now - (self._origin + self._index * period)
                self.lags.append(lag)
                for client, offset in list(self._clients.items()):
                    k = self._index - offset
                    if k <= 0:
                        continue
                    try:
                        client.on_tick(k, lag)
                    except Exception as exc:  # one broken call must not stop the others
                        log.exception("simulated call failed on tick %d", k)
                        self._clients.pop(client, None)
                        client.on_tick_error(exc)
            await asyncio.sleep(self._origin + (self._index + 1) * period - loop.time())


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Ticker]] = (
    weakref.WeakKeyDictionary()
)


def get_ticker(frame_ms: int) -> Ticker:
    """The running loop's shared ticker for this frame size."""
    per_loop = _tickers.setdefault(asyncio.get_running_loop(), {})
    if frame_ms not in per_loop:
        per_loop[frame_ms] = Ticker(frame_ms)
    return per_loop[frame_ms]
