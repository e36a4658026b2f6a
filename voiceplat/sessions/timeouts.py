"""Timeouts for provider streams: a hung provider must not hang the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Protocol, TypeVar

T = TypeVar("T")


class ProviderTimeout(TimeoutError):
    pass


class _TimedProvider(Protocol):
    bounds_own_time: ClassVar[bool]

    @property
    def settings(self) -> Any: ...


def session_timeout(provider: _TimedProvider) -> float | None:
    """The session's own bound on a provider request: `timeout_s` from when the session asks,
    or none when the provider bounds its own work (a local model whose queue must not count)."""
    return None if provider.bounds_own_time else provider.settings.timeout_s


async def with_gap_timeout(
    stream: AsyncIterator[T], seconds: float | None, what: str
) -> AsyncIterator[T]:
    """Yields from `stream`, failing if any single item takes longer than `seconds` (None: never)."""
    iterator = aiter(stream)
    try:
        while True:
            try:
                async with asyncio.timeout(seconds):
                    item = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise ProviderTimeout(f"{what} gave nothing for {seconds:g} s") from None
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
