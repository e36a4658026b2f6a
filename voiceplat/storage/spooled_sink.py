"""The base of the store sinks: a sink that writes to its store through its local spool.

A store sink (PostgreSQL, MongoDB, Redis) never writes to its store from `handle`: it appends the
item, as one clean JSON line, to its spool file `<spool_dir>/<sink>.jsonl` (spool.py has the file
format) and returns. A writer task reads the spool in order, writes batches to the store and then
acknowledges them (the byte offset reached goes to `<sink>.offset`). So:

- the recorder's queue never waits on a store, however slow or dead it is;
- when the store is down the writer retries with exponential backoff while items pile up in the
  file, in order; when it is back they are written, in the same order, by the same code path;
- what was handed to the sink survives a crash of the robot (the line is in the OS's page cache
  the moment `handle` returns; `aclose` fsyncs it) and is written at the next start;
- a batch may be written twice (the robot died after writing it but before acknowledging it):
  every store write is an idempotent upsert keyed by call_id and turn idx, so that is harmless.

When the writer has caught up, the file is truncated, so it only grows while a store is behind.
An item a store refuses for its content (not for being down) is moved to `<sink>.rejected.jsonl`
with the reason and logged; it never blocks the items behind it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from voiceplat.storage.clean import encode_item
from voiceplat.storage.recorder import Sink
from voiceplat.storage.records import RecordItem
from voiceplat.storage.spool import Entry, Spool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How a store sink talks to a store that may be down."""

    first_delay_s: float = 0.2
    max_delay_s: float = 10.0
    op_timeout_s: float = 5.0
    """One batch write (or connect) longer than this counts as the store being down."""
    close_timeout_s: float = 5.0
    """At shutdown, how long a reachable store gets to take what is spooled."""
    batch_items: int = 50
    batch_bytes: int = 256 << 10
    """A batch is prepared on the event loop: kept small, a replay never stalls the audio."""

    def delay(self, failures: int) -> float:
        """Exponential backoff with jitter, so robots do not hammer a store in step."""
        base = min(self.max_delay_s, self.first_delay_s * 2 ** max(0, failures - 1))
        return base * random.uniform(0.5, 1.0)


class PermanentError(Exception):
    """A store refused an item for its content; retrying will not help."""


class StoreUnavailable(Exception):
    """Connecting failed (whatever the reason: a bad DSN is not the data's fault either)."""


