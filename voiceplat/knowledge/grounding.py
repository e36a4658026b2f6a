"""The user message an LLM answers from: the passages found, then the caller's words.

The passages go in the user message of the current turn, not the system prompt, so the system
prompt stays the same on every turn and in the local LLM's prefix cache; the instruction to answer
only from them is part of the system prompt (`system_instruction`), evaluated once. Every character
here is evaluated on every turn, so the passages are bounded by `max_prompt_chars` and titled by
their own heading only. With nothing found the message still says so: a small model told "the
reference has nothing on this" says it does not know instead of inventing an answer.
"""

from __future__ import annotations

from voiceplat.forms.numbers import tokenize
from voiceplat.forms.state import is_question
from voiceplat.knowledge.index import Hit
from voiceplat.knowledge.settings import KnowledgeSettings

NOTHING_FOUND = "В справке нет сведений об этом."
NOTHING_ABOUT = "(В справке нет сведений про: "


def system_instruction(prompt: str, settings: KnowledgeSettings) -> str:
    """The robot's system prompt with the instruction to answer from the reference."""
    return f"{prompt.rstrip()}\n\n{settings.instruction.strip()}"


def grounded_message(
    text: str,
    hits: list[Hit],
    settings: KnowledgeSettings,
    unknown: list[str] | None = None,
    *,
    sentences: list[str] | None = None,
) -> str:
    """The passages (or that there are none), then the question prefix and the caller's words.
    Words that are no question and match no passage ("Меня зовут Анна") go as they are: told
    that the reference has nothing, a small model answers a greeting with "не знаю". `unknown`:
    the question's words no knowledge file has (`KnowledgeBase.unknown_nouns`). `sentences`:
    the knowledge sentences to give instead of the passages (`knowledge.reference`)."""
    question = is_question(text, tokenize(text))
    pieces = sentences if sentences is not None else [_passage_text(hit) for hit in hits]
    if not pieces and not question:
        return text.strip()
    budget = settings.max_prompt_chars
    parts: list[str] = []
    for passage in pieces:
        if parts and len(passage) > budget:
            break
        passage = _cut(passage, budget)
        parts.append(passage)
        budget -= len(passage) + 1
        if budget <= 0:
            break
    # The best passage last, next to the question: a small model leans on what it read last.
    reference = "\n".join(reversed(parts)) if parts else NOTHING_FOUND
    if parts and question and unknown:
        # Passages share the question's other words; a small model then answers from them
        # ("анализ на витамин Д — 500 рублей"): say what the reference lacks.
        reference += f"\n{NOTHING_ABOUT}{', '.join(unknown)}.)"
    # "Say you do not know" is for questions: a statement ("Меня зовут Анна") gets no such hint.
    prefix = settings.question_prefix if question else ""
    return f"Справка:\n{reference}\n\n{prefix}{text.strip()}"


def _cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at the last word boundary (with "…")."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:—–-") + "…"


def _passage_text(hit: Hit) -> str:
    passage = hit.passage
    if passage.question and passage.answer:
        # As "question: answer", like a heading: "question? — answer" the model reads back.
        return f"{passage.question.rstrip(' ?')}: {passage.answer}"
    body = " ".join(line.strip() for line in passage.text.splitlines() if line.strip())
    # The heading carries what the text leaves implicit ("Анализы: кровь — 500 ₽"); the path
    # above it (the document's title) costs tokens and says nothing.
    title = passage.title.rsplit(" / ", 1)[-1]
    return f"{title}: {body}" if title else body
