"""The text of a call's report: who called which robot, how long, how it ended, and what was said.

A report that fits one Telegram message is sent as that message. A longer one is sent as a .txt
file holding the whole report, with the head (robot, caller, outcome, summary) as its caption, so
the chat still shows at a glance what the call was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from voiceplat.reports.settings import TELEGRAM_CAPTION_LIMIT
from voiceplat.storage.records import CallRecord, CallSnapshot, TurnRecord

SPEAKERS = {"robot": "Робот", "user": "Клиент"}

OUTCOMES = {
    "booked": "записан",
    "answered": "ответ дан",
    "transferred": "переведён на сотрудника",
    "no_answer_given": "ответа не нашлось",
    "abandoned": "клиент ничего не сказал",
    "failed": "сбой",
}
"""Russian words for the outcomes the platform decides; an author's own outcome is shown as is."""

CUT_MARK = "…"


@dataclass(frozen=True, slots=True)
class Report:
    text: str
    """The message (when `document` is None) or the caption of the file."""
    document: bytes | None = None
    """The whole report as UTF-8 text, when it is too long for one message."""
    filename: str = "call.txt"


def telegram_length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units): an emoji counts 2."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """`text` within `limit` (Telegram's units), ending with … when something was cut."""
    if telegram_length(text) <= limit:
        return text
    kept = text[: max(0, limit - 1)]
    while kept and telegram_length(kept) > limit - 1:
        kept = kept[:-1]
    return kept.rstrip() + CUT_MARK


def call_outcome(call: CallRecord) -> str | None:
    return call.outcome or None


def outcome_text(outcome: str | None) -> str | None:
    if outcome is None:
        return None
    words = OUTCOMES.get(outcome)
    return f"{words} ({outcome})" if words else outcome


def duration_text(call: CallRecord) -> str | None:
    seconds = call.duration_sec
    if seconds is None and call.ended_at is not None:
        seconds = (call.ended_at - call.started_at).total_seconds()
    if seconds is None:
        return None
    whole = max(0, round(seconds))
    minutes, rest = divmod(whole, 60)
    return f"{minutes} мин {rest} с" if minutes else f"{rest} с"


def head_lines(snapshot: CallSnapshot, summary: str | None, zone: str = "UTC") -> list[str]:
    call = snapshot.call
    started = call.started_at.astimezone(ZoneInfo(zone))
    lines = [
        f"Звонок: {call.robot}",
        f"Звонивший: {call.caller or 'неизвестен'}",
        f"Начало: {started:%d.%m.%Y %H:%M:%S} ({zone})",
        f"ID звонка: {call.call_id}",
    ]
    optional = [
        ("Длительность", duration_text(call)),
        ("Итог", outcome_text(call_outcome(call))),
        ("Завершение", call.end_reason),
        ("Переведён на", call.transfer_target),
        ("Нажатые клавиши", call.dtmf or None),
        ("Кратко", summary),
    ]
    lines += [f"{name}: {value}" for name, value in optional if value]
    if call.status == "failed":
        lines.append("Статус: звонок завершился ошибкой")
    return lines


def turn_lines(turn: TurnRecord) -> list[str]:
    """A turn's transcript lines: what was said, then the tools the robot called. None of a
    turn that was left out of the dialog (noise, a hallucination)."""
    if turn.ignored is not None:
        return []
    text = turn.text.strip()
    if turn.role == "robot" and turn.interrupted and turn.heard_text is not None:
        # The caller cut the robot off: show what they heard, not what it meant to say.
        text = turn.heard_text.strip() + f" {CUT_MARK}(перебит)"
    lines = [f"{SPEAKERS[turn.role]}: {text}"] if text else []
    for tool in turn.tool_calls:
        result = "выполнено" if tool.ok else f"ошибка: {tool.error or 'неизвестна'}"
        lines.append(f"  [{tool.name}: {result}]")
    return lines


def transcript_lines(snapshot: CallSnapshot) -> list[str]:
    turns = sorted(snapshot.turns, key=lambda t: t.idx)
    return [line for turn in turns for line in turn_lines(turn)]


def report_text(snapshot: CallSnapshot, summary: str | None, zone: str = "UTC") -> str:
    """The whole report: the head, then the transcript."""
    lines = head_lines(snapshot, summary, zone)
    transcript = transcript_lines(snapshot)
    lines += ["", "Расшифровка:", *transcript] if transcript else ["", "Расшифровки нет."]
    return "\n".join(lines)


def build_report(
    snapshot: CallSnapshot, summary: str | None, *, max_chars: int, zone: str = "UTC"
) -> Report:
    text = report_text(snapshot, summary, zone)
    if telegram_length(text) <= max_chars:
        return Report(text)
    caption = "\n".join([*head_lines(snapshot, summary, zone), "", "Расшифровка — в файле."])
    stamp = snapshot.call.started_at.strftime("%Y%m%d-%H%M%S")
    return Report(
        cut(caption, min(max_chars, TELEGRAM_CAPTION_LIMIT)),
        document=text.encode("utf-8"),
        filename=re.sub(r"[^\w.-]+", "_", f"{snapshot.call.robot}-{stamp}-{snapshot.call.call_id}")
        + ".txt",
    )
