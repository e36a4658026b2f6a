"""From the caller's words to the robot's answer: a form's next question, an FAQ answer, or the
LLM grounded in the robot's knowledge and acting through its tools.

One `Answerer` per call (its form's state lives here). `answer(dialog)` yields the answer's text as
it is written, and `Hold` items: words to say at once because the answer waits for something (a
webhook). In order:
1. A form in progress (or one the caller's words start) asks for what is missing, confirms, and
   calls its tool when the caller agrees: no LLM, nothing invented.
2. An FAQ passage that retrieval is confident about is said as written (`knowledge.direct_answers`),
   else the knowledge sentences a question clearly points at (`knowledge.fact_answers`).
   A question naming something the knowledge lacks, that neither answers, gets
   `knowledge.unsure_text` (when set), and a «да» to it transfers the call.
3. Otherwise the LLM answers the caller's words with the passages retrieval found put in front of
   them, and may ask for a tool: a webhook runs under a spoken filler and its result goes back to the
   LLM, which answers from it; `transfer` and `end_call` become the session's markers (the turn's
   words are said first, then the call is handed over or ended); the form's tool starts the form.

Only the last user message is grounded: the dialog history keeps the caller's own words, so the
LLM's prefix cache (system prompt, tool block, earlier turns) stays valid from turn to turn.

A speculative answer (written while the caller may still be talking) never runs a tool or a form:
`Unspeculative` stops it, and the real turn answers from scratch.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from voiceplat.dialog.intents import accepts, caller_intent
from voiceplat.forms import state as forms
from voiceplat.knowledge.grounding import grounded_message
from voiceplat.knowledge.index import KnowledgeBase
from voiceplat.providers.base import LLM, Message, ToolCall, ToolSpec
from voiceplat.tools.toolbox import ToolBox, ToolResult

if TYPE_CHECKING:
    from voiceplat.config import RobotConfig

MAX_TOOL_ROUNDS = 2
"""Tool calls in one answer; then the LLM must answer in words."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Say this now: the answer waits (a tool is running)."""

    text: str


class Unspeculative(Exception):
    """A speculative answer reached a tool or a form: only the real turn may act."""


@dataclass
class AnswerNotes:
    """What one answer did, for its turn's record and the call's outcome."""

    direct: bool = False
    intent: str | None = None
    """"transfer" or "goodbye": the caller's words asked for it (dialog/intents.py)."""
    form_step: str | None = None
    passages: list[str] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)


