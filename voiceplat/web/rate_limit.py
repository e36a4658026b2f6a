"""A token bucket per client: the seed services run the robot's models, which a loop of requests
would monopolise (the robot's calls share them)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_CLIENTS = 10_000
"""Buckets kept before the full ones (clients idle for a minute) are forgotten."""


class RateLimiter:
    """`per_minute` requests a minute per key, in bursts of up to `burst` (default: `per_minute`).

    `per_minute <= 0` disables the limit. `clock`: monotonic seconds (tests pass their own)."""

    def __init__(
        self,
        per_minute: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.capacity = burst if burst is not None else per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        """key -> (tokens left, when they were counted)."""

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0

    def take(self, key: str) -> float:
        """Spends one token of `key`'s bucket: 0 when allowed, else the seconds until one is there."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.per_second

    def retry_after(self, wait_s: float) -> str:
        """The Retry-After header's value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait_s)))

    def _tokens(self, key: str, now: float) -> float:
        found = self._buckets.get(key)
        if found is None:
            if len(self._buckets) >= MAX_CLIENTS:
                self._forget_full(now)
            return self.capacity
        tokens, then = found
        return min(self.capacity, tokens + (now - then) * self.per_second)

    def _forget_full(self, now: float) -> None:
        full = [
            key
            for key, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self.per_second >= self.capacity
        ]
        for key in full:
            del self._buckets[key]
