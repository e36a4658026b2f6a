"""decide_outcome: one test per rule of voiceplat/sessions/outcome.py, and what counts as a
question and as "I do not know"."""

from __future__ import annotations

from typing import Any

import pytest

from voiceplat.sessions.outcome import decide_outcome, is_question, says_dont_know
from voiceplat.storage.records import (
    CallRecord,
    CallSnapshot,
    CallStatus,
    ToolCallRecord,
    TurnRecord,
)

GREETING = ("robot", "Здравствуйте! Клиника «Здоровье», чем могу помочь?")


def snapshot(
    *turns: tuple[str, str] | dict[str, Any],
    status: CallStatus = "completed",
    end_reason: str = "caller_hangup",
) -> CallSnapshot:
    records = []
    for idx, turn in enumerate(turns):
        fields = turn if isinstance(turn, dict) else {"role": turn[0], "text": turn[1]}
        records.append(TurnRecord(call_id="c", idx=idx, **fields))
    call = CallRecord(
        call_id="c", robot="clinic", mode="pipeline", status=status, end_reason=end_reason
    )
    return CallSnapshot(call=call, turns=records)


ANSWERED = snapshot(
    GREETING,
    ("user", "Сколько стоит приём терапевта?"),
    ("robot", "Приём терапевта стоит 1500 рублей."),
)


def test_a_succeeded_tools_outcome_wins_even_over_a_transfer_or_a_failure() -> None:
    booked = snapshot(GREETING, ("user", "Запишите меня"), ("robot", "Записала вас на завтра."))
    assert decide_outcome(booked, tool_outcome="booked") == "booked"
    after = snapshot(
        GREETING, ("user", "Запишите меня"), ("robot", "Записала."), end_reason="transferred"
    )
    assert decide_outcome(after, tool_outcome="booked") == "booked"
    broke = snapshot(GREETING, ("user", "Запишите"), status="failed", end_reason="error")
    assert decide_outcome(broke, tool_outcome="booked") == "booked"


def test_a_handed_over_call_is_transferred() -> None:
    call = snapshot(
        GREETING,
        ("user", "Соедините с врачом"),
        ("robot", "Соединяю."),
        end_reason="transferred",
    )
    assert decide_outcome(call, tool_outcome=None) == "transferred"


def test_a_failed_call_is_failed_whatever_was_said() -> None:
    call = snapshot(
        GREETING,
        ("user", "Сколько стоит приём?"),
        ("robot", "Приём стоит 1500 рублей."),
        status="failed",
        end_reason="error",
    )
    assert decide_outcome(call, tool_outcome=None) == "failed"


def test_a_caller_who_said_nothing_that_was_a_turn_abandoned_the_call() -> None:
    silent = snapshot(GREETING, end_reason="no_input")
    assert decide_outcome(silent, tool_outcome=None) == "abandoned"
    noise = snapshot(
        GREETING,
        {"role": "user", "text": "Продолжение следует...", "ignored": "hallucination"},
        {"role": "user", "text": "  "},
        ("robot", "Вас плохо слышно, повторите, пожалуйста."),
    )
    assert decide_outcome(noise, tool_outcome=None) == "abandoned"


def test_a_caller_who_hung_up_before_any_answer_abandoned_the_call() -> None:
    call = snapshot(GREETING, ("user", "Сколько стоит приём?"))
    assert decide_outcome(call, tool_outcome=None) == "abandoned"


def test_a_question_answered_only_with_i_do_not_know_got_no_answer() -> None:
    call = snapshot(
        GREETING,
        ("user", "Здравствуйте, меня зовут Анна"),
        ("robot", "Здравствуйте, Анна! Чем могу помочь?"),  # a real reply, but not an answer
        ("user", "Сколько стоит МРТ колена"),  # a question without a "?": the ASR dropped it
        ("robot", "К сожалению, у меня нет такой информации. Соединить с администратором?"),
        ("user", "Нет, спасибо, до свидания"),
        ("robot", "До свидания!"),
    )
    assert decide_outcome(call, tool_outcome=None) == "no_answer_given"


def test_a_question_answered_only_with_a_fallback_got_no_answer() -> None:
    call = snapshot(
        GREETING,
        ("user", "Когда работает лаборатория?"),
        {"role": "robot", "text": "Извините, повторите, пожалуйста.", "error": "TimeoutError: "},
    )
    assert decide_outcome(call, tool_outcome=None) == "no_answer_given"


