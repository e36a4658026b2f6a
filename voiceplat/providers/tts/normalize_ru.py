"""Russian text normalisation for local TTS engines.

Two steps, usable apart:

- `expand` says everything in words (ru-normalizr, TTS mode): numbers, dates, times, units,
  abbreviations (`МВД` → `эм вэ дэ`), and it transliterates Latin words (`iPhone` → `айфоун`).
- `clean_for_festival` keeps only what Festival's Russian voice can read: Cyrillic letters,
  spaces and `,.!?-`. Festival fails on digits, Latin letters, quotes, dashes and a space before
  punctuation (in server mode it answers ER; `text2wave` even exits 0 with a broken WAV).
  Decisions: quotes are dropped; `—`, `–`, `:`, `;` and a free-standing `-` become a comma (a
  pause); `…` becomes a full stop; a hyphen survives only inside a word (`кто-то`); any Latin
  letter or digit that `expand` left behind is dropped. A text with no Cyrillic letter at all
  becomes "" (nothing to say), which callers treat as silence, not as an error.

`expand` takes 1-60 ms per sentence and imports ru-normalizr (0.3 s) on first use: call it off
the event loop (`asyncio.to_thread`).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ru_normalizr import Normalizer

_LETTER = "а-яёА-ЯЁ"
_QUOTES = re.compile(r"[«»„“”‟\"'`‘’‚‹›]")
_PAUSES = re.compile(r"[—–―‒:;]")
_ELLIPSIS = re.compile(r"…")
_NOT_ALLOWED = re.compile(rf"[^{_LETTER}\s,.!?\-]")
_INNER_HYPHEN = re.compile(rf"(?<=[{_LETTER}])-(?=[{_LETTER}])")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?])")
_PUNCT_RUN = re.compile(r"[,.!?](?:\s*[,.!?])+")
_PUNCT_THEN_LETTER = re.compile(rf"([,.!?])(?=[{_LETTER}])")
_LEADING_PUNCT = re.compile(r"^[\s,.!?]+")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_HAS_LETTER = re.compile(rf"[{_LETTER}]")

_WHOLE_HOUR = re.compile(r"(?<![\d:])(\d{1,2}):00(?![\d:])")
_RANGE = re.compile(
    r"(?:\b(через|за|на|по|в|во|с|со|до|от|около|после)\s+)?"
    r"(?<![\d\-–—])(\d{1,3})\s*[–—-]\s*(\d{1,3})(?![\d\-–—])",
    re.IGNORECASE,
)

_lock = threading.Lock()


def _spoken_ranges(text: str) -> str:
    """What a knowledge file writes for the eye, as a person says it: "с 9:00 до 15:00" is
    "с девяти до пятнадцати" (not "девяти часов ноля минут"), "8–12 часов" is "от восьми до
    двенадцати часов" (not "восемь, двенадцать"), "через 1–2 дня" "через один или два дня".
    A phone number's "123-45-67" and a year's "2020-2021" are left alone."""
    text = _WHOLE_HOUR.sub(r"\1", text)
    return _RANGE.sub(_range_words, text)


def _range_words(match: re.Match[str]) -> str:
    preposition, low, high = match.groups()
    # After a preposition "от … до" cannot follow: "через 1–2 дня" is "через один или два дня".
    if not preposition:
        return f"от {low} до {high}"
    if preposition.lower() in ("с", "со", "от"):  # "с 8:00–20:00"
        return f"{preposition} {low} до {high}"
    return f"{preposition} {low} или {high}"


@lru_cache(maxsize=1)
def _normalizer() -> Normalizer:
    from ru_normalizr import NormalizeOptions, Normalizer

    return Normalizer(NormalizeOptions.tts())


def expand(text: str) -> str:
    """Says numbers, abbreviations and Latin words in Cyrillic words (ru-normalizr, TTS mode)."""
    if not text.strip():
        return ""
    # One normaliser per process; the lock keeps its caches safe when calls share it.
    text = _spoken_ranges(text)
    with _lock:
        return _normalizer().normalize(text)


def _strongest(run: str) -> str:
    """One mark for a run like `?!` or `, .`: the question wins, then `!`, then `.`."""
    for mark in "?!.":
        if mark in run:
            return mark
    return ","


def clean_for_festival(text: str) -> str:
    """Keeps Cyrillic letters, single spaces and `,.!?-` placed the way Festival accepts them."""
    text = _QUOTES.sub("", text)
    text = _ELLIPSIS.sub(".", text)
    text = _PAUSES.sub(",", text)
    text = _NOT_ALLOWED.sub(" ", text)
    # A hyphen joins a word (кто-то); anywhere else it stands for a dash, i.e. a pause.
    text = _INNER_HYPHEN.sub("\0", text).replace("-", ",").replace("\0", "-")
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _PUNCT_RUN.sub(lambda match: _strongest(match.group()), text)
    text = _PUNCT_THEN_LETTER.sub(r"\1 ", text)
    text = _LEADING_PUNCT.sub("", text).strip()
    return text if _HAS_LETTER.search(text) else ""


def normalize(text: str) -> str:
    """`expand` then `clean_for_festival`: Russian text as Festival's Russian voice can say it."""
    return clean_for_festival(expand(text))


def split_sentences(text: str) -> list[str]:
    """Splits cleaned text after `.`, `!` or `?`, so each sentence is voiced (and heard) alone."""
    return [part for part in _SENTENCE_END.split(text.strip()) if part]
