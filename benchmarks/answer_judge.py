"""Judges the clinic robot's answers by the facts they must and must not contain.

No LLM judges here (there is none better than the robot's own): a case lists facts, each a list of
alternative phrases, and a reply is compared with them as lemmas with numbers normalised, so
"полторы тысячи рублей", "1 500 руб." and "1500 рублей" are the same fact, and "приём"/"приёма"
match (`voiceplat.knowledge.lemmas`).

- `must`: every fact must be in the reply: all lemmas of one of its alternatives, anywhere (word
  order is free); `@dont_know` and `@goodbye` stand for the usual "I don't know" and "goodbye".
- `must_not`: phrases the reply must not claim. A phrase is claimed when its lemmas occur close
  together (within `len + WINDOW_SLACK` words), not negated nor asked ("ли"): "мы делаем
  прививки" claims "делать прививка", "не знаю, делаем ли мы прививки" does not.
- invented numbers: a number in the reply that is in neither the knowledge, the prompt nor the
  caller's words (given as `known_numbers`) is a claim too ("приём стоит 1000 рублей" when the
  knowledge says 1500). 1 and 2 are left out: "один"/"пару" are words more than figures. An hour
  may be said either way round the clock ("в 3" = "в 15").
- tool: what the turn did against the case's `tool`: a name, null (nothing may be done) or a
  list of acceptable ones (null among them). What it did: `reply.tool_calls` names; a booking
  form asking, confirming or submitting (`reply.form_step` "Ask" | "Confirm" | "Submit") counts
  as the form's tool (`form_tool`); `reply.ends_call` (or an `[END]` left in the text) as
  `end_call`; `reply.transfer` as `transfer`.

A verdict is correct when no fact is missing, nothing is claimed and the tool is right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voiceplat.knowledge.lemmas import lemma

HALVES = ("tune", "heldout", "fresh", "fresh2", "fresh3", "fresh4")
CATEGORIES = ("known", "unknown", "booking", "transfer", "smalltalk", "goodbye")
WINDOW_SLACK = 3
"""How many other words a `must_not` phrase's words may have between them and still be one claim."""
NEGATORS = frozenset({"не", "нет", "ни", "нельзя"})
FREE_NUMBERS = frozenset({"0", "1", "2"})

MACROS: dict[str, tuple[str, ...]] = {
    "@dont_know": tuple(
        "не знать|нет информации|нет сведений|нет данных|не могу сказать|не могу подсказать|"
        "не подскажу|не располагать|уточнить|соединить|переключить|перевести звонок|"
        "передать администратор|передать вопрос|перезвонить".split("|")
    ),
    "@goodbye": tuple(
        "до свидания|всего доброго|всего хорошего|хорошего дня|доброго дня|до встречи|"
        "выздоравливать|будьте здоровы".split("|")
    ),
}

# --- words and numbers ----------------------------------------------------------------------

_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3})((?:[ \u00a0\u202f]\d{3})+)(?![\d])")
_TIME = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)")
_DECIMAL = re.compile(r"(?<=\d),(?=\d)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+(?:-[^\W\d_]+)*|₽")

