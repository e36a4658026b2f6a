"""Form field parsers on real Russian phrasings (numbers as words, as ASR writes them, or digits).

The call's now is Wednesday 2 December 2026, 10:00: "завтра" is Thursday the 3rd.
"""

from __future__ import annotations

import datetime as dt

import pytest

from voiceplat.forms.fields import (
    parse_choice,
    parse_date,
    parse_field,
    parse_phone,
    parse_time,
    spoken_date,
    spoken_phone,
    spoken_time,
)
from voiceplat.forms.numbers import tokenize
from voiceplat.forms.settings import FormField

NOW = dt.datetime(2026, 12, 2, 10, 0)  # a Wednesday


def date_of(text: str, now: dt.datetime = NOW) -> str | None:
    value = parse_date(tokenize(text), now)
    return None if value is None else value.value


def time_of(text: str, expecting: bool = False, pm_below: int = 8) -> str | None:
    value = parse_time(tokenize(text), expecting=expecting, pm_below=pm_below)
    return None if value is None else value.value


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("завтра", "2026-12-03"),
        ("Завтра в три.", "2026-12-03"),
        ("к терапевту на завтра", "2026-12-03"),
        ("послезавтра в десять утра", "2026-12-04"),
        ("сегодня", "2026-12-02"),
        ("в следующий вторник", "2026-12-08"),
        ("во вторник", "2026-12-08"),
        ("в пятницу", "2026-12-04"),
        ("давайте в субботу утром", "2026-12-05"),
        ("на понедельник", "2026-12-07"),
        ("в среду в два часа дня", "2026-12-09"),  # today is Wednesday: the next one
        ("на следующей неделе в среду", "2026-12-09"),
        ("третьего декабря", "2026-12-03"),
        ("3 декабря", "2026-12-03"),
        ("тридцать первого декабря", "2026-12-31"),
        ("второго января", "2027-01-02"),
        ("пятого", "2026-12-05"),
        ("четырнадцатого числа", "2026-12-14"),
        ("на двадцать пятое число", "2026-12-25"),
        ("25-го", "2026-12-25"),
        ("через неделю", "2026-12-09"),
        ("через два дня в десять", "2026-12-04"),
        ("в следующую среду", "2026-12-09"),
        ("на это воскресенье", "2026-12-06"),
        ("Давайте на четверг.", "2026-12-03"),
        ("во вторник первая половина дня", "2026-12-08"),
        ("девятого января в девять тридцать", "2027-01-09"),
        ("Можно записаться к терапевту на завтра?", "2026-12-03"),
    ],
)
def test_dates_as_callers_say_them(text: str, day: str) -> None:
    assert date_of(text) == day


@pytest.mark.parametrize(
    "text",
    [
        "вчера",  # past: no booking
        "на следующей неделе",  # names no day
        "в три",  # a time, not the 3rd
        "в 3",
        "к лору",
        "да",
        "нет, спасибо",
        "сколько стоит приём",
        # Numbers that are no day: a phone, an age, a duration, an offset from now.
        "восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь",
        "восемь девятьсот шестнадцать один два три сорок пять шестьдесят семь",
        "Записаться на приём, у ребёнка три года",
        "мне сорок пять лет",
        "У меня болит горло второй день",
        "через час",
        "через двадцать минут",
    ],
)
def test_no_date_in_words_that_name_no_day(text: str) -> None:
    assert date_of(text) is None


def test_a_named_weekday_in_next_week_is_after_this_weeks_sunday() -> None:
    monday = dt.datetime(2026, 11, 30, 9, 0)
    assert date_of("во вторник", monday) == "2026-12-01"
    assert date_of("на следующей неделе во вторник", monday) == "2026-12-08"


def test_a_day_of_this_month_already_past_is_next_months() -> None:
    assert date_of("первого", NOW) == "2027-01-01"


def test_relative_dates_follow_the_calls_now_and_drop_its_timezone() -> None:
    moscow = dt.timezone(dt.timedelta(hours=3))
    assert date_of("завтра", dt.datetime(2027, 2, 28, 23, 30, tzinfo=moscow)) == "2027-03-01"


@pytest.mark.parametrize(
    ("text", "clock"),
    [
        ("завтра в три", "15:00"),  # the clinic rule: 1..7 without "утра" is afternoon
        ("в 3", "15:00"),
        ("в два часа дня", "14:00"),
        ("в среду в два часа дня", "14:00"),
        ("в десять утра", "10:00"),
        ("в семь утра", "07:00"),
        ("утром в семь", "07:00"),
        ("вечером в семь", "19:00"),
        ("в одиннадцать вечера", "23:00"),
        ("в девять", "09:00"),
        ("в час дня", "13:00"),
        ("в полдень", "12:00"),
        ("полтретьего", "14:30"),
        ("в половине первого", "12:30"),
        ("без четверти пять", "16:45"),
        ("без десяти минут три", "14:50"),
        ("в три тридцать", "15:30"),
        ("в десять пятнадцать", "10:15"),
        ("в восемь ноль пять", "08:05"),
        ("к трём часам", "15:00"),
        ("в 15:30", "15:30"),
        ("в 9:45", "09:45"),
        ("через два дня в десять", "10:00"),  # "дня" of "через два дня" is no afternoon
        ("не в три, а в четыре", "16:00"),  # the correction comes last
        ("пятого в 11", "11:00"),
        ("В 10.30", "10:30"),
        ("часа в три", "15:00"),
        ("в три часа тридцать минут", "15:30"),
        ("мне удобно после обеда в четыре", "16:00"),
        ("девятого января в девять тридцать", "09:30"),
        ("в 12 ночи", "00:00"),
    ],
)
def test_times_as_callers_say_them(text: str, clock: str) -> None:
    assert time_of(text) == clock


