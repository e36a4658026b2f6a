"""Timeouts for provider streams: a hung provider must not hang the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


class ProviderTimeout(TimeoutError):
    pass


async def with_gap_timeout(stream: AsyncIterator[T], seconds: float, what: str) -> AsyncIterator[T]:
    """Yields from `stream`, failing if any single item takes longer than `seconds`."""
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
