"""The user message an LLM answers from: the passages found, then the caller's words.

The passages go in the user message of the current turn, not the system prompt, so the system
prompt stays the same on every turn and in the local LLM's prefix cache; the instruction to answer
only from them is part of the system prompt (`system_instruction`), evaluated once. Every character
here is evaluated on every turn, so the passages are bounded by `max_prompt_chars` and titled by
their own heading only. With nothing found the message still says so: a small model told "the
reference has nothing on this" says it does not know instead of inventing an answer.
"""

from __future__ import annotations

from voiceplat.knowledge.index import Hit
from voiceplat.knowledge.settings import KnowledgeSettings

NOTHING_FOUND = "В справке нет сведений об этом."


def system_instruction(prompt: str, settings: KnowledgeSettings) -> str:
    """The robot's system prompt with the instruction to answer from the reference."""
    return f"{prompt.rstrip()}\n\n{settings.instruction.strip()}"


def grounded_message(text: str, hits: list[Hit], settings: KnowledgeSettings) -> str:
    """The passages (or that there are none), then "Вопрос: <text>"."""
    budget = settings.max_prompt_chars
    parts: list[str] = []
    for hit in hits:
        passage = _passage_text(hit)
        if parts and len(passage) > budget:
            break
        passage = _cut(passage, budget)
        parts.append(passage)
        budget -= len(passage) + 1
        if budget <= 0:
            break
    reference = "\n".join(parts) if parts else NOTHING_FOUND
    return f"Справка:\n{reference}\n\nВопрос: {text.strip()}"


def _cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at the last word boundary (with "…")."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:—–-") + "…"


def _passage_text(hit: Hit) -> str:
    passage = hit.passage
    if passage.question and passage.answer:
        body = f"{passage.question} — {passage.answer}"
    else:
        body = " ".join(line.strip() for line in passage.text.splitlines() if line.strip())
    # The heading carries what the text leaves implicit ("Анализы: кровь — 500 ₽"); the path
    # above it (the document's title) costs tokens and says nothing.
    title = passage.title.rsplit(" / ", 1)[-1]
    if passage.question and passage.answer:
        return body
    return f"{title}: {body}" if title else body
