"""A form field's value from a caller's words: dates, times, phones, choices, text.

Each parser takes the utterance's tokens (numbers.tokenize: number words are numbers already, so
"третьего декабря" reaches dateparser as "3 декабря") and returns a `Value` (what the tool gets and
how the confirmation says it) or None. Dates: dateparser (Russian, relative to the call's `now`,
future preferred; a past date is no answer), after the time phrase is taken out (clock.find_time:
"в 3" is not the 3rd). Phones: phonenumbers, region RU, to E.164. Choices: by lemma, with synonyms.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Any

from voiceplat.forms.clock import ClockTime, find_time
from voiceplat.forms.match import find_phrase
from voiceplat.forms.numbers import Token, number_words, ordinal_neuter, plural, tokenize
from voiceplat.forms.settings import FormField

WEEKDAYS = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье")
MONTHS_GENITIVE = (
    "января февраля марта апреля мая июня июля августа сентября октября ноября декабря".split()
)
_WEEKDAY_LEMMAS = frozenset(WEEKDAYS)
_DATE_WORDS = frozenset(
    "сегодня завтра послезавтра через неделя день число".split() + list(WEEKDAYS)
)


@dataclass(frozen=True)
class Value:
    """A field's value: `value` goes to the tool, `spoken` into the confirmation."""

    value: Any
    spoken: str


@cache
def _dateparser_settings(now: dt.datetime) -> dict[str, Any]:
    return {
        "RELATIVE_BASE": now,
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "DMY",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "PREFER_DAY_OF_MONTH": "first",
    }


def warm() -> None:
    """Load dateparser's Russian data and pymorphy3's dictionaries (~150 ms and ~1 s on first
    use) before the first call, off the call path."""
    parse_date(tokenize("завтра в три"), dt.datetime.now())


_DATE_ORDINAL_ENDINGS = ("ого", "его", "ое", "ье")
_MONTH_LEMMAS = frozenset(
    "январь февраль март апрель май июнь июль август сентябрь октябрь ноябрь декабрь".split()
)


def _is_date_ordinal(t: Token) -> bool:
    """ "третьего", "на третье", "25-го": a day; not "второй день" or "первая половина"."""
    return t.ordinal and (t.text[-1].isdigit() or t.text.endswith(_DATE_ORDINAL_ENDINGS))


def _date_text(tokens: list[Token], now: dt.datetime) -> str:
    """The words for dateparser; only numbers that can be part of a date are kept (a phone
    number, "три года" or "сорок пять лет" must not become a year)."""
    words = []
    for i, t in enumerate(tokens):
        if t.value is None:
            words.append(t.text)
            continue
        before = tokens[i - 1] if i > 0 else None
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        day = 1 <= t.value <= 31 and (
            _is_date_ordinal(t) or (after is not None and after.has(*_MONTH_LEMMAS, "число"))
        )
        count = before is not None and before.has("через") and t.value <= 60
        year = (
            t.value in (now.year, now.year + 1)
            and before is not None
            and before.has(*_MONTH_LEMMAS)
        )
        if day or count or year:
            words.append(t.digits)
    return " ".join(words)


def _is_clock_offset(matched: str) -> bool:
    """ "через час", "через 20 минут": dateparser's today, but no day the caller chose."""
    return any(w in matched for w in ("час", "минут", "секунд"))


def _day_alone(tokens: list[Token]) -> int | None:
    """A day of the month said without a month: "пятого", "на 25 число", "25-го"."""
    for i, t in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        by_word = nxt is not None and nxt.has("число")
        if t.value is not None and 1 <= t.value <= 31 and (_is_date_ordinal(t) or by_word):
            return t.value
    return None


def _next_day_of_month(n: int, today: dt.date) -> dt.date:
    """The n-th of this month, or of the next month that has one when it is past."""
    year, month = today.year, today.month
    while True:
        try:
            day = dt.date(year, month, n)
        except ValueError:
            day = None  # no 31st in this month
        if day is not None and day >= today:
            return day
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def parse_date(tokens: list[Token], now: dt.datetime, *, pm_below: int = 8) -> Value | None:
    """The day the caller names: "завтра", "в следующий вторник", "третьего декабря", "пятого"."""
    from dateparser.search import search_dates

    when = find_time(tokens, pm_below=pm_below)
    if when is not None:
        tokens = tokens[: when.start] + tokens[when.end :]
    if not any(t.forms & _DATE_WORDS or t.value is not None for t in tokens) and not any(
        find_phrase(tokens, m) is not None for m in MONTHS_GENITIVE
    ):
        return None  # nothing a date is made of: dateparser is not asked about "к лору"
    now = now.replace(tzinfo=None, microsecond=0)
    settings = _dateparser_settings(now)
    found = search_dates(_date_text(tokens, now), languages=["ru"], settings=settings) or []
    found = [(said, when) for said, when in found if not _is_clock_offset(said)]
    day: dt.date | None = found[-1][1].date() if found else None
    if day is None and (n := _day_alone(tokens)) is not None:
        day = _next_day_of_month(n, now.date())
    if day is None:
        return None
    weekday_said = any(t.forms & _WEEKDAY_LEMMAS for t in tokens)
    next_week = find_phrase(tokens, "следующий неделя") is not None
    if next_week and not weekday_said:
        return None  # "на следующей неделе" names no day: the question is asked again
    if next_week:
        monday = now.date() + dt.timedelta(days=7 - now.weekday())
        while day < monday:
            day += dt.timedelta(days=7)
    if day < now.date() or day.year > now.year + 1:
        return None
    return Value(day.isoformat(), spoken_date(day, now.date()))


