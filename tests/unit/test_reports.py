"""Call reports: settings, the report's text, the summary, and the after-call queue (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from voiceplat.providers.llm.fake import FakeLLM, FakeLLMSettings
from voiceplat.reports import (
    ReportsSettings,
    build_report,
    report_text,
    reports_problems,
    summarize,
    telegram_env,
    wants_report,
)
from voiceplat.reports.format import telegram_length
from voiceplat.reports.settings import TelegramSettings
from voiceplat.reports.summary import tidy
from voiceplat.storage.records import CallRecord, CallSnapshot, ToolCallRecord, TurnRecord

HANG_S = 60
"""Waits bounded at this: only a hang reaches it."""

STARTED = datetime(2025, 3, 4, 9, 30, 0, tzinfo=UTC)
TOKEN = "123456789:AAFakeTokenForTests_x-yz"


def snapshot(*said: tuple[str, str], call_id: str = "c1", **call: Any) -> CallSnapshot:
    fields: dict[str, Any] = {
        "call_id": call_id,
        "robot": "clinic",
        "mode": "pipeline",
        "caller": "+79161234567",
        "started_at": STARTED,
        "ended_at": STARTED + timedelta(seconds=65),
        "duration_sec": 65.0,
        "status": "completed",
        "end_reason": "caller_hangup",
        "outcome": "answered",
    }
    fields.update(call)
    turns = [
        TurnRecord(call_id=call_id, idx=i, role="robot" if role == "r" else "user", text=text)
        for i, (role, text) in enumerate(said)
    ]
    return CallSnapshot(call=CallRecord(**fields), turns=turns)


DIALOG = (
    ("r", "Клиника «Здоровье», здравствуйте!"),
    ("u", "Сколько стоит приём терапевта?"),
    ("r", "Приём терапевта стоит 1500 рублей."),
)


# settings


def test_settings_reject_unknown_keys_and_zones() -> None:
    with pytest.raises(ValidationError, match="only_faild"):
        ReportsSettings.model_validate({"telegram": {"only_faild": True}})
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Base'"):
        TelegramSettings(timezone="Mars/Base")
    with pytest.raises(ValidationError, match="max_message_chars"):
        TelegramSettings(max_message_chars=5000)


def test_env_gives_token_chat_and_api_url() -> None:
    assert telegram_env({"TG_TOKEN": TOKEN}) is None
    assert telegram_env({"TG_TOKEN": TOKEN, "TG_CHAT_ID": "-100"}) == (
        TOKEN,
        "-100",
        "https://api.telegram.org",
    )
    local = {"TG_TOKEN": TOKEN, "TG_CHAT_ID": "5", "TG_API_URL": "http://127.0.0.1:8081/"}
    assert telegram_env(local) == (TOKEN, "5", "http://127.0.0.1:8081")


def test_check_names_the_missing_half_and_never_shows_the_token() -> None:
    settings = ReportsSettings()
    assert reports_problems(settings, {}) == []
    [missing_chat] = reports_problems(settings, {"TG_TOKEN": TOKEN})
    assert "TG_CHAT_ID is not set" in missing_chat
    [missing_token] = reports_problems(settings, {"TG_CHAT_ID": "-100"})
    assert "TG_TOKEN is not set" in missing_token
    bad = "https://api.telegram.org/bot123/sendMessage"
    problems = reports_problems(
        settings, {"TG_TOKEN": bad, "TG_CHAT_ID": "1", "TG_API_URL": "ftp://x"}
    )
    assert any("does not look like a bot token" in p for p in problems)
    assert any("TG_API_URL must be an http:// or https:// URL" in p for p in problems)
    assert not any(bad in p for p in problems)
    off = ReportsSettings.model_validate({"telegram": {"enabled": False}})
    assert reports_problems(off, {"TG_TOKEN": TOKEN}) == []


# the report's text


def test_report_has_the_head_and_the_transcript_in_order() -> None:
    text = report_text(snapshot(*DIALOG), "Клиент спросил цену приёма терапевта.")
    assert text.splitlines() == [
        "Звонок: clinic",
        "Звонивший: +79161234567",
        "Начало: 04.03.2025 09:30:00 (UTC)",
        "ID звонка: c1",
        "Длительность: 1 мин 5 с",
        "Итог: ответ дан (answered)",
        "Завершение: caller_hangup",
        "Кратко: Клиент спросил цену приёма терапевта.",
        "",
        "Расшифровка:",
        "Робот: Клиника «Здоровье», здравствуйте!",
        "Клиент: Сколько стоит приём терапевта?",
        "Робот: Приём терапевта стоит 1500 рублей.",
    ]


def test_report_leaves_out_ignored_turns_and_shows_what_a_cut_turn_said() -> None:
    snap = snapshot(*DIALOG, outcome="booked", caller=None, end_reason=None, dtmf="1#")
    snap.turns[1] = snap.turns[1].model_copy(update={"ignored": "hallucination"})
    snap.turns[2] = snap.turns[2].model_copy(
        update={
            "interrupted": True,
            "heard_text": "Приём терапевта",
            "tool_calls": [
                ToolCallRecord(name="book_visit", ok=True),
                ToolCallRecord(name="check_slot", ok=False, error="HTTP 500"),
            ],
        }
    )
    text = report_text(snap, None, zone="Europe/Moscow")
    assert "Сколько стоит" not in text
    assert "Робот: Приём терапевта …(перебит)" in text
    assert "  [book_visit: выполнено]" in text
    assert "  [check_slot: ошибка: HTTP 500]" in text
    assert "Звонивший: неизвестен" in text
    assert "Начало: 04.03.2025 12:30:00 (Europe/Moscow)" in text
    assert "Итог: записан (booked)" in text
    assert "Нажатые клавиши: 1#" in text
    assert "Кратко" not in text and "Завершение" not in text


def test_short_report_is_one_message_a_long_one_a_file_with_the_head_as_caption() -> None:
    short = build_report(snapshot(*DIALOG), "Итог.", max_chars=4096)
    assert short.document is None
    assert short.text == report_text(snapshot(*DIALOG), "Итог.")

    long_dialog = [
        ("u" if i % 2 else "r", f"Реплика номер {i}: " + "слово " * 20) for i in range(80)
    ]
    snap = snapshot(*long_dialog, call_id="abc/1", status="failed")
    report = build_report(snap, "Клиент долго говорил.", max_chars=4096)
    assert report.document is not None
    whole = report.document.decode("utf-8")
    assert whole == report_text(snap, "Клиент долго говорил.")
    assert "Реплика номер 79" in whole
    assert report.filename == "clinic-20250304-093000-abc_1.txt"
    assert telegram_length(report.text) <= 1024
    assert report.text.startswith("Звонок: clinic\n")
    assert "Статус: звонок завершился ошибкой" in report.text
    assert report.text.endswith("Расшифровка — в файле.")


def test_a_long_summary_is_cut_to_the_caption_limit() -> None:
    snap = snapshot(*[("u", "слово " * 100)] * 50)
    report = build_report(snap, "очень " * 400, max_chars=4096)
    assert report.document is not None
    assert telegram_length(report.text) == 1024
    assert report.text.endswith("…")


def test_telegram_counts_utf16_units() -> None:
    assert telegram_length("привет") == 6
    assert telegram_length("😀") == 2


# the filter


@pytest.mark.parametrize(
    ("settings", "call", "sent"),
    [
        ({}, {}, True),
        ({"only_failed": True}, {}, False),
        ({"only_failed": True}, {"status": "failed", "outcome": "failed"}, True),
        ({"outcomes": ["booked", "no_answer_given"]}, {"outcome": "booked"}, True),
        ({"outcomes": ["booked"]}, {"outcome": "answered"}, False),
        ({"outcomes": ["booked"]}, {"outcome": None}, False),
    ],
)
def test_filter(settings: dict[str, Any], call: dict[str, Any], sent: bool) -> None:
    record = snapshot(*DIALOG, **call).call
    assert wants_report(TelegramSettings(**settings), record) is sent


# the summary


def fake_llm(**settings: Any) -> FakeLLM:
    return FakeLLM(FakeLLMSettings(provider="fake", **settings), {})


async def test_summary_is_asked_with_the_transcript_and_tidied() -> None:
    llm = fake_llm(reply="  Клиент спросил цену приёма.   Робот назвал 1500 рублей. Всего доброго!")
    summary = await summarize(llm, snapshot(*DIALOG), 80)
    assert summary == "Клиент спросил цену приёма. Робот назвал 1500 рублей."
    [messages] = llm.streamed
    assert messages[0].role == "system" and "одно или два" in messages[0].content
    assert "Клиент: Сколько стоит приём терапевта?" in messages[1].content
    assert "Итог звонка: answered" in messages[1].content


async def test_no_summary_without_caller_words_or_when_the_llm_fails() -> None:
    llm = fake_llm()
    assert await summarize(llm, snapshot(("r", "Здравствуйте!")), 80) is None
    assert llm.streamed == []  # nothing to summarise: the model is not asked
    assert await summarize(fake_llm(fail="raise"), snapshot(*DIALOG), 80) is None
    assert await summarize(fake_llm(fail="hang"), snapshot(*DIALOG), 80, timeout_s=0.05) is None


async def test_summary_stops_at_max_tokens() -> None:
    llm = fake_llm(reply="раз " * 200)
    summary = await summarize(llm, snapshot(*DIALOG), 10)
    assert summary is not None and summary.split() == ["раз"] * 10


def test_tidy_cuts_at_a_word() -> None:
    assert (
        tidy("«Клиент хотел записаться к терапевту»", 100) == "Клиент хотел записаться к терапевту"
    )
    assert tidy("Клиент хотел записаться к терапевту", 20) == "Клиент хотел…"
    assert tidy("   ", 20) is None
