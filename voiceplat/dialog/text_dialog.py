"""A robot's dialog in text: the same prompt, retrieval, forms and tools as a call, without audio.

`benchmarks/answers.py` measures answer quality through it. Webhooks are not called by default:
`dry_run_tools` answers every webhook with `DRY_RUN_RESULT` and records the call, so a benchmark
can judge which tool the robot chose and with what arguments without touching a real CRM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voiceplat.dialog.answerer import Answerer, AnswerNotes, Hold
from voiceplat.providers.base import Message
from voiceplat.robot import Robot, load_robot
from voiceplat.sessions.text import SentenceSplitter, strip_marker
from voiceplat.tools.settings import WebhookTool
from voiceplat.tools.toolbox import ToolBox, ToolResult

DRY_RUN_RESULT: dict[str, Any] = {"status": "ok", "id": "dry-run"}


@dataclass
class TextReply:
    text: str
    """What the robot would say (markers removed; a Hold phrase included)."""
    tool_calls: list[ToolResult] = field(default_factory=list)
    first_clause_ms: float | None = None
    """From the caller's words to the first clause a TTS could start on (a `Hold`, e.g. the
    lookup phrase, included: what the caller hears first)."""
    answer_clause_ms: float | None = None
    """The same for the answer's own words (Hold phrases left out)."""
    total_ms: float = 0.0
    direct: bool = False
    """An FAQ answer said as written."""
    form_step: str | None = None
    ends_call: bool = False
    transfer: bool = False


class DryRunTools(ToolBox):
    """The robot's tools with every webhook answered by `DRY_RUN_RESULT` (arguments still
    validated against the tool's schema)."""

    async def _request(self, tool: WebhookTool, arguments: dict[str, Any]) -> Any:
        return DRY_RUN_RESULT


class TextDialog:
    def __init__(self, robot: Robot, *, grounding: bool = True) -> None:
        self.robot = robot
        self.history: list[Message] = []
        knowledge = robot.knowledge if grounding else None
        tools = robot.tools
        self.answerer = Answerer(robot.config, robot.llm, knowledge, tools, now=robot.now)
        greeting = robot.config.greeting_text
        if greeting:
            self.history.append(Message("assistant", greeting))

    @classmethod
    async def open(
        cls, robot_dir: str | Path, *, grounding: bool = True, dry_run_tools: bool = True
    ) -> TextDialog:
        """Loads the robot and starts its LLM, knowledge and tools (no ASR, no TTS)."""
        robot = load_robot(robot_dir)
        await robot.start_text(dry_run_tools=dry_run_tools)
        return cls(robot, grounding=grounding)

    def seed(self, history: list[tuple[str, str]]) -> None:
        """Earlier turns, as ("user" | "assistant", text) pairs; a form hears the caller's, as it
        would have in the call ("Мне нужно записаться" started it)."""
        form = self.answerer.form
        for role, text in history:
            self.history.append(Message("user" if role == "user" else "assistant", text))
            if role == "user" and form is not None:
                form.hear(text)

    def dialog(self) -> list[Message]:
        turns = self.robot.config.history_turns
        recent = self.history[-turns:] if turns else []
        robot = self.robot
        prompt = robot.prompt if self.answerer.knowledge is not None else robot.own_prompt
        return [Message("system", prompt), *recent]

    async def say(self, text: str) -> TextReply:
        self.history.append(Message("user", text))
        notes = AnswerNotes()
        config = self.robot.config
        splitter = SentenceSplitter(config.chunking_settings().first_clause_min_chars)
        started = time.perf_counter()
        first: float | None = None
        own: float | None = None
        pieces: list[str] = []
        async for piece in self.answerer.answer(self.dialog(), notes):
            now_ms = (time.perf_counter() - started) * 1000
            if isinstance(piece, Hold):
                pieces.append(" " + piece.text + " ")
                segments = [*splitter.flush(), piece.text]
            else:
                pieces.append(piece)
                segments = splitter.push(piece)
                if own is None and segments:
                    own = now_ms
            if first is None and segments:
                first = now_ms
        if splitter.flush():
            end_ms = (time.perf_counter() - started) * 1000
            first = end_ms if first is None else first
            own = end_ms if own is None else own
        raw = " ".join("".join(pieces).split())
        said, ends = strip_marker(raw, config.end_call_marker)
        said, transfer = strip_marker(said, config.transfer.marker)
        if transfer and not said:  # the session announces a transfer its words did not
            said = config.transfer.text
        if said:
            self.history.append(Message("assistant", said))
        return TextReply(
            text=said,
            tool_calls=list(notes.tool_results),
            first_clause_ms=first,
            answer_clause_ms=own,
            total_ms=(time.perf_counter() - started) * 1000,
            direct=notes.direct,
            form_step=notes.form_step,
            ends_call=ends,
            transfer=transfer,
        )

    async def close(self) -> None:
        await self.robot.aclose()