class SpooledSink(Sink):
    """A sink that writes to a store through its spool. Subclasses say what to keep and how to
    write it: `wants`, `connect`, `write_batch`, `is_transient`, `needs_reconnect`,
    `disconnect`."""

    name = "store"

    def __init__(self, spool_dir: Path, retry: RetryPolicy | None = None) -> None:
        self.spool = Spool(Path(spool_dir) / f"{self.name}.jsonl")
        self.retry = retry or RetryPolicy()
        self.connected = False
        self.available = True
        """False from a failed write until a write succeeds again."""
        self.replaying = False
        """True while writing what piled up during an outage or a previous run."""
        self.written = 0
        self.rejected = 0
        self.outages = 0
        self.max_pending = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._retry_now = asyncio.Event()
        self._closing = False
        self._gave_up = asyncio.Event()
        self._down_since: float | None = None
        self._failures = 0

    # -- what a store implements ---------------------------------------------------------
    def wants(self, item: RecordItem) -> bool:
        """Whether this store keeps anything of `item` (it is not spooled otherwise)."""
        return True

    async def connect(self) -> None:
        """Connects (and prepares the schema); called by the writer while not connected."""

    async def write_batch(self, entries: list[Entry]) -> None:
        """Writes entries, in order, idempotently. Raises on failure (see `is_transient`)."""
        raise NotImplementedError

    def is_transient(self, exc: Exception) -> bool:
        """True when the store is down or busy (retry later), False when it refused the data."""
        return isinstance(exc, StoreUnavailable | OSError | TimeoutError | ConnectionError)

    def needs_reconnect(self, exc: Exception) -> bool:
        """True when `connect` must run again (e.g. the schema is gone); the write is retried."""
        return False

    async def disconnect(self) -> None:
        """Closes the store's connections."""

    # -- the Sink protocol ---------------------------------------------------------------
    async def start(self) -> None:
        left = self.spool.open()
        if left:
            self.replaying = True
            log.info("%s: %d record item(s) left by a previous run; writing them", self.name, left)
        else:
            self._drained.set()
        try:
            await self._connect()
        except Exception as exc:
            self._mark_down(exc)
        self._writer = asyncio.create_task(self._run(), name=f"{self.name}-writer")

    async def handle(self, item: RecordItem) -> None:
        if not self.wants(item):
            return
        self.spool.append(encode_item(item).line)
        self.max_pending = max(self.max_pending, self.spool.pending)
        self._drained.clear()
        self._wake.set()

    async def aclose(self) -> None:
        """Writes what is spooled if the store takes it now (one more try at once, then until
        it fails again or `close_timeout_s`); what is left stays in the spool for the next start."""
        if self.spool.pending and self._writer is not None and not self._writer.done():
            self._closing = True
            self._retry_now.set()
            gave_up = asyncio.create_task(self._gave_up.wait())
            drained = asyncio.create_task(self._drained.wait())
            await asyncio.wait(
                [gave_up, drained],
                timeout=self.retry.close_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            gave_up.cancel()
            drained.cancel()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if self.spool.pending:
            log.warning(
                "%s: %d record item(s) not written; kept in %s for the next start",
                self.name,
                self.spool.pending,
                self.spool.path,
            )
        self.spool.close()
        try:
            await self.disconnect()
        except Exception:
            log.exception("%s: failed to close the connection", self.name)

    # -- for tests and benchmarks -------------------------------------------------------
    async def drained(self) -> None:
        """Returns when everything handed to the sink so far is written (or rejected)."""
        await self._drained.wait()

    # -- the writer ----------------------------------------------------------------------
    async def _connect(self) -> None:
        if not self.connected:
            try:
                async with asyncio.timeout(self.retry.op_timeout_s):
                    await self.connect()
            except Exception as exc:
                raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
            self.connected = True

    async def _run(self) -> None:
        while True:
            if not self.spool.pending:
                self.replaying = False
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self.spool.read(self.retry.batch_items, self.retry.batch_bytes)
            if not batch:  # cannot happen unless the file was changed behind our back
                log.error(
                    "%s: spool %s is shorter than counted; resetting", self.name, self.spool.path
                )
                self.spool.ack(self.spool.offset, self.spool.pending)
                continue
            try:
                await self._write_lines(batch)
            except Exception as exc:
                if not self.is_transient(exc):  # a bug, not the data (_write_lines sets that aside)
                    log.exception("%s: unexpected failure; retrying", self.name)
                self._mark_down(exc)
                if self._closing:
                    self._gave_up.set()
                    return
                await self._backoff()

    async def _backoff(self) -> None:
        """Waits before the next try; `aclose` cuts the wait short for one last try."""
        self._retry_now.clear()
        try:
            async with asyncio.timeout(self.retry.delay(self._failures)):
                await self._retry_now.wait()
        except TimeoutError:
            pass

    async def _write_lines(self, batch: list[tuple[bytes, int]]) -> None:
        """Writes a batch; a refused batch is retried line by line to set the bad ones aside."""
        entries = []
        for line, _ in batch:
            try:
                entries.append(json.loads(line))
            except ValueError as exc:  # cannot happen unless the file was edited; never block
                entries.append(exc)
        if not any(isinstance(entry, Exception) for entry in entries):
            try:
                await self._write(entries)
            except Exception as exc:
                if self.is_transient(exc):
                    raise
                log.warning("%s: a batch was refused (%s); writing it item by item", self.name, exc)
            else:
                self._done(batch[-1][1], len(batch))
                return
        for (line, offset), entry in zip(batch, entries, strict=True):
            try:
                if isinstance(entry, Exception):
                    raise PermanentError(f"unreadable spool line: {entry}")
                await self._write([entry])
            except Exception as exc:
                if self.is_transient(exc):
                    raise
                self._reject(line, exc)
            self._done(offset, 1)

    async def _write(self, entries: list[Entry]) -> None:
        await self._connect()
        try:
            async with asyncio.timeout(self.retry.op_timeout_s):
                await self.write_batch(entries)
        except Exception as exc:
            if self.needs_reconnect(exc):
                self.connected = False
            raise

    def _done(self, offset: int, count: int) -> None:
        self.spool.ack(offset, count)
        self.written += count
        if not self.available:
            down_s = time.monotonic() - (self._down_since or time.monotonic())
            log.info("%s: store is back after %.1f s; writing what was spooled", self.name, down_s)
            self.available = True
            self._down_since = None
        self._failures = 0

    def _mark_down(self, exc: Exception) -> None:
        self._failures += 1
        self.replaying = True
        if self.available:
            self.available = False
            self.outages += 1
            self._down_since = time.monotonic()
            log.warning(
                "%s: store unavailable (%s: %s); spooling to %s and retrying",
                self.name,
                type(exc).__name__,
                exc or f"no answer within {self.retry.op_timeout_s:g} s",
                self.spool.path,
            )
        else:
            log.debug("%s: still unavailable (%s)", self.name, exc)

    def _reject(self, line: bytes, exc: Exception) -> None:
        self.rejected += 1
        reason = f"{type(exc).__name__}: {exc}"
        call_id = _call_id(line)
        log.error(
            "%s: call %s: a record item was refused and set aside in %s: %s",
            self.name,
            call_id,
            self.spool.rejected_path,
            reason[:500],
        )
        try:
            self.spool.reject(line, reason)
        except OSError:
            log.exception("%s: cannot keep the refused item", self.name)


def _call_id(line: bytes) -> str:
    try:
        return str(json.loads(line)["call"]["call_id"])
    except (ValueError, KeyError, TypeError):
        return "?"