_UNITS = {
    "ноль": 0, "один": 1, "два": 2, "три": 3, "четыре": 4,
    "пять": 5, "шесть": 6, "семь": 7, "восемь": 8, "девять": 9,
}  # fmt: skip
_TEENS = {
    "десять": 10, "одиннадцать": 11, "двенадцать": 12, "тринадцать": 13, "четырнадцать": 14,
    "пятнадцать": 15, "шестнадцать": 16, "семнадцать": 17, "восемнадцать": 18, "девятнадцать": 19,
}  # fmt: skip
_TENS = {
    "двадцать": 20, "тридцать": 30, "сорок": 40, "пятьдесят": 50,
    "шестьдесят": 60, "семьдесят": 70, "восемьдесят": 80, "девяносто": 90,
}  # fmt: skip
_HUNDREDS = {
    "сто": 100, "двести": 200, "триста": 300, "четыреста": 400, "пятьсот": 500,
    "шестьсот": 600, "семьсот": 700, "восемьсот": 800, "девятьсот": 900,
}  # fmt: skip
_ORDINAL_UNITS = {
    "первый": 1, "второй": 2, "третий": 3, "четвертый": 4, "пятый": 5,
    "шестой": 6, "седьмой": 7, "восьмой": 8, "девятый": 9,
}  # fmt: skip
_ORDINAL_TEENS = {
    "десятый": 10, "одиннадцатый": 11, "двенадцатый": 12, "тринадцатый": 13, "четырнадцатый": 14,
    "пятнадцатый": 15, "шестнадцатый": 16, "семнадцатый": 17, "восемнадцатый": 18,
    "девятнадцатый": 19,
}  # fmt: skip
_PLACES = (
    (_HUNDREDS, 100),
    ({**_TENS, "двадцатый": 20, "тридцатый": 30}, 10),
    ({**_TEENS, **_ORDINAL_TEENS}, 1),  # a teen fills the tens and the units
    ({**_UNITS, **_ORDINAL_UNITS}, 1),
)
_MULTIPLIERS = {"тысяча": 1000, "миллион": 1_000_000}
_HOUR_AFTER = frozenset({"в", "с", "до", "после", "к", "около", "со"})
_DATE_WORDS = frozenset(
    "январь февраль март апрель май июнь июль август сентябрь октябрь ноябрь декабрь год".split()
)
_ALIASES = {"лора": "лор", "руб": "рубль", "р": "рубль", "₽": "рубль"}
"""Lemmas pymorphy3 gets differently for forms of one word ("ЛОРу" → "лора"), and abbreviations."""


def _numeral(word: str) -> tuple[int, int] | None:
    """(value, place) of a number word's lemma: place 100, 10 or 1 is the digit it fills."""
    for table, place in _PLACES:
        if word in table:
            return table[word], place
    return None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _fold_numbers(words: Sequence[str]) -> list[str]:
    """Lemmas with runs of number words (and digits before "тысяча") turned into one number."""
    out: list[str] = []
    total = 0.0
    group: float = 0.0
    smallest: int | None = None  # the smallest place the group has filled; None: group empty
    open_number = False

    def flush() -> None:
        nonlocal total, group, smallest, open_number
        if open_number:
            out.append(_fmt(total + group))
        total, group, smallest, open_number = 0.0, 0.0, None, False

    for word in words:
        if word in _MULTIPLIERS:
            multiplier = _MULTIPLIERS[word]
            if open_number and total and not group:
                flush()  # "тысяча, тысяча": two numbers
            total += (group or 1) * multiplier
            group, smallest, open_number = 0.0, None, True
            continue
        if word == "полтора":
            flush()
            group, smallest, open_number = 1.5, 1, True
            continue
        if re.fullmatch(r"\d+(?:\.\d+)?", word):
            flush()
            group, smallest, open_number = float(word), 1, True
            continue
        numeral = _numeral(word)
        if numeral is None:
            flush()
            out.append(word)
            continue
        value, place = numeral
        if smallest is not None and place >= smallest:
            flush()  # "девять тридцать", "восемь восемь": a new number starts
        group, smallest, open_number = group + value, place, True
    flush()
    return out


def _clock_hours(tokens: list[str]) -> list[str]:
    """ "8 вечера" → 20, "в 3 часа дня" → 15: an hour said with its part of the day is the 24-hour
    figure, as the knowledge writes times (20:00). "через 3 дня" stays 3 days."""
    result = list(tokens)
    for i, token in enumerate(tokens):
        if not token.isdigit():
            continue
        n = int(token)
        j = i + 1
        said_hour = j < len(tokens) and tokens[j] == "час"
        if said_hour:
            j += 1
        part = tokens[j] if j < len(tokens) else ""
        after_preposition = i > 0 and tokens[i - 1] in _HOUR_AFTER
        if part == "вечер" and 1 <= n <= 11:
            result[i] = str(n + 12)
        elif part == "день" and 1 <= n <= 6 and (said_hour or after_preposition):
            result[i] = str(n + 12)
    return result


