"""A call's Answerer for tests/unit/test_answerer.py and test_intents.py: a robot config, the fake
LLM with scripted tool calls, a ToolBox on an httpx.MockTransport, a small knowledge file, and
the events the Answerer records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from voiceplat.config import RobotConfig
from voiceplat.dialog.answerer import Answerer, AnswerNotes, Hold
from voiceplat.knowledge.index import KnowledgeBase, load_knowledge
from voiceplat.providers.base import Message
from voiceplat.providers.llm.fake import FakeLLM
from voiceplat.tools import ToolBox

NOW = datetime(2025, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Moscow"))  # a Monday
KNOWLEDGE = """\
# Клиника

## Адрес
Клиника находится на улице Ленина, дом 5, второй этаж.

## Цены
Приём терапевта стоит 1500 рублей.

## Парковка
В: Есть ли у вас парковка?
О: Да, бесплатная парковка во дворе клиники.
"""
PARKING_ANSWER = "Да, бесплатная парковка во дворе клиники."
SYSTEM = Message("system", "Ты администратор клиники.")
GREETING = Message("assistant", "Здравствуйте! Чем могу помочь?")

BOOK: dict[str, Any] = {
    "name": "book_visit",
    "description": "Записать на приём",
    "url": "http://127.0.0.1:9/visits",
    "outcome": "booked",
    "filler_text": "Минутку, записываю…",
    "parameters": {
        "type": "object",
        "properties": {
            "doctor": {"type": "string"},
            "date": {"type": "string", "format": "date"},
        },
        "required": ["doctor", "date"],
    },
}
SLOTS: dict[str, Any] = {
    "name": "find_slots",
    "description": "Свободное время врача",
    "url": "http://127.0.0.1:9/slots",
    "method": "GET",
    "parameters": {
        "type": "object",
        "properties": {"doctor": {"type": "string"}},
        "required": ["doctor"],
    },
}
FORM: dict[str, Any] = {
    "tool": "book_visit",
    "triggers": ["записать", "записаться"],
    "fields": [
        {
            "name": "doctor",
            "ask": "К какому врачу вас записать?",
            "type": "choice",
            "options": ["терапевт", "кардиолог"],
        },
        {"name": "date", "ask": "На какой день?", "type": "date"},
    ],
    "confirm_text": "Записываю вас: {doctor}, {date}. Всё верно?",
    "done_text": "Готово, вы записаны: {doctor}, {date}.",
}
# The fake LLM looks for these in the grounded user message: words of the caller's alone, never
# of the passages or the question prefix ("соединить с администратором").
TOOL_CALLS: dict[str, Any] = {
    "свободн": {"name": "find_slots", "arguments": {"doctor": "терапевт"}},
    "позовите": {"name": "transfer", "arguments": {"reason": "вопрос"}},
    "хватит": {"name": "end_call", "arguments": {}},
    "запишите": {"name": "book_visit", "arguments": {"doctor": "терапевт"}},
}


class Webhook:
    """A MockTransport that keeps every request and answers what the test says."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, json={"slots": ["10:00"]}))
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


class Call:
    """One call's Answerer with everything it touches in reach of the test."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        tools: list[dict[str, Any]] | None = None,
        form: dict[str, Any] | None = None,
        with_knowledge: bool = True,
        webhook: Webhook | None = None,
        **config: Any,
    ) -> None:
        tools = (
            [BOOK, SLOTS, {"builtin": "transfer"}, {"builtin": "end_call"}]
            if tools is None
            else tools
        )
        self.config = RobotConfig.model_validate(
            {
                "llm": {"provider": "fake"},
                "transfer": {"target": "100"},
                "tools": tools,
                **({"form": form} if form is not None else {}),
                **config,
            }
        )
        self.llm = FakeLLM(
            FakeLLM.Settings(
                provider="fake", tool_calls=TOOL_CALLS, tool_reply="Свободно: {result}."
            ),
            {},
        )
        self.webhook = webhook or Webhook()
        self.tools = (
            ToolBox(self.config.tools, {}, transport=self.webhook.transport) if tools else None
        )
        self.knowledge: KnowledgeBase | None = None
        if with_knowledge:
            (tmp_path / "knowledge.md").write_text(KNOWLEDGE, encoding="utf-8")
            self.knowledge = load_knowledge(tmp_path, self.config.knowledge)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.answerer = Answerer(
            self.config,
            self.llm,
            self.knowledge,
            self.tools,
            now=lambda: NOW,
            record=lambda name, **data: self.events.append((name, data)),
        )
        self.history: list[Message] = [SYSTEM, GREETING]

    def dialog(self, text: str) -> list[Message]:
        return [*self.history, Message("user", text)]

    async def say(
        self, text: str, *, speculative: bool = False
    ) -> tuple[list[str | Hold], AnswerNotes]:
        """The answer's pieces; the turn goes into the history as a session's would."""
        notes = AnswerNotes()
        dialog = self.dialog(text)
        pieces = [p async for p in self.answerer.answer(dialog, notes, speculative=speculative)]
        said = "".join(p.text if isinstance(p, Hold) else p for p in pieces)
        self.history = [*dialog, Message("assistant", said)]
        return pieces, notes

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def close(self) -> None:
        if self.tools is not None:
            await self.tools.aclose()


class Calls:
    """Makes a test's Calls (Call's options) and closes their ToolBoxes after it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list[Call] = []

    def __call__(self, **options: Any) -> Call:
        self.made.append(Call(self.tmp_path, **options))
        return self.made[-1]

    async def close(self) -> None:
        for call in self.made:
            await call.close()


def text(pieces: list[str | Hold]) -> str:
    return "".join(p for p in pieces if isinstance(p, str))
