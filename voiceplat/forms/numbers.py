"""Russian speech as tokens with numbers: "восемь девятьсот шестнадцать" → 8, 916; "третьего" → 3rd.

A caller's words come from ASR as words or digits, whichever the recogniser chose. Form parsers
work on `Token`s: every word keeps all of its lemmas (pymorphy3's parses, so "лору" matches "лор"
and "три" is a number though it is also "тереть"), and number words are composed into numbers the
way they are spoken: a group ends where the next word cannot continue it ("сто двадцать три" is
one number, "восемь девятьсот" two), and an ordinal ends its group ("двадцать пятого" = 25th).
The other way, `number_words` and `ordinal_neuter` write numbers as words a TTS says well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from voiceplat.knowledge.lemmas import _analyzer

UNITS = {
    "ноль": 0,
    "нуль": 0,
    "один": 1,
    "два": 2,
    "три": 3,
    "четыре": 4,
    "пять": 5,
    "шесть": 6,
    "семь": 7,
    "восемь": 8,
    "девять": 9,
}
TEENS = {
    "десять": 10,
    "одиннадцать": 11,
    "двенадцать": 12,
    "тринадцать": 13,
    "четырнадцать": 14,
    "пятнадцать": 15,
    "шестнадцать": 16,
    "семнадцать": 17,
    "восемнадцать": 18,
    "девятнадцать": 19,
}
TENS = {
    "двадцать": 20,
    "тридцать": 30,
    "сорок": 40,
    "пятьдесят": 50,
    "шестьдесят": 60,
    "семьдесят": 70,
    "восемьдесят": 80,
    "девяносто": 90,
}
HUNDREDS = {
    "сто": 100,
    "двести": 200,
    "триста": 300,
    "четыреста": 400,
    "пятьсот": 500,
    "шестьсот": 600,
    "семьсот": 700,
    "восемьсот": 800,
    "девятьсот": 900,
}
ORDINALS = {
    "первый": 1,
    "второй": 2,
    "третий": 3,
    "четвертый": 4,
    "пятый": 5,
    "шестой": 6,
    "седьмой": 7,
    "восьмой": 8,
    "девятый": 9,
    "десятый": 10,
    "одиннадцатый": 11,
    "двенадцатый": 12,
    "тринадцатый": 13,
    "четырнадцатый": 14,
    "пятнадцатый": 15,
    "шестнадцатый": 16,
    "семнадцатый": 17,
    "восемнадцатый": 18,
    "девятнадцатый": 19,
    "двадцатый": 20,
    "тридцатый": 30,
}
_CARDINALS = {**UNITS, **TEENS, **TENS, **HUNDREDS}

# Clock times, digit groups with an ordinal ending ("25-го"), "+" of a phone number, words.
_TOKEN = re.compile(
    r"(?P<clock>\b\d{1,2}[:.]\d{2}(?![.:]?\d))|(?P<digits>\d+)(?:-(?:го|е|ое|ого|му|ему|й|ий|ой|м|я))?"
    r"|(?P<plus>\+)|(?P<word>[^\W\d_]+)",
    re.UNICODE,
)

_HYPHEN_IN_WORD = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")


@dataclass(frozen=True)
class Token:
    """One word of an utterance; a number when `value` is set (digits keep leading zeros)."""

    text: str
    forms: frozenset[str] = frozenset()
    value: int | None = None
    digits: str = ""
    ordinal: bool = False
    clock: tuple[int, int] | None = None

    def has(self, *lemmas: str) -> bool:
        return any(x in self.forms for x in lemmas)


@lru_cache(maxsize=65536)
def forms(word: str) -> frozenset[str]:
    """Every lemma pymorphy3 gives `word` (lower case, "ё" as "е"), and the word itself.

    All of them, not the likeliest: "лору" is "лора" first and "лор" second, and a form's
    option "лор" must match it."""
    word = word.lower().replace("ё", "е")
    # Prepositions and particles do not inflect, and their rare parses mislead ("к" as "как").
    if len(word) <= 2 or not re.search(r"[а-я]", word):
        return frozenset({word})
    found = {p.normal_form.replace("ё", "е") for p in _analyzer().parse(word)}
    return frozenset(found | {word})


def _number_word(word_forms: frozenset[str]) -> tuple[int, str, bool] | None:
    """(value, kind, ordinal) of a number word: kind is unit|teen|ten|hundred|thousand."""
    for f in word_forms:
        if f in ORDINALS:
            value = ORDINALS[f]
            return value, "unit" if value < 10 else "teen" if value < 20 else "ten", True
    for f in word_forms:
        if f in UNITS:
            return UNITS[f], "unit", False
        if f in TEENS:
            return TEENS[f], "teen", False
        if f in TENS:
            return TENS[f], "ten", False
        if f in HUNDREDS:
            return HUNDREDS[f], "hundred", False
        if f == "тысяча":
            return 1000, "thousand", False
    return None


# What may follow the last part of a number group and still be the same number.
_CONTINUES = {
    "hundred": {"ten", "teen", "unit"},
    "ten": {"unit"},
    "thousand": {"hundred", "ten", "teen", "unit"},
}


def _split_words(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    # Hyphenated words as their parts: "ухо-горло-нос" is said as three words ("25-го" stays).
    text = _HYPHEN_IN_WORD.sub(" ", text.lower().replace("ё", "е"))
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "word"
        piece = m.group(kind)
        # "полтретьего" is "пол третьего" (half past two), written as one word.
        if kind == "word" and piece.startswith("пол") and len(piece) > 6:
            rest = _number_word(forms(piece[3:]))
            if rest and rest[2]:
                out += [("word", "пол"), ("word", piece[3:])]
                continue
        ordinal_suffix = kind == "digits" and m.group(0) != piece
        out.append(("ordinal_digits" if ordinal_suffix else kind, piece))
    return out


def tokenize(text: str) -> list[Token]:
    """The utterance's tokens, number words composed into numbers (see the module docstring)."""
    tokens: list[Token] = []
    group: list[tuple[int, str]] = []  # the parts of the number being composed, and their kinds
    group_words: list[str] = []

    def flush(ordinal: bool = False) -> None:
        if not group:
            return
        value = 0
        for part, kind in group:
            value = (value or 1) * part if kind == "thousand" else value + part
        tokens.append(Token(" ".join(group_words), frozenset(), value, str(value), ordinal=ordinal))
        group.clear()
        group_words.clear()

    for kind, piece in _split_words(text):
        if kind == "clock":
            flush()
            hour, minute = re.split(r"[:.]", piece)
            tokens.append(Token(piece, clock=(int(hour), int(minute))))
            continue
        if kind in ("digits", "ordinal_digits"):
            flush()
            tokens.append(Token(piece, value=int(piece), digits=piece, ordinal=kind != "digits"))
            continue
        if kind == "plus":
            flush()
            tokens.append(Token("+"))
            continue
        word_forms = forms(piece)
        number = _number_word(word_forms)
        if number is None:
            flush()
            tokens.append(Token(piece, word_forms))
            continue
        value, part_kind, ordinal = number
        # Zero is always its own digit: "ноль пять" is 0, 5 (a phone's or a clock's "05").
        last_kind = group[-1][1] if group else None
        continues = part_kind in _CONTINUES.get(last_kind or "", set())
        if part_kind == "thousand":  # "две тысячи": a multiplier of what came before
            continues = last_kind is not None and all(k != "thousand" for _, k in group)
        if value == 0 or not continues:
            flush()
        group.append((value, part_kind))
        group_words.append(piece)
        if ordinal or value == 0:
            flush(ordinal)
    flush()
    return tokens