def test_without_questions_every_answer_must_be_no_answer() -> None:
    none = snapshot(
        GREETING,
        ("user", "Хочу записаться на анализы"),
        ("robot", "Этого я не знаю."),
    )
    assert decide_outcome(none, tool_outcome=None) == "no_answer_given"
    some = snapshot(
        GREETING,
        ("user", "Хочу записаться на анализы"),
        ("robot", "Этого я не знаю."),
        ("user", "Тогда на приём к терапевту"),
        ("robot", "Терапевт принимает по будням с 9 до 18."),
    )
    assert decide_outcome(some, tool_outcome=None) == "answered"


def test_the_robots_own_dont_know_phrase_counts() -> None:
    call = snapshot(
        GREETING,
        ("user", "Есть ли у вас парковка?"),
        ("robot", "В моей справке об этом пока ни слова, спросите на ресепшене."),
    )
    assert decide_outcome(call, tool_outcome=None) == "answered"
    own = ["в моей справке об этом пока ни слова"]
    assert decide_outcome(call, tool_outcome=None, dont_know=own) == "no_answer_given"


def test_one_answered_question_makes_the_call_answered() -> None:
    assert decide_outcome(ANSWERED, tool_outcome=None) == "answered"
    mixed = snapshot(
        *[(t.role, t.text) for t in ANSWERED.turns],
        ("user", "А МРТ сколько стоит?"),
        ("robot", "Не знаю, уточните у администратора."),
    )
    assert decide_outcome(mixed, tool_outcome=None) == "answered"


@pytest.mark.parametrize(
    "text",
    [
        "Я не знаю.",
        "Этого я не знаю, соединить вас с администратором?",
        "К сожалению, у меня нет информации об этом.",
        "Таких данных у меня нет.",
        "Не могу вам подсказать.",
        "Не могу ответить на этот вопрос.",
        "Затрудняюсь ответить.",
        "Мне это неизвестно.",
        "В справке об этом ничего нет.",
        "Не располагаю такими сведениями.",
    ],
)
def test_ways_of_saying_i_do_not_know(text: str) -> None:
    assert says_dont_know(text)


@pytest.mark.parametrize(
    "text",
    [
        "Не волнуйтесь, я знаю, как вам помочь.",
        "Приём терапевта стоит 1500 рублей.",
        "Если вы не знаете номер полиса, возьмите паспорт.",
        "Нет, в субботу мы не работаем.",
        "Информацию о ценах вы найдёте на сайте.",
        "Не забудьте паспорт.",
    ],
)
def test_answers_that_are_not_i_do_not_know(text: str) -> None:
    assert not says_dont_know(text)


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("Сколько стоит приём?", True),
        ("Вы работаете в субботу?", True),
        ("Когда работает лаборатория", True),
        ("Можно ли прийти с ребёнком", True),
        ("Подскажите, где вы находитесь", True),
        ("Хочу записаться к терапевту", False),
        ("Меня зовут Анна", False),
        ("До свидания", False),
    ],
)
def test_questions_with_or_without_a_question_mark(text: str, question: bool) -> None:
    assert is_question(text) is question


def test_a_booking_that_did_not_go_through_is_no_answer() -> None:
    failed = ToolCallRecord(name="book_visit", ok=False, error="HTTP 500")
    turns = [
        TurnRecord(call_id="c", idx=0, role="user", text="Хочу записаться к терапевту."),
        TurnRecord(call_id="c", idx=1, role="robot", text="На какой день?"),
        TurnRecord(call_id="c", idx=2, role="user", text="Да, всё верно."),
        TurnRecord(call_id="c", idx=3, role="robot", text="Не получилось.", tool_calls=[failed]),
    ]
    snapshot = CallSnapshot(call=CallRecord(call_id="c", robot="r", mode="pipeline"), turns=turns)
    assert decide_outcome(snapshot, tool_outcome=None) == "no_answer_given"
    retried = ToolCallRecord(name="book_visit", ok=True)
    turns.append(TurnRecord(call_id="c", idx=4, role="robot", text="Готово.", tool_calls=[retried]))
    snapshot = CallSnapshot(call=snapshot.call, turns=turns)
    assert decide_outcome(snapshot, tool_outcome=None) == "answered"
