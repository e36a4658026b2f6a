"""Russian number words in callers' speech as numbers, and numbers as words for the TTS."""

from __future__ import annotations

import pytest

from voiceplat.forms.numbers import number_words, ordinal_neuter, plural, tokenize


def numbers(text: str) -> list[tuple[int, bool]]:
    return [(t.value, t.ordinal) for t in tokenize(text) if t.value is not None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("в три", [(3, False)]),
        ("в трёх", [(3, False)]),
        ("третьего декабря", [(3, True)]),
        ("двадцать пятого", [(25, True)]),
        ("тридцать первого", [(31, True)]),
        ("сто двадцать три", [(123, False)]),
        ("восемь девятьсот шестнадцать", [(8, False), (916, False)]),
        ("сорок пять шестьдесят семь", [(45, False), (67, False)]),
        ("ноль пять", [(0, False), (5, False)]),  # zero is its own digit
        ("двадцать ноль ноль", [(20, False), (0, False), (0, False)]),
        ("две тысячи двадцать шестого года", [(2026, True)]),
        ("пятнадцать двадцать", [(15, False), (20, False)]),  # a teen does not take tens
        ("25-го", [(25, True)]),
        ("8 916", [(8, False), (916, False)]),
    ],
)
def test_number_words_compose_as_spoken(text: str, expected: list[tuple[int, bool]]) -> None:
    assert numbers(text) == expected


def test_digits_keep_leading_zeros_and_clocks_are_one_token() -> None:
    tokens = tokenize("в 09:05, код 045")
    assert [t.clock for t in tokens if t.clock] == [(9, 5)]
    assert [t.digits for t in tokens if t.value is not None] == ["045"]


def test_half_words_are_split_and_hyphens_between_letters_too() -> None:
    assert [t.text for t in tokenize("полтретьего")] == ["пол", "третьего"]
    assert [t.text for t in tokenize("к ухо-горло-носу")] == ["к", "ухо", "горло", "носу"]
    assert "полка" in [t.text for t in tokenize("полка")]


def test_words_keep_every_lemma() -> None:
    (lor,) = tokenize("лору")
    assert lor.has("лор") and lor.value is None


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "ноль"), (7, "семь"), (12, "двенадцать"), (40, "сорок"), (916, "девятьсот шестнадцать"),
     (101, "сто один")],
)  # fmt: skip
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


def test_feminine_ordinal_and_plural_forms() -> None:
    assert number_words(22, feminine=True) == "двадцать две"
    assert ordinal_neuter(3) == "третье" and ordinal_neuter(21) == "двадцать первое"
    assert [plural(n, "час", "часа", "часов") for n in (1, 3, 5, 11, 21, 22)] == [
        "час", "часа", "часов", "часов", "час", "часа",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"out of 0\.\.999"):
        number_words(1000)