def spoken_date(day: dt.date, today: dt.date) -> str:
    """ "четверг, третье декабря" (with the year when it is not this year's)."""
    text = f"{WEEKDAYS[day.weekday()]}, {ordinal_neuter(day.day)} {MONTHS_GENITIVE[day.month - 1]}"
    if day.year != today.year:
        text += f" {day.year} года"
    return text


def parse_time(tokens: list[Token], *, expecting: bool = False, pm_below: int = 8) -> Value | None:
    """The time of day the caller names (clock.find_time; a bare "три" only when `expecting`)."""
    when = find_time(tokens, expecting=expecting, pm_below=pm_below)
    if when is None:
        return None
    return Value(f"{when.hour:02d}:{when.minute:02d}", spoken_time(when))


def spoken_time(when: ClockTime | dt.time) -> str:
    """ "пятнадцать часов", "девять часов тридцать минут"."""
    hour, minute = when.hour, when.minute
    text = f"{number_words(hour)} {plural(hour, 'час', 'часа', 'часов')}"
    if minute:
        minutes = number_words(minute, feminine=True)
        text += f" {minutes} {plural(minute, 'минута', 'минуты', 'минут')}"
    return text


def _digit_runs(tokens: list[Token]) -> list[tuple[bool, list[str]]]:
    """Consecutive number tokens as digit groups, and whether a plus came before them."""
    runs: list[tuple[bool, list[str]]] = []
    plus, run = False, []
    for t in tokens:
        if t.value is not None and t.clock is None:
            run.append(t.digits)
            continue
        if run:
            runs.append((plus, run))
        plus, run = t.text == "+" or t.has("плюс"), []
    if run:
        runs.append((plus, run))
    return runs


def parse_phone(tokens: list[Token]) -> Value | None:
    """A phone number, spoken in groups or digit by digit, or as digits: to E.164 (region RU)."""
    import phonenumbers

    for plus, run in _digit_runs(tokens):
        # The number may follow other numbers in the run ("в три восемь девятьсот…"): the
        # longest valid tail of the run is the phone.
        for start in range(len(run)):
            digits = "".join(run[start:])
            if not 10 <= len(digits) <= 12:
                continue
            candidate = "+" + digits if plus and start == 0 else digits
            if len(digits) == 11 and digits[0] == "7":
                candidate = "+" + digits  # "семь девятьсот…": the country code without the plus
            try:
                number = phonenumbers.parse(candidate, "RU")
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                return Value(e164, spoken_phone(e164))
    return None


def spoken_phone(e164: str) -> str:
    """+79161234567 → "плюс семь, девятьсот шестнадцать, сто двадцать три, сорок пять, …"."""
    digits = e164.lstrip("+")
    if len(digits) == 11:
        groups = [digits[0], digits[1:4], digits[4:7], digits[7:9], digits[9:]]
    else:
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    words = []
    for g in groups:
        # A leading zero is said ("ноль сорок пять"): the number alone would lose it.
        zeros = len(g) - len(g.lstrip("0"))
        said = ["ноль"] * zeros + ([number_words(int(g))] if g.lstrip("0") else [])
        words.append(" ".join(said))
    return ("плюс " if e164.startswith("+") else "") + ", ".join(words)


def parse_choice(tokens: list[Token], field: FormField) -> Value | None:
    """The one option the caller names (by lemma, synonyms included); None if none or several."""
    named = []
    for option in field.choice_options():
        phrases = [option.value, *option.synonyms]
        if any(find_phrase(tokens, p) is not None for p in phrases):
            named.append(option)
    if len(named) != 1:
        return None
    return Value(named[0].value, named[0].say or named[0].value)


def parse_text(text: str) -> Value | None:
    text = text.strip()
    return Value(text, text) if text else None


def parse_field(
    field: FormField,
    text: str,
    tokens: list[Token],
    now: dt.datetime,
    *,
    asked: bool,
    pm_below: int = 8,
) -> Value | None:
    """`field`'s value in the utterance; `asked`: it answers this field's question."""
    if field.type == "date":
        return parse_date(tokens, now, pm_below=pm_below)
    if field.type == "time":
        return parse_time(tokens, expecting=asked, pm_below=pm_below)
    if field.type == "phone":
        return parse_phone(tokens)
    if field.type == "choice":
        return parse_choice(tokens, field)
    # Free text is only ever an answer to its own question.
    return parse_text(text) if asked else None
