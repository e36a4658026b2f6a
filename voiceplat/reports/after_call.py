"""After-call work: the summary, the record's amendment, the Telegram report — off the call path.

`submit(snapshot)` is called when a call's record is finished; it never blocks and never fails
the call. One worker task takes the finished calls in order: the LLM writes the summary, the
record is amended with it, and the report goes to Telegram if the robot's filter wants it. The
queue is bounded: when calls finish faster than reports go out (the Bot API is down for an hour),
the oldest waiting call is dropped and logged, so memory stays bounded. `aclose` lets the waiting
calls go out for `close_timeout_s`, then gives the rest up (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from voiceplat.providers.base import LLM
from voiceplat.reports.format import Report, build_report, call_outcome
from voiceplat.reports.settings import ReportsSettings, TelegramSettings, telegram_env
from voiceplat.reports.summary import summarize
from voiceplat.reports.telegram import TelegramClient, TelegramError
from voiceplat.storage.records import CallRecord, CallSnapshot

log = logging.getLogger(__name__)

Summarize = Callable[[CallSnapshot], Awaitable[str | None]]
Amend = Callable[[CallRecord, str], object]
"""Stores a finished call's summary: (the call's record, its summary); synchronous and
non-blocking, e.g. `lambda call, summary: recorder.amend(call, summary=summary)`."""


class Reporter(Protocol):
    async def send_report(self, report: Report) -> int: ...

    async def aclose(self) -> None: ...


def wants_report(settings: TelegramSettings, call: CallRecord) -> bool:
    """The robot's filter: only failed calls, only some outcomes."""
    outcome = call_outcome(call)
    if settings.only_failed and call.status != "failed" and outcome != "failed":
        return False
    return settings.outcomes is None or outcome in settings.outcomes


class AfterCall:
    def __init__(
        self,
        settings: ReportsSettings,
        *,
        summarize: Summarize | None = None,
        amend: Amend | None = None,
        reporter: Reporter | None = None,
        idle: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """`idle`: waited for before each summary (a local LLM's: no call is in progress, so a
        summary never delays a caller's answer)."""
        self.settings = settings
        self._idle = idle
        self._summarize = summarize if settings.summary.enabled else None
        self._amend = amend
        self._reporter = reporter if settings.telegram.enabled else None
        self._queue: asyncio.Queue[CallSnapshot] = asyncio.Queue(settings.queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self.summarized = 0
        self.reported = 0
        self.failed = 0
        self.dropped = 0

    @classmethod
    def from_env(
        cls,
        settings: ReportsSettings,
        env: Mapping[str, str],
        *,
        llm: LLM | None,
        amend: Amend | None = None,
        idle: Callable[[], Awaitable[object]] | None = None,
    ) -> AfterCall:
        """Reports go to Telegram when TG_TOKEN and TG_CHAT_ID are set; summaries need an LLM."""
        reporter = None
        found = telegram_env(env)
        if settings.telegram.enabled and found is not None:
            token, chat, api_url = found
            reporter = TelegramClient(token, chat, settings.telegram, api_url=api_url)
        write: Summarize | None = None
        if llm is not None:
            summary = settings.summary

            async def write(snapshot: CallSnapshot) -> str | None:
                return await summarize(
                    llm, snapshot, summary.max_tokens, timeout_s=summary.timeout_s
                )

        return cls(settings, summarize=write, amend=amend, reporter=reporter, idle=idle)

    @property
    def active(self) -> bool:
        """Whether there is any after-call work to do (a summary or a report)."""
        return self._summarize is not None or self._reporter is not None

    async def start(self) -> None:
        if self._worker is None and self.active:
            self._worker = asyncio.create_task(self._work(), name="after-call")

    def submit(self, snapshot: CallSnapshot) -> None:
        """Queues a finished call; never blocks, never raises."""
        if not self.active:
            return
        if self._closed:
            log.warning("call %s finished after shutdown began: no report", snapshot.call.call_id)
            return
        if self._queue.full():
            oldest = self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            log.warning(
                "after-call queue full (%d): call %s dropped without summary or report",
                self.settings.queue_size,
                oldest.call.call_id,
            )
        self._queue.put_nowait(snapshot)

    async def drained(self) -> None:
        """Waits until every submitted call was handled (tests; shutdown)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            snapshot = await self._queue.get()
            try:
                await self._handle(snapshot)
            except Exception:  # one call's failure must not stop the reports of the next ones
                log.exception("after-call work of call %s failed", snapshot.call.call_id)
            finally:
                self._queue.task_done()

    async def _handle(self, snapshot: CallSnapshot) -> None:
        call = snapshot.call
        summary = None
        if self._summarize is not None:
            if self._idle is not None:
                await self._idle()
            summary = await self._summarize(snapshot)
            if summary:
                self.summarized += 1
                if self._amend is not None:
                    try:
                        self._amend(call, summary)
                    except Exception as exc:  # the report still goes out with the summary
                        log.warning("call %s: the summary was not stored: %s", call.call_id, exc)
        if self._reporter is None or not wants_report(self.settings.telegram, call):
            return
        telegram = self.settings.telegram
        report = build_report(
            snapshot, summary, max_chars=telegram.max_message_chars, zone=telegram.timezone
        )
        try:
            await self._reporter.send_report(report)
        except TelegramError as exc:
            self.failed += 1
            log.error("call %s: the Telegram report was not sent: %s", call.call_id, exc)
            return
        self.reported += 1

    async def aclose(self) -> None:
        """Lets waiting calls go out for `close_timeout_s`, then stops (what is left is logged)."""
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            try:
                async with asyncio.timeout(self.settings.close_timeout_s):
                    await self._queue.join()
            except TimeoutError:
                log.warning(
                    "shutdown: %d finished call(s) left without summary or report",
                    self._queue.qsize() + 1,
                )
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._reporter is not None:
            await self._reporter.aclose()
