"""Russian normalisation for Festival: words for digits, only the characters the voice reads."""

from __future__ import annotations

import re

import pytest

from voiceplat.providers.tts.normalize_ru import (
    clean_for_festival,
    expand,
    normalize,
    split_sentences,
)

FESTIVAL_SAFE = re.compile(r"^[а-яёА-ЯЁ ,.!?\-]*$")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Скажите «да» или „нет“.", "Скажите да или нет."),
        ("Это — тест – и ещё: да; нет", "Это, тест, и ещё, да, нет"),
        ("Привет , как дела ?", "Привет, как дела?"),
        ("Ну… ладно", "Ну. ладно"),
        ("кто-то - пришёл", "кто-то, пришёл"),
        ("- Алло", "Алло"),
        ("Точно?! Да!!! Ну,.", "Точно? Да! Ну."),
        ("Купите iPhone 15 сегодня", "Купите сегодня"),
        ("слово,слово.слово", "слово, слово. слово"),
        ("  много   пробелов\nи\tстрок  ", "много пробелов и строк"),
        ("Ёлка и ёж", "Ёлка и ёж"),
    ],
)
def test_clean_keeps_only_what_festival_reads(text: str, expected: str) -> None:
    assert clean_for_festival(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "!!!", "123", "Hello world", "😀 ...", "—"])
def test_clean_with_nothing_to_say_is_empty(text: str) -> None:
    assert clean_for_festival(text) == ""


def test_digits_become_words() -> None:
    result = normalize("Ваш заказ 123 будет доставлен 15 марта.")
    assert "сто двадцать три" in result
    assert "пятнадцат" in result
    assert FESTIVAL_SAFE.match(result)


def test_latin_words_are_transliterated_not_lost() -> None:
    result = normalize("Позвоните на iPhone")
    assert result.startswith("Позвоните на ")
    assert len(result) > len("Позвоните на ")  # the brand is said in Cyrillic
    assert FESTIVAL_SAFE.match(result)


@pytest.mark.parametrize(
    "text",
    [
        "Цена 2500 руб., скидка 15% — «только сегодня» !",
        "Встреча в 10:30, e-mail: test@example.com",
        "ГИБДД и МВД; 1980-е годы… S21 Ultra",
        "Температура -5°C, 2+2=4",
    ],
)
def test_normalized_text_is_festival_safe(text: str) -> None:
    result = normalize(text)
    assert result
    assert FESTIVAL_SAFE.match(result), result
    assert " ," not in result and " ." not in result and "  " not in result


def test_empty_and_unspeakable_text_normalizes_to_empty() -> None:
    assert expand("") == ""
    assert normalize("") == ""
    assert normalize("!!! ...") == ""


def test_split_sentences_after_terminal_marks() -> None:
    assert split_sentences("Привет. Как дела? Отлично! Да") == [
        "Привет.",
        "Как дела?",
        "Отлично!",
        "Да",
    ]
    assert split_sentences("Раз, два, три.") == ["Раз, два, три."]
    assert split_sentences("") == []


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("с 9:00 до 15:00", "с девяти до пятнадцати"),
        ("вторник с 8:00–20:00", "вторник с восьми до двадцати"),
        ("не есть 8–12 часов", "не есть от восьми до двенадцати часов"),
        ("за 2-3 дня", "за два или три дня"),
        ("в 10:30", "в десять, тридцать"),
    ],
)
def test_whole_hours_and_ranges_are_said_as_people_say_them(written: str, said: str) -> None:
    assert normalize(written) == said


def test_a_phone_number_is_not_taken_for_a_range() -> None:
    assert "от" not in normalize("Телефон 123-45-67").split()
