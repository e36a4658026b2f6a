"""The after-call queue: summary, amend and Telegram report of each finished call, in order,
never blocking, bounded (no network: a reporter that keeps what it is given)."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.test_reports import DIALOG, HANG_S, fake_llm, snapshot
from voiceplat.reports import AfterCall, Report, ReportsSettings
from voiceplat.storage.records import CallRecord, CallSnapshot

# the after-call queue


class Reports:
    """A reporter that keeps reports; `gate` holds each send until the test lets it go."""

    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[Report] = []
        self.fail = fail
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()
        self.closed = False

    async def send_report(self, report: Report) -> int:
        from voiceplat.reports import TelegramError

        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        if self.fail:
            raise TelegramError("sendMessage: HTTP 400: Bad Request: chat not found")
        self.sent.append(report)
        return len(self.sent)

    async def aclose(self) -> None:
        self.closed = True


async def test_after_call_summarises_amends_and_reports_in_order() -> None:
    reports = Reports()
    amended: list[tuple[str, str]] = []
    summaries = iter(["Первый.", None, "Третий."])

    async def write(snap: CallSnapshot) -> str | None:
        return next(summaries)

    work = AfterCall(
        ReportsSettings(),
        summarize=write,
        amend=lambda call, summary: amended.append((call.call_id, summary)),
        reporter=reports,
    )
    await work.start()
    for call_id in ("a", "b", "c"):
        work.submit(snapshot(*DIALOG, call_id=call_id))
    async with asyncio.timeout(HANG_S):
        await work.drained()
    assert amended == [("a", "Первый."), ("c", "Третий.")]
    assert [r.text.count("Кратко:") for r in reports.sent] == [1, 0, 1]
    assert "Кратко: Третий." in reports.sent[2].text
    assert (work.summarized, work.reported, work.failed) == (2, 3, 0)
    await work.aclose()
    assert reports.closed


async def test_summaries_wait_until_no_call_is_in_progress() -> None:
    """A local LLM serves the calls too: a summary must not delay a caller's answer."""
    robot_idle, at_gate, asked = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def idle() -> None:
        at_gate.set()
        await robot_idle.wait()

    async def write(snap: CallSnapshot) -> str | None:
        asked.set()
        return "Кратко."

    work = AfterCall(ReportsSettings(), summarize=write, reporter=Reports(), idle=idle)
    await work.start()
    work.submit(snapshot(*DIALOG))
    async with asyncio.timeout(HANG_S):
        await at_gate.wait()
    assert not asked.is_set()
    robot_idle.set()
    async with asyncio.timeout(HANG_S):
        await work.drained()
    assert asked.is_set() and work.summarized == 1
    await work.aclose()


async def test_filtered_calls_get_a_summary_but_no_report() -> None:
    reports = Reports()
    amended: list[str] = []

    async def write(snap: CallSnapshot) -> str | None:
        return "Кратко."

    settings = ReportsSettings.model_validate({"telegram": {"outcomes": ["booked"]}})
    work = AfterCall(
        settings, summarize=write, amend=lambda c, s: amended.append(c.call_id), reporter=reports
    )
    await work.start()
    work.submit(snapshot(*DIALOG, call_id="answered", outcome="answered"))
    work.submit(snapshot(*DIALOG, call_id="booked", outcome="booked"))
    async with asyncio.timeout(HANG_S):
        await work.drained()
    assert amended == ["answered", "booked"]
    assert len(reports.sent) == 1 and "Итог: записан (booked)" in reports.sent[0].text
    await work.aclose()


async def test_a_failed_report_or_amend_does_not_stop_the_next_call() -> None:
    reports = Reports(fail=True)

    def broken_amend(call: CallRecord, summary: str) -> None:
        raise RuntimeError("recorder closed")

    async def write(snap: CallSnapshot) -> str | None:
        return "Кратко."

    work = AfterCall(ReportsSettings(), summarize=write, amend=broken_amend, reporter=reports)
    await work.start()
    work.submit(snapshot(*DIALOG, call_id="a"))
    async with asyncio.timeout(HANG_S):
        await work.drained()
    reports.fail = False
    work.submit(snapshot(*DIALOG, call_id="b"))
    async with asyncio.timeout(HANG_S):
        await work.drained()
    assert (work.failed, work.reported) == (1, 1)
    assert "Кратко: Кратко." in reports.sent[0].text
    await work.aclose()


async def test_a_full_queue_drops_the_oldest_waiting_call(caplog: pytest.LogCaptureFixture) -> None:
    reports = Reports()
    reports.gate = asyncio.Event()
    settings = ReportsSettings.model_validate({"queue_size": 2})
    work = AfterCall(settings, reporter=reports)
    await work.start()
    work.submit(snapshot(*DIALOG, call_id="first"))
    async with asyncio.timeout(HANG_S):
        await reports.waiting.wait()  # the worker holds "first"; the queue is empty
    for call_id in ("second", "third", "fourth"):
        work.submit(snapshot(*DIALOG, call_id=call_id))  # never blocks
    assert work.dropped == 1
    assert "call second dropped" in caplog.text
    reports.gate.set()
    async with asyncio.timeout(HANG_S):
        await work.drained()
    sent = [line for r in reports.sent for line in r.text.splitlines() if line.startswith("ID")]
    assert sent == ["ID звонка: first", "ID звонка: third", "ID звонка: fourth"]
    await work.aclose()


async def test_close_gives_up_waiting_calls_after_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reports = Reports()
    reports.gate = asyncio.Event()  # never set: the Bot API hangs
    settings = ReportsSettings.model_validate({"close_timeout_s": 0.05})
    work = AfterCall(settings, reporter=reports)
    await work.start()
    work.submit(snapshot(*DIALOG, call_id="a"))
    work.submit(snapshot(*DIALOG, call_id="b"))
    async with asyncio.timeout(HANG_S):
        await reports.waiting.wait()
        await work.aclose()
    assert "2 finished call(s) left without summary or report" in caplog.text
    assert reports.closed and reports.sent == []
    work.submit(snapshot(*DIALOG, call_id="late"))
    assert "call late finished after shutdown began" in caplog.text


async def test_from_env_without_telegram_or_llm_does_nothing() -> None:
    work = AfterCall.from_env(ReportsSettings(), {}, llm=None)
    assert not work.active
    work.submit(snapshot(*DIALOG))
    await work.start()
    await work.aclose()
    with_llm = AfterCall.from_env(ReportsSettings(), {}, llm=fake_llm())
    assert with_llm.active
    off = ReportsSettings.model_validate({"summary": {"enabled": False}})
    assert not AfterCall.from_env(off, {}, llm=fake_llm()).active
