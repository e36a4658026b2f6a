"""Knowledge files as passages: the pieces retrieval finds and the LLM is given.

Markdown is split by headings; a passage keeps its heading path as its title ("Цены / Анализы"),
because a caller's words often match the heading, not the text. A section longer than
`max_chars` is split by paragraph, then line (lists), then sentence, then word. Plain text files
are read the same way (they usually have no headings; the file's name is the title).

FAQ pairs become question/answer passages, which the robot may speak as they are:
- "В: …" / "О: …", "Вопрос: …" / "Ответ: …", "Q: …" / "A: …" lines (bold markers allowed); an
  answer runs until a blank line, the next question or a heading;
- a heading that ends with "?" and the text under it.
An answer longer than `max_chars` is kept as ordinary passages (too long to speak as is).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from voiceplat.errors import RobotError

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_QUESTION = re.compile(r"^\s*(?:[-*]\s+)?(?:Q|В|Вопрос|Question)\s*:\s*(.*)$", re.IGNORECASE)
_ANSWER = re.compile(r"^\s*(?:[-*]\s+)?(?:A|О|O|Ответ|Answer)\s*:\s*(.*)$", re.IGNORECASE)
_EMPHASIS = re.compile(r"\*\*|__")
_SENTENCE_END = re.compile(r"(?<=[.!?…;])\s+")


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable piece of a knowledge file."""

    source: str
    """Where it starts: "knowledge.md:12" (the path relative to the robot folder, 1-based line)."""
    title: str
    text: str
    question: str | None = None
    """An FAQ passage's question; None for ordinary text."""
    answer: str | None = None
    """An FAQ passage's answer, spoken as is when the robot answers directly."""


@dataclass(slots=True)
class _Block:
    """A run of text lines and where it starts."""

    line: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()


def read_passages(path: Path, label: str, max_chars: int) -> list[Passage]:
    """The passages of one knowledge file. RobotError (naming `label`) when it cannot be used."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RobotError(f"{label}: cannot be read ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RobotError(
            f"{label}: not UTF-8 text (bad byte at offset {error.start}); save it as UTF-8"
        ) from None
    if not text.strip():
        raise RobotError(f"{label}: the file is empty")
    passages = parse_passages(text, label, max_chars)
    if not passages:
        raise RobotError(f"{label}: has headings but no text under them")
    return passages


def parse_passages(text: str, label: str, max_chars: int) -> list[Passage]:
    """Split one file's text into passages; `label` names the file in each passage's source."""
    default_title = Path(label).stem.replace("_", " ")
    passages: list[Passage] = []
    for path, heading_line, body in _sections(text):
        title = " / ".join(path) or default_title
        if path and path[-1].endswith("?"):
            # "## Можно ли прийти без записи?" and the text under it: an FAQ pair.
            answer = _Block(heading_line + 1, body).text
            if answer and not any(_QUESTION.match(_plain(line)) for line in body):
                parent = " / ".join(path[:-1]) or default_title
                passages.extend(
                    _faq(label, heading_line, parent, title, path[-1], answer, max_chars)
                )
                continue
        pairs, rest = _pairs(body, heading_line + 1)
        passages.extend(_chunks(label, title, rest, max_chars))
        for line, question, answer in pairs:
            passages.extend(_faq(label, line, title, title, question, answer, max_chars))
    passages.sort(key=lambda p: int(p.source.rsplit(":", 1)[1]))
    return passages


def _plain(line: str) -> str:
    return _EMPHASIS.sub("", line)


def _sections(text: str) -> Iterator[tuple[list[str], int, list[str]]]:
    """(heading path, the heading's line, the lines under it) for every section, in order."""
    stack: list[tuple[int, str]] = []
    heading_line = 0
    body: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _HEADING.match(raw)
        if match is None:
            body.append(raw)
            continue
        yield [title for _, title in stack], heading_line, body
        level = len(match.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, _plain(match.group(2)).strip()))
        heading_line, body = number, []
    yield [title for _, title in stack], heading_line, body


def _pairs(body: list[str], first_line: int) -> tuple[list[tuple[int, str, str]], list[_Block]]:
    """The "В:/О:" pairs in a section's lines, and the paragraphs of everything else."""
    pairs: list[tuple[int, str, str]] = []
    paragraphs: list[_Block] = []
    question: _Block | None = None
    answer: list[str] | None = None
    paragraph: _Block | None = None

    def close_pair() -> None:
        nonlocal question, answer
        if question is not None:
            reply = " ".join(answer or []).strip()
            if reply:
                pairs.append((question.line, " ".join(question.lines).strip(), reply))
            else:  # a question nobody answered is just text
                paragraphs.append(question)
        question, answer = None, None

    for number, raw in enumerate(body, start=first_line):
        line = _plain(raw).strip()
        asked, answered = _QUESTION.match(line), _ANSWER.match(line)
        if asked:
            close_pair()
            paragraph = None
            question = _Block(number, [asked.group(1)])
        elif question is not None and answer is None and answered:
            answer = [answered.group(1)]
        elif question is not None and answer is not None:
            if line:
                answer.append(line)
            else:
                close_pair()
        elif question is not None:
            if line:
                question.lines.append(line)
        elif not line:
            paragraph = None
        elif paragraph is None:
            paragraph = _Block(number, [raw.rstrip()])
            paragraphs.append(paragraph)
        else:
            paragraph.lines.append(raw.rstrip())
    close_pair()
    paragraphs.sort(key=lambda block: block.line)
    return pairs, paragraphs


def _faq(
    label: str,
    line: int,
    title: str,
    long_title: str,
    question: str,
    answer: str,
    max_chars: int,
) -> list[Passage]:
    if len(answer) > max_chars:
        # Too long to speak as is: ordinary passages titled with the question.
        if long_title == title:
            long_title = f"{title} / {question}"
        return _chunks(label, long_title, [_Block(line + 1, [answer])], max_chars)
    return [Passage(f"{label}:{line}", title, f"{question}\n{answer}", question, answer)]


def _chunks(label: str, title: str, paragraphs: list[_Block], max_chars: int) -> list[Passage]:
    """Paragraphs packed into passages of at most `max_chars` characters."""
    passages: list[Passage] = []
    start = 0
    parts: list[str] = []

    def flush() -> None:
        if parts:
            passages.append(Passage(f"{label}:{start}", title, "\n".join(parts)))
            parts.clear()

    for line, piece in _pieces(paragraphs, max_chars):
        if parts and sum(len(p) + 1 for p in parts) + len(piece) > max_chars:
            flush()
        if not parts:
            start = line
        parts.append(piece)
    flush()
    return passages


def _pieces(paragraphs: list[_Block], max_chars: int) -> Iterator[tuple[int, str]]:
    """Each paragraph, or its lines, sentences or word runs when it is longer than `max_chars`."""
    for paragraph in paragraphs:
        text = paragraph.text
        if not text:
            continue
        if len(text) <= max_chars:
            yield paragraph.line, text
            continue
        for offset, line in enumerate(paragraph.lines):
            line = line.strip()
            if not line:
                continue
            if len(line) <= max_chars:
                yield paragraph.line + offset, line
                continue
            for sentence in _SENTENCE_END.split(line):
                for piece in _word_runs(sentence, max_chars):
                    yield paragraph.line + offset, piece


def _word_runs(sentence: str, max_chars: int) -> Iterator[str]:
    run = ""
    for word in sentence.split():
        if run and len(run) + 1 + len(word) > max_chars:
            yield run
            run = ""
        run = f"{run} {word}" if run else word[:max_chars]
    if run:
        yield run
