"""Retries of cloud requests: never after the first item a caller may already have heard.

`retrying_stream` / `retrying_call` run an attempt, retrying with exponential backoff, but only
until the first item (a text piece, an audio chunk) was produced: a caller must never hear half an
answer twice. One time limit covers all attempts up to that first item.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import httpx

from voiceplat.providers.base import ProviderError
from voiceplat.providers.cloud_http.client import RETRYABLE_ERRORS
from voiceplat.providers.cloud_http.errors import HttpFailure

T = TypeVar("T")


def backoff_delays(retries: int, base_s: float) -> list[float]:
    """Pauses before retries 1..n: base, 2*base, 4*base, ..."""
    return [base_s * 2**n for n in range(retries)]


class _End:
    """The attempt finished without producing anything."""


_END = _End()


async def retrying_stream(
    attempt: Callable[[], AsyncGenerator[T, None]],
    *,
    retries: int,
    backoff_s: float,
    first_timeout_s: float,
    fail: Callable[[str], ProviderError],
    first_what: str = "first token",
    gap_timeout_s: float | None = None,
) -> AsyncGenerator[T, None]:
    """Yields the items of `attempt()`, retrying it while nothing was yielded yet.

    An attempt is retried when it raises a retryable `HttpFailure` or a transport error before its
    first item; `first_timeout_s` bounds everything up to that item (retries and pauses included).
    Afterwards a failure ends the stream with `fail(message)`; `gap_timeout_s` is only named in
    the message (the client's read timeout enforces it). `ProviderError`s pass through unchanged;
    any other exception becomes one, so what leaves here is always a `fail(...)` (masked) error.
    """
    items, first = await _first_item(attempt, retries, backoff_s, first_timeout_s, fail, first_what)
    try:
        if first is _END:
            return
        yield first  # type: ignore[misc]
        while True:
            try:
                item = await anext(items)
            except StopAsyncIteration:
                return
            except httpx.TimeoutException as exc:
                gap = gap_timeout_s if gap_timeout_s is not None else first_timeout_s
                raise fail(f"no data for {gap:g} s mid-answer") from exc
            except HttpFailure as exc:
                raise fail(exc.message) from exc
            except httpx.HTTPError as exc:
                raise fail(f"stream broken mid-answer ({exc!r})") from exc
            except ProviderError:
                raise
            except Exception as exc:
                raise _unexpected(exc, fail) from None
            yield item
    finally:
        await items.aclose()


def _unexpected(exc: Exception, fail: Callable[[str], ProviderError]) -> ProviderError:
    """Any other failure, as a masked ProviderError: its own text might hold a secret (a proxy
    URL, say), so it is not chained to the error the session records."""
    return fail(f"{type(exc).__name__}: {exc}")


async def _first_item(
    attempt: Callable[[], AsyncGenerator[T, None]],
    retries: int,
    backoff_s: float,
    first_timeout_s: float,
    fail: Callable[[str], ProviderError],
    first_what: str,
) -> tuple[AsyncGenerator[T, None], T | _End]:
    delays = backoff_delays(retries, backoff_s)
    last: HttpFailure | None = None
    try:
        async with asyncio.timeout(first_timeout_s):
            for number in range(retries + 1):
                if number:
                    await asyncio.sleep(delays[number - 1])
                items = attempt()
                try:
                    first = await anext(items, _END)
                except HttpFailure as failure:
                    await items.aclose()
                    if not failure.retryable:
                        raise fail(failure.message) from failure
                    last = failure
                    continue
                except RETRYABLE_ERRORS as exc:
                    await items.aclose()
                    last = HttpFailure(f"connection broken before the {first_what} ({exc!r})")
                    continue
                except httpx.TimeoutException:
                    await items.aclose()
                    raise
                except httpx.HTTPError as exc:
                    await items.aclose()
                    raise fail(f"request failed ({exc!r})") from exc
                except ProviderError:
                    await items.aclose()
                    raise
                except Exception as exc:
                    await items.aclose()
                    raise _unexpected(exc, fail) from None
                except BaseException:
                    await items.aclose()
                    raise
                return items, first
            assert last is not None
            raise fail(f"{last.message} (after {retries + 1} attempts)")
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise fail(f"no {first_what} within {first_timeout_s:g} s") from exc


async def retrying_call(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff_s: float,
    timeout_s: float,
    fail: Callable[[str], ProviderError],
    what: str = "answer",
) -> T:
    """`call()` with the retry rules of `retrying_stream` (its one result is the first item)."""

    async def once() -> AsyncGenerator[T, None]:
        yield await call()

    stream = retrying_stream(
        once,
        retries=retries,
        backoff_s=backoff_s,
        first_timeout_s=timeout_s,
        fail=fail,
        first_what=what,
    )
    async with contextlib.aclosing(stream):
        async for result in stream:
            return result
    raise fail(f"no {what}")  # unreachable: `once` always yields or raises