def tokens(text: str) -> list[str]:
    """The text's lemmas, lower case, "ё" as "е", numbers as digits ("1500", "1.5", "20")."""
    text = text.lower().replace("ё", "е")
    text = _THOUSANDS.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), text)
    text = _TIME.sub(lambda m: m.group(1) + ("" if m.group(2) == "00" else " " + m.group(2)), text)
    text = _DECIMAL.sub(".", text)
    words = [w if w[0].isdigit() else lemma(w) for w in _TOKEN.findall(text)]
    words = [_ALIASES.get(w, w) for w in words]
    return _clock_hours(_fold_numbers(words))


def numbers(text: str) -> set[str]:
    """Every number the text says, normalised (see `tokens`)."""
    return {t for t in tokens(text) if t[0].isdigit()}


def _claimable(said: list[str]) -> set[str]:
    """The numbers of a reply that state facts: a date ("15 декабря", "2025 год") the robot
    worked out from the caller's "в пятницу" is not one."""
    return {
        t
        for t, after in zip(said, [*said[1:], ""][: len(said)], strict=True)
        if t[0].isdigit() and after not in _DATE_WORDS
    }


def _either_clock(values: Iterable[str]) -> set[str]:
    """Hours 1–23 both ways round the clock: a caller's "в три" is the robot's "в 15"."""
    out = set(values)
    for value in list(out):
        if value.isdigit() and 1 <= int(value) <= 23:
            n = int(value)
            out.add(str(n + 12 if n <= 11 else n - 12 if n >= 13 else n))
    return out


# --- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    half: str
    category: str
    say: str
    must: tuple[tuple[str, ...], ...] = ()
    must_not: tuple[str, ...] = ()
    tool: tuple[str | None, ...] = (None,)
    """The acceptable actions; None: doing nothing is right."""
    history: tuple[tuple[str, str], ...] = ()


class CaseError(ValueError):
    pass


