"""Streamed LLM text → speakable segments, and the end-of-call marker.

`SentenceSplitter` is fed LLM chunks as they arrive and hands out whole sentences the moment
they end, so TTS can start on sentence one while the LLM is still writing sentence two. The
first segment may be cut early at a clause boundary: the caller hears the robot sooner.
`boundaries` holds the rules it uses (abbreviations, numbers, ellipses); `chunking.ChunkPlanner`
uses the same rules to cut by time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Literal

_TERMINATORS = ".!?…"
_CLOSERS = "\"'»”’)]"
_CLAUSE = ",;:—–"

# Abbreviations that are followed by more of the same sentence ("ул. Ленина", "Dr. Smith",
# "т.е. завтра"): a period after them never ends a sentence. Lower case, without the last dot.
_NEVER_END = frozenset(
    "т.е т.к т.н напр ул пр просп пер д г гг им тел стр св проф акад доц "
    "mr mrs ms dr st prof vs e.g i.e cf approx".split()
)
# Abbreviations that often end a sentence too ("… и т.д. Далее", "500 руб. Записать вас?"):
# a period after them ends a sentence only when the next word starts with a capital letter.
_MAY_END = frozenset(
    "т.д т.п др руб коп тыс млн млрд мин сек ч см etc inc ltd co corp jr sr".split()
)  # fmt: skip
# Initials and dotted letters: "А. С. Пушкин", "А.С. Пушкин", "U.S. law", "д. 5".
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")


@dataclass(frozen=True, slots=True)
class Boundary:
    """A place where streamed text may be cut: the segment is buf[:end]."""

    end: int
    kind: Literal["newline", "clause", "sentence", "space", "pending"]
    """newline / clause (",;:—–" before a space) / sentence (a real end, abbreviations and numbers
    ruled out) / space (buf[end] is whitespace after a word: a word boundary, not judged here) /
    pending (buf[end:] may end a sentence, but that depends on text not yet in: end is len(buf))."""


def boundaries(buf: str) -> Iterator[Boundary]:
    """The boundaries in `buf` (which never starts with whitespace), in order.

    Stops after a `pending` one: what follows it is not known yet. The rules (abbreviations,
    initials, decimals, list numbers, ellipses) are the ones SentenceSplitter and ChunkPlanner
    share.
    """
    n = len(buf)
    i = 0
    while i < n:
        c = buf[i]
        if c.isspace():
            if c == "\n" and i > 0:
                yield Boundary(i, "newline")
            elif i > 0 and not buf[i - 1].isspace():
                yield Boundary(i, "space")
            i += 1
            continue
        if c in _CLAUSE:
            if i + 1 < n and buf[i + 1].isspace():
                yield Boundary(i + 1, "clause")
            elif i + 1 == n and _ends_clause(buf, i):
                yield Boundary(n, "clause")  # no need to wait a token for the space after it
        if c not in _TERMINATORS:
            i += 1
            continue
        j = i
        while j < n and buf[j] in _TERMINATORS:
            j += 1
        while j < n and buf[j] in _CLOSERS:
            j += 1
        if j == n:
            yield Boundary(n, "pending")
            return
        if not buf[j].isspace():  # "3.5", "9.00", "e.g.," — not an end
            i = j
            continue
        verdict = sentence_end(buf, i, j)
        if verdict is None:  # depends on the next word, which has not arrived yet
            yield Boundary(n, "pending")
            return
        if verdict:
            yield Boundary(j, "sentence")
        i = j


def sentence_end(buf: str, start: int, end: int) -> bool | None:
    """Whether the terminators in buf[start:end] (followed by whitespace) end a sentence.

    None when it depends on the case of the next word and that word is not in yet.
    """
    marks = buf[start:end]
    if "!" in marks or "?" in marks:
        return True
    if "…" not in marks and marks.count(".") == 1:
        word = word_before(buf, start).lower()
        if word not in _MAY_END:
            if is_abbreviation(word):
                return False
            # A list item number ("1. Первое") is not a sentence of its own.
            return not buf[:start].isdigit()
    # An ellipsis or an abbreviation that may end a sentence: a lower-case next word means
    # the sentence goes on ("Ну… я не знаю", "500 руб. в месяц").
    k = end
    while k < len(buf) and buf[k].isspace():
        k += 1
    if k == len(buf):
        return None
    return not buf[k].islower()


def is_abbreviation(word: str) -> bool:
    """Whether `word` (lower case, without its last dot) is an abbreviation or an initial."""
    return word in _NEVER_END or word in _MAY_END or _INITIALS.fullmatch(word) is not None


def cut_long(buf: str, limit: int) -> int:
    """Where to cut text longer than `limit`: the last clause, else space, else hard at limit."""
    for i in range(min(limit, len(buf) - 1) - 1, 0, -1):
        if buf[i] in _CLAUSE and buf[i + 1].isspace():
            return i + 1
    space = buf.rfind(" ", 1, limit + 1)
    return space if space > 0 else limit


def speakable(segment: str) -> bool:
    """A segment of bare punctuation ("…", "—") has nothing to say; TTS would choke on it."""
    return any(c.isalnum() for c in segment)


class SentenceSplitter:
    """Splits streamed text into sentences; one instance per robot reply (flush() ends it)."""

    def __init__(self, first_clause_min_chars: int = 30, max_chars: int = 200) -> None:
        if max_chars < 20:
            raise ValueError(f"max_chars must be at least 20, got {max_chars}")
        self.first_clause_min_chars = first_clause_min_chars
        self.max_chars = max_chars
        self._buf = ""
        self._first = True

    def push(self, chunk: str) -> list[str]:
        """Adds a chunk; returns the segments it completed (often none)."""
        self._buf = (self._buf + chunk) if self._buf else chunk.lstrip()
        out: list[str] = []
        while (end := self._find_end(final=False)) is not None:
            self._emit(end, out)
        return out

    def flush(self) -> list[str]:
        """Ends the reply: returns what is left; the next push starts a new reply."""
        out: list[str] = []
        while self._buf:
            end = self._find_end(final=True)
            self._emit(len(self._buf) if end is None else end, out)
        self._first = True
        return out

    def _emit(self, end: int, out: list[str]) -> None:
        segment = self._buf[:end].strip()
        self._buf = self._buf[end:].lstrip()
        if speakable(segment):
            out.append(segment)
            self._first = False

    def _find_end(self, *, final: bool) -> int | None:
        """End (exclusive) of the next segment in the buffer, or None to wait for more text."""
        end = self._boundary(final)
        if end is not None and end <= self.max_chars:
            return end
        if end is None and len(self._buf) <= self.max_chars:
            return None
        return cut_long(self._buf, self.max_chars)

    def _boundary(self, final: bool) -> int | None:
        for boundary in boundaries(self._buf):
            kind = boundary.kind
            if kind in ("newline", "sentence"):
                return boundary.end
            if kind == "pending":
                return boundary.end if final else None
            if kind == "clause" and self._first and boundary.end >= self.first_clause_min_chars:
                return boundary.end
        return None


def _ends_clause(buf: str, index: int) -> bool:
    """A clause mark that needs no look-ahead: a comma after a letter ("37,5" has digits), a dash
    after a space ("врачей —")."""
    before = buf[index - 1] if index else ""
    if buf[index] in "—–":
        return before.isspace()
    return before.isalpha()


def word_before(buf: str, index: int) -> str:
    """The token that ends right before buf[index], made of word characters and dots."""
    start = index
    while start > 0 and (buf[start - 1].isalnum() or buf[start - 1] in "._"):
        start -= 1
    return buf[start:index]


def strip_marker(text: str, marker: str) -> tuple[str, bool]:
    """Removes every `marker` (e.g. "[END]", any case) from text; says whether there was one."""
    if not marker:
        return text, False
    cleaned, count = re.subn(r"\s*" + re.escape(marker), "", text, flags=re.IGNORECASE)
    if not count:
        return text, False
    # "Готово, [END]." must not leave "Готово,." behind.
    return re.sub(r"[,;:]\s*([.!?…])", r"\1", cleaned).strip(), True


async def aiter_list(items: list[str]) -> AsyncIterator[str]:
    """Sentences known in advance, as the stream a robot turn takes."""
    for item in items:
        yield item
