"""The user message an LLM answers from: the instruction, the passages found, the caller's words.

The passages go in the user message of the current turn, not the system prompt, so the system
prompt stays the same on every turn and in the local LLM's prefix cache. With nothing found the
message still says so: a small model told "the reference has nothing on this" says it does not
know instead of inventing an answer.
"""

from __future__ import annotations

from voiceplat.knowledge.index import Hit
from voiceplat.knowledge.settings import KnowledgeSettings

NOTHING_FOUND = "В справке нет сведений об этом."


def grounded_message(text: str, hits: list[Hit], settings: KnowledgeSettings) -> str:
    """The instruction, the numbered passages (or that there are none) and "Вопрос: <text>"."""
    if hits:
        reference = "\n".join(
            f"[{number}] {_passage_text(hit)}" for number, hit in enumerate(hits, start=1)
        )
    else:
        reference = NOTHING_FOUND
    return f"{settings.instruction.strip()}\n\nСправка:\n{reference}\n\nВопрос: {text.strip()}"


def _passage_text(hit: Hit) -> str:
    passage = hit.passage
    if passage.question and passage.answer:
        body = f"{passage.question} — {passage.answer}"
    else:
        body = " ".join(line.strip() for line in passage.text.splitlines() if line.strip())
    # The title carries what the text leaves implicit ("Цены / Анализы: кровь — 500 ₽").
    return f"{passage.title}: {body}" if passage.title else body