class Answerer:
    def __init__(
        self,
        config: RobotConfig,
        llm: LLM,
        knowledge: KnowledgeBase | None,
        tools: ToolBox | None,
        *,
        now: Callable[[], datetime],
        record: Callable[..., None] = lambda name, **data: None,
    ) -> None:
        """`now`: the wall clock in the robot's time zone (forms read "завтра" against it);
        `record(name, **data)`: the call's event log."""
        self.config = config
        self.llm = llm
        self.knowledge = knowledge
        self.tools = tools
        self._now = now
        self._record = record
        self.form = forms.FormState(config.form, now()) if config.form is not None else None
        self._caller_words = ""
        self._offered_transfer = False
        """The last answer was `knowledge.unsure_text`: a «да» to it asks for a person."""
        self.outcome: str | None = None
        """The outcome a succeeded tool declared (e.g. "booked"), the call's last one."""

    # -- the prompt the LLM gets ---------------------------------------------------------------
    def prompt(self, dialog: list[Message]) -> list[Message]:
        """`dialog` with its last user message grounded in the passages retrieval finds."""
        if self.knowledge is None or not dialog or dialog[-1].role != "user":
            return dialog
        text = dialog[-1].content
        knowledge = self.knowledge
        settings = knowledge.settings
        unknown = knowledge.unknown_nouns(text)
        if settings.reference == "sentences":
            sentences = knowledge.sentences(text)
            grounded = grounded_message(text, [], settings, unknown, sentences=sentences)
        else:
            grounded = grounded_message(text, knowledge.search(text), settings, unknown)
        return [*dialog[:-1], Message("user", grounded)]

    def tool_specs(self) -> list[ToolSpec] | None:
        return offered_tools(self.tools, self.config)

    def _lookup_text(self, dialog: list[Message], prompt: list[Message]) -> str | None:
        """`knowledge.lookup_text` when the grounded message adds at least
        `lookup_min_chars` to what the caller said (the local LLM evaluates every one)."""
        if self.knowledge is None or not dialog:
            return None
        settings = self.knowledge.settings
        added = len(prompt[-1].content) - len(dialog[-1].content)
        return settings.lookup_text if added >= settings.lookup_min_chars else None

    # -- one answer ----------------------------------------------------------------------------
    async def answer(
        self, dialog: list[Message], notes: AnswerNotes, *, speculative: bool = False
    ) -> AsyncIterator[str | Hold]:
        """The answer to the dialog's last user message, as it is written."""
        self._caller_words = dialog[-1].content if dialog and dialog[-1].role == "user" else ""
        text = dialog[-1].content if dialog and dialog[-1].role == "user" else ""
        config = self.config
        intent = caller_intent(
            text,
            transfer_phrases=config.transfer.caller_phrases if config.transfer.target else [],
            goodbye_words=config.goodbye_words,
            goodbye=config.goodbye_text is not None,
        )
        if self._offered_transfer and not speculative:
            self._offered_transfer = False
            if intent is None and text and accepts(text):
                intent = "transfer"
        if intent is not None:
            if speculative:
                raise Unspeculative(intent)
            notes.intent = intent
            self._record("caller_intent", intent=intent)
            if intent == "transfer":  # the session says transfer.text, then hands over
                yield config.transfer.marker
            else:
                yield f"{config.goodbye_text} {config.end_call_marker}"
            return
        form = self.form
        if form is not None and text and self._facts_before_form(form, text):
            form = None  # "в понедельник кардиолог принимает?" names a doctor and a day: a question
        if form is not None and text:
            if speculative and (form.active or form.triggered(text)):
                raise Unspeculative("form")
            step = form.hear(text)
            if not isinstance(step, forms.NotForm):
                async for piece in self._form_step(step, notes):
                    yield piece
                return
            if form.active:  # a question of the caller's own: answered, then the form goes on
                async for piece in self._answer_freely(dialog, text, notes, speculative):
                    yield piece
                pending = form.pending()
                if pending is not None:
                    yield " " + pending.text
                return
        async for piece in self._answer_freely(dialog, text, notes, speculative):
            yield piece

    def _facts_before_form(self, form: forms.FormState, text: str) -> bool:
        """A question that only names what the form collects (no trigger word such as
        "запишите") and that the knowledge answers: the answer, not the form's first question."""
        if form.active or form.triggered(text) or self.knowledge is None:
            return False
        return self.knowledge.fact_answer(text) is not None

    async def _answer_freely(
        self, dialog: list[Message], text: str, notes: AnswerNotes, speculative: bool
    ) -> AsyncIterator[str | Hold]:
        """An FAQ answer said as written, else the grounded LLM."""
        if self.knowledge is not None and text and self.knowledge.settings.direct_answers:
            hit = self.knowledge.direct_answer(text)
            if hit is not None and hit.passage.answer:
                notes.direct = True
                notes.passages = [hit.passage.source]
                self._record("direct_answer", source=hit.passage.source, score=round(hit.score, 2))
                yield hit.passage.answer
                return
        if self.knowledge is not None and text:
            found = self.knowledge.fact_answer(text)
            if found is not None:
                notes.direct = True
                notes.passages = found.sources
                self._record("fact_answer", sources=found.sources, score=round(found.score, 2))
                yield found.text
                return
            unsure = self.knowledge.settings.unsure_text
            if unsure and self.knowledge.asks_about_the_unknown(text):
                notes.direct = True
                self._record("unsure_answer")
                self._offered_transfer = self.config.transfer.target is not None
                yield unsure
                return
        async for piece in self._llm_answer(dialog, notes, speculative=speculative):
            yield piece

    async def _llm_answer(
        self, dialog: list[Message], notes: AnswerNotes, *, speculative: bool
    ) -> AsyncIterator[str | Hold]:
        messages = self.prompt(dialog)
        lookup = self._lookup_text(dialog, messages)
        if lookup:  # the passages take the LLM seconds to read: the caller hears this first
            yield Hold(lookup)
        specs = self.tool_specs()
        said: list[str] = []
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            offered = specs if round_ < MAX_TOOL_ROUNDS else None
            if said:  # the words before the tool call were said: the answer goes on after them
                yield " "
            said = []
            call: ToolCall | None = None
            async for piece in self.llm.respond(messages, offered):
                if isinstance(piece, ToolCall):
                    call = piece
                    break
                said.append(piece)
                yield piece
            if call is None:
                return
            if speculative:
                raise Unspeculative(call.name)
            ending = await self._act_at_once(call, "".join(said), notes)
            if ending is not None:  # a marker or a form's question: the answer ends here
                if ending:
                    yield ending
                return
            if not said:
                yield Hold(self._filler(call.name))
            result = await self._run_tool(call, notes)
            if not result.ok:
                yield (" " if said else "") + self.config.tool_failed_text
                return
            messages = [
                *messages,
                Message("assistant", "".join(said), tool_calls=(call,)),
                Message("tool", result.for_llm(), tool_call_id=call.id),
            ]

    async def _act_at_once(self, call: ToolCall, said: str, notes: AnswerNotes) -> str | None:
        """A tool call the robot carries out itself: the text that ends the answer (a marker,
        a form's first question); None for a webhook, which must be run."""
        assert self.tools is not None
        builtin = self.tools.builtin(call.name)
        if builtin == "transfer":
            self._note_builtin(call, notes)
            return (" " if said else "") + self.config.transfer.marker
        if builtin == "end_call":
            self._note_builtin(call, notes)
            return (" " if said else "") + self.config.end_call_marker
        form = self.form
        if form is not None and call.name == form.settings.tool and not form.active:
            step = form.start(self._caller_words)
            notes.form_step = type(step).__name__
            self._record("form_step", step=notes.form_step, started_by="llm")
            return ("" if not said else " ") + getattr(step, "text", "")
        return None

    async def _run_tool(self, call: ToolCall, notes: AnswerNotes) -> ToolResult:
        assert self.tools is not None
        started = time.perf_counter()
        result = await self.tools.run(call)
        notes.tool_results.append(result)
        self._record(
            "tool_call",
            tool=call.name,
            arguments=call.arguments,
            ok=result.ok,
            error=result.error,
            ms=round((time.perf_counter() - started) * 1000),
        )
        if result.ok and result.outcome:
            self.outcome = result.outcome
        return result

    def _note_builtin(self, call: ToolCall, notes: AnswerNotes) -> None:
        assert self.tools is not None
        self._record("tool_call", tool=call.name, arguments=call.arguments, ok=True, ms=0)
        notes.tool_results.append(
            ToolResult(
                name=call.name,
                arguments=call.arguments,
                ok=True,
                result={"builtin": call.name},
                error=None,
                ms=0.0,
                builtin=self.tools.builtin(call.name),
                outcome=None,
            )
        )

    async def _form_step(
        self, step: forms.FormStep, notes: AnswerNotes
    ) -> AsyncIterator[str | Hold]:
        notes.form_step = type(step).__name__
        self._record("form_step", step=notes.form_step)
        if isinstance(step, forms.Submit):
            assert self.form is not None
            call = ToolCall(self.form.settings.tool, step.arguments, id="form")
            yield Hold(self._filler(call.name))
            result = await self._run_tool(call, notes)
            yield self.form.done_text() if result.ok else self.config.tool_failed_text
            return
        text = getattr(step, "text", "")
        if text:
            yield text

    def _filler(self, tool: str) -> str:
        own = self.tools.filler_text(tool) if self.tools is not None else None
        return own or self.config.tool_filler_text


def offered_tools(tools: ToolBox | None, config: RobotConfig) -> list[ToolSpec] | None:
    """The tools the LLM is offered (the robot warms its prompt with the same): all but the
    form's own, which the form's triggers start (a small model calls it on "спасибо, вы мне
    помогли")."""
    if tools is None:
        return None
    own = config.form.tool if config.form is not None else None
    kept = {name for name, tool in tools.tools.items() if tool.offer_to_llm and name != own}
    return [spec for spec in tools.specs() if spec.name in kept] or None