_UNIT_WORDS = "ноль один два три четыре пять шесть семь восемь девять".split()
_TEEN_WORDS = [w for w in TEENS]
_TEN_WORDS = {v: w for w, v in TENS.items()}
_HUNDRED_WORDS = {v: w for w, v in HUNDREDS.items()}
_FEMININE = {1: "одна", 2: "две"}


def number_words(n: int, *, feminine: bool = False) -> str:
    """0..999 as Russian words, nominative ("одна минута" with feminine=True)."""
    if not 0 <= n <= 999:
        raise ValueError(f"number_words: {n} is out of 0..999")
    if n == 0:
        return "ноль"
    parts: list[str] = []
    if n >= 100:
        parts.append(_HUNDRED_WORDS[n // 100 * 100])
        n %= 100
    if 10 <= n <= 19:
        parts.append(_TEEN_WORDS[n - 10])
        n = 0
    elif n >= 20:
        parts.append(_TEN_WORDS[n // 10 * 10])
        n %= 10
    if n:
        parts.append(_FEMININE[n] if feminine and n in _FEMININE else _UNIT_WORDS[n])
    return " ".join(parts)


_ORDINAL_NEUTER = {
    1: "первое",
    2: "второе",
    3: "третье",
    4: "четвёртое",
    5: "пятое",
    6: "шестое",
    7: "седьмое",
    8: "восьмое",
    9: "девятое",
    10: "десятое",
    11: "одиннадцатое",
    12: "двенадцатое",
    13: "тринадцатое",
    14: "четырнадцатое",
    15: "пятнадцатое",
    16: "шестнадцатое",
    17: "семнадцатое",
    18: "восемнадцатое",
    19: "девятнадцатое",
    20: "двадцатое",
    30: "тридцатое",
}


def ordinal_neuter(n: int) -> str:
    """A day of the month as said in a date: 3 → "третье", 25 → "двадцать пятое"."""
    if n in _ORDINAL_NEUTER:
        return _ORDINAL_NEUTER[n]
    if 21 <= n <= 31:
        return f"{_TEN_WORDS[n // 10 * 10]} {_ORDINAL_NEUTER[n % 10]}"
    raise ValueError(f"ordinal_neuter: {n} is not a day of a month")


def plural(n: int, one: str, few: str, many: str) -> str:
    """The noun form for n: 1 час, 2 часа, 5 часов (21 час, 11 часов)."""
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many
