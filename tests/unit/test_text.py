"""SentenceSplitter and strip_marker."""

from __future__ import annotations

import re

import pytest

from voiceplat.sessions.text import SentenceSplitter, strip_marker


def llm_tokens(text: str) -> list[str]:
    """Chunks the way LLM streams look: a word with its leading space, punctuation apart."""
    return re.findall(r"\s*\w+|\s*[^\w\s]", text)


def split(text: str, chunks: str = "tokens", /, **settings: int) -> list[str]:
    # Positional-only, so **settings (SentenceSplitter keywords) can never fill `chunks`.
    splitter = SentenceSplitter(**settings)
    if chunks == "tokens":
        parts = llm_tokens(text)
    elif chunks == "chars":
        parts = list(text)
    else:
        parts = [text]
    out: list[str] = []
    for part in parts:
        out += splitter.push(part)
    return out + splitter.flush()


NO_CLAUSES = {"first_clause_min_chars": 1000}

CASES = [
    (
        "Здравствуйте! Чем могу помочь? До свидания.",
        ["Здравствуйте!", "Чем могу помочь?", "До свидания."],
    ),
    ("Hello there. How can I help? Bye!", ["Hello there.", "How can I help?", "Bye!"]),
    ("Приём стоит 3.5 тыс. руб. в месяц. Всё.", ["Приём стоит 3.5 тыс. руб. в месяц.", "Всё."]),
    ("Работаем с 9.00 до 18.00. Ждём вас.", ["Работаем с 9.00 до 18.00.", "Ждём вас."]),
    ("Приём длится 30 мин. Записать вас?", ["Приём длится 30 мин.", "Записать вас?"]),
    ("Это 500 руб. Подходит?", ["Это 500 руб.", "Подходит?"]),
    ("Анализы, т.е. кровь и т.д. Готово.", ["Анализы, т.е. кровь и т.д.", "Готово."]),
    ("Мы в г. Москва, ул. Ленина, д. 5. Ждём.", ["Мы в г. Москва, ул. Ленина, д. 5.", "Ждём."]),
    ("Врач А. С. Иванов примет вас. Также А.С. Петров.",
     ["Врач А. С. Иванов примет вас.", "Также А.С. Петров."]),
    ("Mr. Smith and Dr. Brown came. Fine.", ["Mr. Smith and Dr. Brown came.", "Fine."]),
    ("Bring e.g. a passport, a card etc. Then wait.",
     ["Bring e.g. a passport, a card etc.", "Then wait."]),
    ("Ну... я не знаю. Подождите… Я проверю.",
     ["Ну... я не знаю.", "Подождите…", "Я проверю."]),
    ("Well… maybe. Sure?! Yes.", ["Well… maybe.", "Sure?!", "Yes."]),
    ('Он сказал: «Привет.» Потом ушёл.', ["Он сказал: «Привет.»", "Потом ушёл."]),
    ("Выберите:\n1. Терапевт.\n2. Хирург.", ["Выберите:", "1. Терапевт.", "2. Хирург."]),
    ("Без точки в конце", ["Без точки в конце"]),
    ("   ", []),
    ("Да. … Нет.", ["Да.", "Нет."]),  # a bare ellipsis is not a segment
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
@pytest.mark.parametrize("chunks", ["tokens", "chars", "whole"])
def test_sentences(text: str, expected: list[str], chunks: str) -> None:
    assert split(text, chunks, **NO_CLAUSES) == expected


def test_sentence_is_emitted_as_soon_as_the_next_word_starts() -> None:
    splitter = SentenceSplitter(**NO_CLAUSES)
    assert splitter.push("Здравствуйте") == []
    assert splitter.push("!") == []  # could still be "!»" or "!.."
    assert splitter.push(" Чем") == ["Здравствуйте!"]
    assert splitter.push(" могу помочь?") == []
    assert splitter.flush() == ["Чем могу помочь?"]


def test_decimal_waits_for_the_digit_after_the_point() -> None:
    splitter = SentenceSplitter(**NO_CLAUSES)
    assert splitter.push("Цена 3.") == []
    assert splitter.push("5 тыс.") == []
    assert splitter.push(" руб.") == []
    assert splitter.push(" в месяц.") == []
    assert splitter.push(" Да") == ["Цена 3.5 тыс. руб. в месяц."]


def test_first_segment_may_end_at_a_clause_boundary() -> None:
    text = "Я могу записать вас к терапевту на завтра, на десять утра, если вам удобно."
    assert split(text) == [
        "Я могу записать вас к терапевту на завтра,",
        "на десять утра, если вам удобно.",
    ]


def test_short_first_clause_is_not_cut() -> None:
    text = "Да, конечно, записываю вас на завтра. Спасибо, до встречи, всего доброго."
    assert split(text) == [
        "Да, конечно, записываю вас на завтра.",
        "Спасибо, до встречи, всего доброго.",
    ]


@pytest.mark.parametrize("mark", [";", ":", " —", " –"])
def test_clause_marks(mark: str) -> None:
    text = f"Сейчас я проверю расписание врачей{mark} минуточку подождите."
    assert split(text)[0] == f"Сейчас я проверю расписание врачей{mark}"


def test_decimal_comma_is_not_a_clause_boundary() -> None:
    assert split("Температура у пациента была 37,5 градусов, сказал врач.") == [
        "Температура у пациента была 37,5 градусов,",
        "сказал врач.",
    ]


def test_each_reply_starts_over_after_flush() -> None:
    splitter = SentenceSplitter(first_clause_min_chars=10)
    out = splitter.push("Первая часть ответа, вторая часть. Третья, часть, ")
    out += splitter.flush()
    assert out == ["Первая часть ответа,", "вторая часть.", "Третья, часть,"]
    assert splitter.push("Новый ответ начинается, и снова ") == ["Новый ответ начинается,"]


def test_long_text_is_cut_at_a_clause_then_at_a_space() -> None:
    clauses = ", ".join(["раз два три"] * 20) + "."
    for segment in split(clauses, max_chars=50, **NO_CLAUSES):
        assert len(segment) <= 50
        assert segment.endswith((",", "."))
    words = " ".join(["слово"] * 50)
    segments = split(words, max_chars=50, **NO_CLAUSES)
    assert all(len(s) <= 50 for s in segments)
    assert " ".join(segments) == words  # cut at spaces, nothing lost


def test_text_without_spaces_is_cut_hard() -> None:
    assert split("x" * 120, max_chars=50) == ["x" * 50, "x" * 50, "x" * 20]


def test_english_token_by_token() -> None:
    text = "Sure, I can book you for Monday at 9.30 a.m. with Dr. Lee. Is that OK? Great."
    assert split(text, **NO_CLAUSES) == [
        "Sure, I can book you for Monday at 9.30 a.m. with Dr. Lee.",
        "Is that OK?",
        "Great.",
    ]


def test_nothing_is_lost_or_reordered() -> None:
    # Everything but whitespace comes out, in order (the bare "…" case drops a segment).
    text = " ".join(original for original, _ in CASES if " … " not in original)
    for chunks in ("tokens", "chars"):
        segments = split(text, chunks, first_clause_min_chars=5, max_chars=40)
        assert all(0 < len(s) <= 40 for s in segments)
        assert "".join(segments).replace(" ", "") == re.sub(r"\s+", "", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Спасибо, до свидания! [END]", ("Спасибо, до свидания!", True)),
        ("[end] Всего доброго.", ("Всего доброго.", True)),
        ("До встречи [End] и удачи", ("До встречи и удачи", True)),
        ("Чем ещё могу помочь?", ("Чем ещё могу помочь?", False)),
        ("[END]", ("", True)),
    ],
)
def test_strip_marker(text: str, expected: tuple[str, bool]) -> None:
    assert strip_marker(text, "[END]") == expected


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        SentenceSplitter(max_chars=5)


def test_strip_marker_leaves_no_dangling_comma() -> None:
    assert strip_marker("Заказ готов, [END].", "[END]") == ("Заказ готов.", True)


def test_first_clause_is_emitted_without_waiting_for_the_next_token() -> None:
    splitter = SentenceSplitter(first_clause_min_chars=10)
    assert splitter.push("Конечно, записываю вас") == []  # too short to cut at the comma
    assert splitter.push(" на завтра") == []
    assert splitter.push(",") == ["Конечно, записываю вас на завтра,"]
    assert splitter.push(" на десять.") == []
    assert splitter.flush() == ["на десять."]


def test_a_comma_after_a_digit_still_waits_for_the_next_token() -> None:
    splitter = SentenceSplitter(first_clause_min_chars=10)
    assert splitter.push("Температура 37,") == []
    assert splitter.push("5 градусов,") == ["Температура 37,5 градусов,"]


def test_a_dash_after_a_space_ends_the_first_clause_at_once() -> None:
    splitter = SentenceSplitter(first_clause_min_chars=10)
    assert splitter.push("Сейчас проверю —") == ["Сейчас проверю —"]
    assert splitter.push("из-за") == []