@pytest.mark.parametrize(
    "text", ["третьего декабря", "через два дня", "пятого", "да", "к лору", "мне бы пораньше"]
)
def test_no_time_in_words_that_name_no_time(text: str) -> None:
    assert time_of(text) is None


def test_a_bare_hour_is_a_time_only_as_the_answer_to_the_time_question() -> None:
    assert time_of("три") is None
    assert time_of("три", expecting=True) == "15:00"
    assert time_of("десять", expecting=True) == "10:00"


def test_the_afternoon_rule_can_be_turned_off() -> None:
    assert time_of("в три", pm_below=0) == "03:00"


@pytest.mark.parametrize(
    "text",
    [
        "восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь",
        "мой номер восемь, девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь",
        "плюс семь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь",
        "семь девять один шесть один два три четыре пять шесть семь",
        "восемь девять один шесть один два три четыре пять шесть семь",
        "8 916 123-45-67",
        "+7 (916) 123-45-67",
        "89161234567",
        "девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь",
        "завтра в три, телефон 8 916 123 45 67",
    ],
)
def test_phones_spoken_in_groups_digit_by_digit_or_as_digits(text: str) -> None:
    value = parse_phone(tokenize(text))
    assert value is not None and value.value == "+79161234567"


def test_a_phone_with_zeros_keeps_them() -> None:
    value = parse_phone(tokenize("восемь девятьсот пять ноль ноль один ноль два ноль три"))
    assert value is not None and value.value == "+79050010203"
    assert value.spoken == "плюс семь, девятьсот пять, ноль ноль один, ноль два, ноль три"


@pytest.mark.parametrize(
    "text", ["восемь девятьсот шестнадцать", "в три", "123 45 67", "один два три четыре пять"]
)
def test_no_phone_in_too_few_digits(text: str) -> None:
    assert parse_phone(tokenize(text)) is None


DOCTOR = FormField.model_validate(
    {
        "name": "doctor",
        "ask": "К какому врачу?",
        "type": "choice",
        "options": [
            "терапевт",
            {"value": "лор", "synonyms": ["отоларинголог", "ухо горло нос"]},
            {"value": "окулист", "synonyms": ["офтальмолог", "глазной врач"], "say": "окулист"},
        ],
    }
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("к терапевту", "терапевт"),
        ("Запишите меня к терапевту на завтра", "терапевт"),
        ("мне к лору", "лор"),
        ("к отоларингологу", "лор"),
        ("к ухо-горло-носу", "лор"),
        ("нужен глазной врач", "окулист"),
        ("к офтальмологу", "окулист"),
    ],
)
def test_choices_by_lemma_and_synonym(text: str, value: str) -> None:
    got = parse_choice(tokenize(text), DOCTOR)
    assert got is not None and got.value == value


@pytest.mark.parametrize("text", ["к врачу", "к терапевту или к лору", "завтра в три", "да"])
def test_no_choice_when_none_or_several_are_named(text: str) -> None:
    assert parse_choice(tokenize(text), DOCTOR) is None


def test_free_text_only_answers_its_own_question() -> None:
    name = FormField(name="name", ask="Как вас зовут?", type="text")
    tokens = tokenize(" Мария Иванова ")
    asked = parse_field(name, " Мария Иванова ", tokens, NOW, asked=True)
    assert asked is not None and asked.value == "Мария Иванова"
    assert parse_field(name, "Мария Иванова", tokens, NOW, asked=False) is None


def test_spoken_values_are_words_a_tts_reads_well() -> None:
    assert spoken_date(dt.date(2026, 12, 3), NOW.date()) == "четверг, третье декабря"
    assert (
        spoken_date(dt.date(2027, 1, 22), NOW.date()) == "пятница, двадцать второе января 2027 года"
    )
    assert spoken_time(dt.time(15, 0)) == "пятнадцать часов"
    assert spoken_time(dt.time(21, 1)) == "двадцать один час одна минута"
    assert spoken_time(dt.time(9, 32)) == "девять часов тридцать две минуты"
    assert spoken_phone("+79161234567") == (
        "плюс семь, девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь"
    )


def test_the_31st_said_in_a_month_without_one_is_the_next_months_31st() -> None:
    assert date_of("тридцать первого", dt.datetime(2027, 4, 5, 9, 0)) == "2027-05-31"