def _expand(alternatives: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for alternative in alternatives:
        if alternative.startswith("@"):
            if alternative not in MACROS:
                raise CaseError(f"unknown macro {alternative!r} (known: {', '.join(MACROS)})")
            out.extend(MACROS[alternative])
        else:
            out.append(alternative)
    return tuple(out)


def case_from_dict(data: dict[str, Any]) -> Case:
    """A case from its JSON object; CaseError says what is wrong with it."""
    known = {"id", "half", "category", "say", "must", "must_not", "tool", "history"}
    if unknown := set(data) - known:
        raise CaseError(f"unknown fields {sorted(unknown)}")
    for key in ("id", "half", "category", "say"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise CaseError(f"{key!r} must be a non-empty string")
    if data["half"] not in HALVES:
        raise CaseError(f"half {data['half']!r} is not one of {HALVES}")
    if data["category"] not in CATEGORIES:
        raise CaseError(f"category {data['category']!r} is not one of {CATEGORIES}")
    must: list[tuple[str, ...]] = []
    for fact in data.get("must", []):
        if isinstance(fact, str):
            fact = [fact]
        if not isinstance(fact, list) or not fact or not all(isinstance(a, str) for a in fact):
            raise CaseError(f"a 'must' fact must be a list of strings, not {fact!r}")
        must.append(_expand(fact))
    must_not: list[str] = []
    for item in data.get("must_not", []):
        alternatives = [item] if isinstance(item, str) else item
        if not isinstance(alternatives, list) or not all(isinstance(a, str) for a in alternatives):
            raise CaseError(f"a 'must_not' item must be a string or a list of them, not {item!r}")
        must_not.extend(_expand(alternatives))
    for phrase in [a for fact in must for a in fact] + must_not:
        if not tokens(phrase):
            raise CaseError(f"the phrase {phrase!r} has no words")
    tool = data.get("tool")
    accepted = tuple(tool) if isinstance(tool, list) else (tool,)
    if not accepted or not all(t is None or (isinstance(t, str) and t) for t in accepted):
        raise CaseError(f"'tool' must be null, a name or a list of them, not {tool!r}")
    history: list[tuple[str, str]] = []
    for turn in data.get("history", []) or []:
        ok = isinstance(turn, list) and len(turn) == 2 and turn[0] in ("user", "assistant")
        if not ok or not isinstance(turn[1], str):
            raise CaseError(f'a history turn must be ["user"|"assistant", text], not {turn!r}')
        history.append((turn[0], turn[1]))
    fields = (data["id"], data["half"], data["category"], data["say"])
    return Case(*fields, tuple(must), tuple(must_not), accepted, tuple(history))


def load_cases(path: Path) -> list[Case]:
    """The cases of a JSONL file (one object a line; blank lines and `//` lines skipped)."""
    cases: list[Case] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            case = case_from_dict(json.loads(line))
        except (json.JSONDecodeError, CaseError) as error:
            raise CaseError(f"{path}:{number}: {error}") from None
        if case.id in seen:
            raise CaseError(f"{path}:{number}: id {case.id!r} is used twice")
        seen.add(case.id)
        cases.append(case)
    return cases


# --- judging --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    correct: bool
    invented: bool
    tool_right: bool
    missing: list[str] = field(default_factory=list)
    """The first alternative of each fact the reply lacks."""
    claimed: list[str] = field(default_factory=list)
    """The `must_not` phrases the reply claims, and "число N" for each invented number."""
    actions: list[str] = field(default_factory=list)


def _text_of(reply: object) -> str:
    text = reply if isinstance(reply, str) else getattr(reply, "text", "")
    return str(text or "")


FORM_WORKING = frozenset({"Ask", "Confirm", "Submit"})
"""The form steps that mean the form took the turn (it is collecting or has sent the booking)."""


def actions(reply: object, form_tool: str | None = None) -> set[str]:
    """What the turn did: tools called, the form working, the call ended or transferred."""
    done: set[str] = set()
    for call in getattr(reply, "tool_calls", None) or ():
        name = call.get("name") if isinstance(call, dict) else getattr(call, "name", None)
        if name:
            done.add(str(name))
    if form_tool and getattr(reply, "form_step", None) in FORM_WORKING:
        done.add(form_tool)
    if getattr(reply, "ends_call", False) is True or "[END]" in _text_of(reply):
        done.add("end_call")
    if getattr(reply, "transfer", False) is True:
        done.add("transfer")
    return done


def _claims(reply: list[str], phrase: list[str]) -> bool:
    """The phrase's lemmas close together in the reply, not negated (unless the phrase is)."""
    wanted = set(phrase)
    negated_phrase = bool(wanted & NEGATORS)
    width = len(phrase) + WINDOW_SLACK
    for start, token in enumerate(reply):
        if token not in wanted:
            continue
        window = reply[start : start + width]
        if not wanted <= set(window):
            continue
        end = start + max(window.index(t) for t in wanted)
        hedged = "ли" in reply[start : end + 2]  # "не знаю, есть ли массаж" asks, not claims
        if not hedged and (
            negated_phrase or not NEGATORS & set(reply[max(0, start - 2) : end + 1])
        ):
            return True
    return False


def judge(
    case: Case,
    reply: object,
    *,
    known_numbers: Iterable[str] | None = None,
    form_tool: str | None = None,
) -> Verdict:
    """The verdict on one reply (a str, or an object with .text and optionally .tool_calls,
    .form_step, .ends_call, .transfer). `known_numbers`: the numbers the knowledge and prompt
    say; when given, any other number in the reply is an invented claim. `form_tool`: the tool
    the robot's booking form fills."""
    text = _text_of(reply).replace("[END]", " ")
    said = tokens(text)
    said_set = set(said)
    missing = [
        fact[0] for fact in case.must if not any(set(tokens(alt)) <= said_set for alt in fact)
    ]
    claimed = [phrase for phrase in case.must_not if _claims(said, tokens(phrase))]
    if known_numbers is not None:
        caller = [case.say] + [text for _, text in case.history]
        allowed = _either_clock(set(known_numbers).union(*(numbers(t) for t in caller)))
        for number in sorted(_claimable(said) - allowed - FREE_NUMBERS, key=float):
            claimed.append(f"число {number}")
    done = actions(reply, form_tool)
    names = {t for t in case.tool if t is not None}
    tool_right = (not done and None in case.tool) or (bool(done) and done <= names)
    return Verdict(
        correct=not missing and not claimed and tool_right,
        invented=bool(claimed),
        tool_right=tool_right,
        missing=missing,
        claimed=claimed,
        actions=sorted(done),
    )
