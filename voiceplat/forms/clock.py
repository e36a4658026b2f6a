"""Times of day in Russian speech, on tokens from numbers.tokenize.

dateparser reads "15:00" but not the way callers say a time ("в три", "в два часа дня",
"полтретьего", "без четверти пять"), and it takes "в 3" for the 3rd of the month; so times are read
here and their tokens are taken out before dateparser reads the date (fields.parse_date).

A bare hour needs an anchor: a preposition before it (в, во, к, на, около, часам) or a word after it
(час, утра, дня, вечера, ночи), or `expecting=True` (the caller answers "На какое время?" with
"три"). The clinic rule: an hour under `pm_below` (default 8: 1..7) with no "утра"/"утром" near it is
afternoon ("в три" = 15:00); "дня"/"вечера"/"после обеда" make any hour under 12 afternoon.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceplat.forms.numbers import Token

_ANCHORS_BEFORE = ("в", "во", "к", "ко", "на", "около", "часам")
_MONTHS = frozenset(
    "январь февраль март апрель май июнь июль август сентябрь октябрь ноябрь декабрь "
    "число год".split()
)
_MORNING = ("утра",)
_MORNING_ADVERBS = ("утром", "утречком")
_AFTERNOON = ("дня", "вечера")
_AFTERNOON_ADVERBS = ("днем", "вечером")
_NIGHT = ("ночи",)
_DAYPART_AFTER = frozenset(("утра", "дня", "вечера", "ночи"))
_DAYPART_WORDS = ("утро", "день", "вечер", "ночь")


@dataclass(frozen=True)
class ClockTime:
    hour: int
    minute: int
    start: int
    """Index of the first token of the time phrase."""
    end: int
    """Index after its last token (parse_date ignores tokens[start:end])."""


def _minutes_after(tokens: list[Token], i: int) -> tuple[int, int]:
    """Minutes spoken after the hour at tokens[i-1]: (minutes, tokens used)."""
    j = i
    if j < len(tokens) and tokens[j].has("час"):
        j += 1
    if j < len(tokens) and tokens[j].value == 0:
        # "восемь ноль пять" = 8:05, "десять ноль ноль" = 10:00.
        nxt = tokens[j + 1].value if j + 1 < len(tokens) else None
        if nxt is not None and nxt < 10:
            return nxt, j + 2 - i
        return 0, j + 1 - i
    if j < len(tokens) and not tokens[j].ordinal and (value := tokens[j].value) is not None:
        if 0 < value < 60 and not _is_date_number(tokens, j):
            used = j + 1 - i
            if j + 1 < len(tokens) and tokens[j + 1].has("минута"):
                used += 1
            return value, used
    return 0, j - i


def _is_date_number(tokens: list[Token], i: int) -> bool:
    return i + 1 < len(tokens) and bool(tokens[i + 1].forms & _MONTHS)


def _daypart(tokens: list[Token], start: int, end: int) -> str | None:
    """Morning, afternoon or night as said with the time: "три часа дня", "утром в семь".

    After the time its genitive ("утра", "дня"), or the adverb on either side ("вечером"); not
    words further away ("через два дня в десять" is ten in the morning).
    """
    after = [t.text for t in tokens[end : end + 1]]
    before = [t.text for t in tokens[max(0, start - 3) : start]]
    around = after + before
    if any(w in _MORNING for w in after) or any(w in _MORNING_ADVERBS for w in around):
        return "morning"
    if any(w in _NIGHT for w in after) or "ночью" in around:
        return "night"
    if any(w in _AFTERNOON for w in after) or any(w in _AFTERNOON_ADVERBS for w in around):
        return "afternoon"
    if "обеда" in around:  # "после обеда"
        return "afternoon"
    return None


def _apply_daypart(hour: int, daypart: str | None, pm_below: int) -> int:
    if daypart == "afternoon" and hour < 12:
        return hour + 12
    if daypart == "night" and hour == 12:
        return 0
    if daypart is None and 1 <= hour < pm_below:
        return hour + 12
    return hour


def _hour_phrase(tokens: list[Token], i: int, expecting: bool) -> tuple[int, int, int] | None:
    """(hour, minute, end) for an hour number or a clock at tokens[i], if it is a time."""
    t = tokens[i]
    if t.clock is not None:
        return t.clock[0], t.clock[1], i + 1
    before = tokens[i - 1] if i > 0 else None
    anchored = before is not None and before.has(*_ANCHORS_BEFORE)
    if t.value is None and t.has("час") and anchored:
        # "в час дня": the word "час" is the hour one.
        if before is None or before.value is None:
            return 1, 0, i + 1
    if t.value is None or t.ordinal or not 0 <= t.value <= 24 or _is_date_number(tokens, i):
        return None
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    marked = after is not None and after.has("час", *_DAYPART_WORDS)
    if before is not None and before.has("через"):  # "через два дня" is a date
        return None
    if not (anchored or marked or expecting):
        return None
    minute, used = _minutes_after(tokens, i + 1)
    return t.value % 24, minute, i + 1 + used


def _half_or_quarter(tokens: list[Token], i: int) -> tuple[int, int, int] | None:
    """половина/пол третьего = 2:30, четверть третьего = 2:15, без четверти три = 2:45."""
    t = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    if nxt is None:
        return None
    if t.has("половина", "пол") and nxt.ordinal and nxt.value and 1 <= nxt.value <= 12:
        return nxt.value - 1 or 12, 30, i + 2
    if t.has("четверть") and nxt.ordinal and nxt.value and 1 <= nxt.value <= 12:
        return nxt.value - 1 or 12, 15, i + 2
    if t.has("без") and i + 2 < len(tokens):
        minutes: int | None = 15 if nxt.has("четверть") else nxt.value
        j = i + 3 if tokens[i + 2].has("минута") else i + 2
        if j >= len(tokens):
            return None
        hour_token = tokens[j]
        hour = hour_token.value
        if hour_token.has("час") and hour is None:
            hour = 1
        if minutes and 0 < minutes < 60 and hour and 1 <= hour <= 12:
            return hour - 1 or 12, 60 - minutes, j + 1
    return None


def find_time(
    tokens: list[Token], *, expecting: bool = False, pm_below: int = 8
) -> ClockTime | None:
    """The last time of day said in `tokens` (a correction comes last: "не в три, в четыре")."""
    found: ClockTime | None = None
    i = 0
    while i < len(tokens):
        if tokens[i].has("полдень"):
            found = ClockTime(12, 0, i, i + 1)
            i += 1
            continue
        hit = _half_or_quarter(tokens, i) or _hour_phrase(tokens, i, expecting)
        if hit is None:
            i += 1
            continue
        hour, minute, end = hit
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            i += 1
            continue
        hour = _apply_daypart(hour, _daypart(tokens, i, end), pm_below)
        if end < len(tokens) and tokens[end].text in _DAYPART_AFTER:
            end += 1  # "дня" of "в два часа дня" is the time's, not a date's
        found = ClockTime(hour, minute, i, end)
        i = end
    return found
