"""The Telegram client and the after-call worker against a local fake Bot API server over HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.doubles.fake_telegram import CHAT_ID, TOKEN, FakeTelegram
from tests.unit.test_reports import DIALOG, fake_llm, snapshot
from voiceplat.reports import (
    AfterCall,
    ReportsSettings,
    TelegramClient,
    TelegramError,
    build_report,
)
from voiceplat.reports.settings import TelegramSettings
from voiceplat.storage.records import CallRecord

HANG_S = 60


class Waits:
    """The client's sleep: records the pauses it asked for and returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def client(
    server: FakeTelegram, waits: Waits, token: str = TOKEN, **settings: Any
) -> TelegramClient:
    return TelegramClient(
        token, CHAT_ID, TelegramSettings(**settings), api_url=server.url, sleep=waits
    )


async def test_a_short_report_is_one_plain_text_message(telegram: FakeTelegram) -> None:
    bot = client(telegram, Waits())
    report = build_report(snapshot(*DIALOG), "Клиент спросил цену.", max_chars=4096)
    async with asyncio.timeout(HANG_S):
        assert await bot.send_report(report) == 1
    await bot.aclose()
    [sent] = telegram.delivered
    assert sent.method == "sendMessage" and sent.token == TOKEN
    assert sent.content_type == "application/json"
    assert sent.fields == {"chat_id": CHAT_ID, "text": report.text}  # no parse_mode
    assert "Клиент: Сколько стоит приём терапевта?" in sent.fields["text"]


async def test_a_long_report_is_a_txt_document_with_a_caption(telegram: FakeTelegram) -> None:
    bot = client(telegram, Waits())
    telegram.fail_next(502)  # the retry sends the whole multipart body again
    turns = [("u" if i % 2 else "r", f"Реплика {i}: " + "слово " * 30) for i in range(60)]
    report = build_report(snapshot(*turns), "Клиент долго говорил.", max_chars=4096)
    async with asyncio.timeout(HANG_S):
        await bot.send_report(report)
    await bot.aclose()
    [sent] = telegram.delivered
    assert [r.status for r in telegram.received] == [502, 200]
    assert telegram.received[0].files["document"].data == sent.files["document"].data
    assert sent.method == "sendDocument"
    assert sent.content_type.startswith("multipart/form-data")
    assert sent.fields["chat_id"] == CHAT_ID
    assert sent.fields["caption"].startswith("Звонок: clinic\n")
    assert "Кратко: Клиент долго говорил." in sent.fields["caption"]
    upload = sent.files["document"]
    assert upload.filename.endswith(".txt") and upload.content_type == "text/plain"
    text = upload.data.decode("utf-8")
    assert "Клиент: Реплика 59:" in text and "Робот: Реплика 0:" in text


async def test_429_waits_the_retry_after_the_api_asks_for(telegram: FakeTelegram) -> None:
    waits = Waits()
    bot = client(telegram, waits)
    telegram.fail_next(429, retry_after=7)
    async with asyncio.timeout(HANG_S):
        await bot.send_message("Отчёт")
    await bot.aclose()
    assert waits.asked == [7.0]
    assert [r.status for r in telegram.received] == [429, 200]
    assert telegram.delivered[0].fields["text"] == "Отчёт"


async def test_a_429_asking_too_long_a_wait_gives_up(telegram: FakeTelegram) -> None:
    waits = Waits()
    bot = client(telegram, waits, max_retry_after_s=30)
    telegram.fail_next(429, retry_after=3600)
    with pytest.raises(TelegramError, match="asks to wait 3600 s"):
        async with asyncio.timeout(HANG_S):
            await bot.send_message("Отчёт")
    await bot.aclose()
    assert waits.asked == [] and telegram.delivered == []


