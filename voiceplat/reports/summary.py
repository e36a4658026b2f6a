"""The call's summary, written by the robot's LLM after the call (never on the call's path).

One or two Russian sentences: what the caller wanted and what happened. The LLM sees the
transcript and the outcome, nothing else. A summary that fails or takes too long is None (logged):
the record and the report simply have none.
"""

from __future__ import annotations

import asyncio
import logging
import re

from voiceplat.providers.base import LLM, Message
from voiceplat.reports.format import call_outcome, transcript_lines
from voiceplat.storage.records import CallSnapshot

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "Ты помощник администратора. Тебе дают расшифровку телефонного звонка между роботом и "
    "клиентом. Напиши одно или два коротких предложения: чего хотел клиент и чем закончился "
    "звонок. Пиши только то, что есть в расшифровке, без приветствий, оценок и списков."
)

MAX_TRANSCRIPT_CHARS = 6000
"""The end of a very long call is kept: how it ended matters most to the summary."""

CHARS_PER_TOKEN = 6
"""A Russian token is 3-6 characters; the character bound keeps a chatty model short too."""

_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s")


def summary_messages(snapshot: CallSnapshot) -> list[Message] | None:
    """The prompt; None when the caller said nothing (there is nothing to summarise)."""
    if not any(
        turn.role == "user" and turn.ignored is None and turn.text.strip()
        for turn in snapshot.turns
    ):
        return None
    transcript = "\n".join(transcript_lines(snapshot))
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        transcript = "…\n" + transcript[-MAX_TRANSCRIPT_CHARS:]
    outcome = call_outcome(snapshot.call)
    tail = f"\n\nИтог звонка: {outcome}" if outcome else ""
    return [
        Message("system", SYSTEM_PROMPT),
        Message("user", f"Расшифровка:\n{transcript}{tail}\n\nКратко:"),
    ]


def tidy(text: str, max_chars: int) -> str | None:
    """One line, at most two sentences and `max_chars`; None when nothing is left."""
    text = _SPACES.sub(" ", text).strip().strip('"«»').strip()
    sentences = _SENTENCE_END.split(text)
    text = " ".join(sentences[:2])
    if len(text) > max_chars:
        cut = text[:max_chars]
        text = cut[: cut.rfind(" ")].rstrip(",;:—- ") + "…" if " " in cut else cut
    return text or None


async def summarize(
    llm: LLM, snapshot: CallSnapshot, max_tokens: int, *, timeout_s: float = 60.0
) -> str | None:
    """The summary of the call, or None (no caller words, an LLM failure, past `timeout_s`)."""
    messages = summary_messages(snapshot)
    if messages is None:
        return None
    max_chars = max_tokens * CHARS_PER_TOKEN
    pieces: list[str] = []

    async def write() -> None:
        # The provider's own max_tokens is the robot's answer length; the summary's bound is
        # enforced here, by stopping the stream.
        stream = llm.stream(messages)
        try:
            async for piece in stream:
                pieces.append(piece)
                if len(pieces) >= max_tokens or sum(map(len, pieces)) > max_chars:
                    break
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()  # stops the model's work on a stream cut short

    try:
        async with asyncio.timeout(timeout_s):
            await write()
    except TimeoutError:
        log.warning("call %s: no summary within %g s", snapshot.call.call_id, timeout_s)
        return None
    except Exception as exc:  # a provider failure must not stop the report
        log.warning("call %s: the summary failed: %s", snapshot.call.call_id, exc)
        return None
    return tidy("".join(pieces), max_chars)