async def test_5xx_and_a_hang_back_off_then_deliver(telegram: FakeTelegram) -> None:
    waits = Waits()
    # timeout_s is what ends the hung attempt; the test asserts the retries, not the time.
    bot = client(telegram, waits, timeout_s=0.3, backoff_s=0.5)
    telegram.fail_next(500)
    telegram.hang_next()
    async with asyncio.timeout(HANG_S):
        await bot.send_message("Отчёт")
    await bot.aclose()
    assert waits.asked == [0.5, 1.0]
    assert [r.status for r in telegram.received] == [500, 0, 200]
    assert len(telegram.delivered) == 1


async def test_a_wrong_token_is_not_retried_and_never_shown(telegram: FakeTelegram) -> None:
    waits = Waits()
    wrong = "987654321:WrongSecretToken-abc"
    bot = client(telegram, waits, token=wrong)
    with pytest.raises(TelegramError) as failure:
        async with asyncio.timeout(HANG_S):
            await bot.send_message("Отчёт")
    await bot.aclose()
    message = str(failure.value)
    assert "HTTP 401: Unauthorized" in message and "TG_TOKEN is wrong" in message
    assert wrong not in message
    assert waits.asked == [] and len(telegram.received) == 1


async def test_an_unknown_chat_is_not_retried(telegram: FakeTelegram) -> None:
    waits = Waits()
    bot = TelegramClient(TOKEN, "42", TelegramSettings(), api_url=telegram.url, sleep=waits)
    with pytest.raises(TelegramError, match="HTTP 400: Bad Request: chat not found"):
        async with asyncio.timeout(HANG_S):
            await bot.send_message("Отчёт")
    await bot.aclose()
    assert waits.asked == [] and telegram.received[0].fields["chat_id"] == "42"


async def test_network_errors_use_every_attempt_and_hide_the_token() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits = Waits()
    bot = TelegramClient(
        TOKEN,
        CHAT_ID,
        TelegramSettings(attempts=3, backoff_s=2),
        api_url=f"http://127.0.0.1:{port}",
        sleep=waits,
    )
    with pytest.raises(TelegramError) as failure:
        async with asyncio.timeout(HANG_S):
            await bot.send_message("Отчёт")
    await bot.aclose()
    assert "cannot reach the Bot API" in str(failure.value)
    assert "(after 3 attempts)" in str(failure.value)
    assert TOKEN not in str(failure.value)
    assert waits.asked == [2.0, 4.0]


async def test_the_token_is_masked_in_httpx_request_logs(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = client(telegram, Waits())
    telegram.fail_next(500)
    async with asyncio.timeout(HANG_S):
        await bot.send_message("Отчёт")
    await bot.aclose()
    requests = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(requests) == 2 and all("/bot***/sendMessage" in line for line in requests)
    assert TOKEN not in caplog.text
    assert "telegram sendMessage failed (attempt 1 of 5): HTTP 500" in caplog.text


async def test_after_call_sends_the_summary_and_transcript_to_the_chat(
    telegram: FakeTelegram,
) -> None:
    env = {"TG_TOKEN": TOKEN, "TG_CHAT_ID": CHAT_ID, "TG_API_URL": telegram.url}
    amended: list[tuple[CallRecord, str]] = []
    llm = fake_llm(reply="Клиент спросил цену приёма терапевта, робот назвал 1500 рублей.")
    work = AfterCall.from_env(
        ReportsSettings(), env, llm=llm, amend=lambda call, s: amended.append((call, s))
    )
    await work.start()
    telegram.fail_next(429, retry_after=0)
    work.submit(snapshot(*DIALOG, call_id="call-7"))
    async with asyncio.timeout(HANG_S):
        [sent] = await telegram.wait_delivered(1)
        await work.drained()
    await work.aclose()
    summary = "Клиент спросил цену приёма терапевта, робот назвал 1500 рублей."
    assert [(call.call_id, text) for call, text in amended] == [("call-7", summary)]
    text = sent.fields["text"]
    assert f"Кратко: {summary}" in text
    assert "Робот: Приём терапевта стоит 1500 рублей." in text
    assert (work.reported, work.failed) == (1, 0)
