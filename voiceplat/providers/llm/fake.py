"""`fake` LLM: echoes the caller, token by token, with configurable delays.

The reply is `reply` with `{text}` replaced by the last user message. It is split on spaces and
streamed so that the chunks join back to the exact reply (every chunk but the last keeps its
trailing space). If the user text contains one of `end_call_on` (case-insensitive), the reply ends
with the marker ` [END]`: the robot says goodbye and hangs up.

`choose` (llm_script) is deterministic: the id mapped by the first `choices` keyword found in the
last user message (case-insensitive), else the user message itself; that answer is then matched to
the options as any LLM's is (an option id occurring in it), and an answer naming none of them is a
ProviderError. `delay_ms` and `fail` ('raise', 'hang'; 'mid' counts as 'raise') apply too.

`prefill` takes `prefill_ms` and records the prompt in `prefilled` (`stream` records `streamed`), so
tests can check that a speculative prefill covered exactly what was asked next.

`respond` (tools) is scripted: when the last message is a tool result, the reply is `tool_reply` with
`{result}` replaced by that result; else when the last user message contains a `tool_calls` keyword
(case-insensitive) whose tool is offered, it yields that ToolCall (id `fake_call_<n>`); else it
answers as `stream` does. Every call is recorded in `responded` (messages and tool names); text
answers are recorded in `streamed` too, as `stream` records them. `delay_ms` and `fail` apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.providers.base import (
    LLM,
    LLMSettings,
    Message,
    ProviderError,
    ToolCall,
    ToolSpec,
    match_option,
    register,
)

END_MARKER = "[END]"
KEEP_RECENT = 1000
"""The prompts a fake LLM remembers for tests: the last ones. One shared by all calls of a
process for hours (benchmarks/soak.py) must not keep every call's history: it did, ~1 MB a
minute at 50 calls."""


def _keep_recent(records: list[Any], record: Any) -> None:
    records.append(record)
    if len(records) > 2 * KEEP_RECENT:  # trimmed now and then: appending stays O(1)
        del records[:-KEEP_RECENT]


Failure = Literal["none", "raise", "mid", "hang"]


class FakeToolCall(BaseModel):
    """A tool call the fake LLM makes when its keyword is heard."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="The tool to call (only when it is offered).")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")


class FakeLLMSettings(LLMSettings):
    """Settings of the `fake` LLM."""

    reply: str = Field(
        "Вы сказали: {text}.", description="Reply template; {text} is the last user message."
    )
    end_call_on: list[str] = Field(
        default_factory=list,
        description="Words that make the robot end the call: the reply then ends with ' [END]'.",
    )
    choices: dict[str, str] = Field(
        default_factory=dict,
        description="llm_script: keyword -> answer of `choose` when the keyword is in the user text.",
    )
    tool_calls: dict[str, FakeToolCall] = Field(
        default_factory=dict,
        description="respond: keyword -> the tool call made when the keyword is in the user text "
        "and the tool is offered.",
    )
    tool_reply: str = Field(
        "Готово: {result}.",
        description="respond: the reply after a tool result; {result} is the tool message.",
    )
    delay_ms: float = Field(0.0, ge=0, description="Delay before the first token.")
    token_delay_ms: float = Field(0.0, ge=0, description="Delay between tokens.")
    prefill_ms: float = Field(0.0, ge=0, description="Time a prefill takes.")
    fail: Failure = Field(
        "none",
        description="'raise': fail before the first token; 'mid': fail after half the tokens; "
        "'hang': never produce a token.",
    )


def last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def tokens(reply: str) -> list[str]:
    words = reply.split(" ")
    return [word + " " for word in words[:-1]] + [words[-1]] if reply else []


async def _sleep_ms(ms: float) -> None:
    if ms:
        await asyncio.sleep(ms / 1000)


@register("llm", "fake")
class FakeLLM(LLM):
    Settings = FakeLLMSettings
    settings: FakeLLMSettings
    supports_tools = True

    def compose(self, messages: list[Message]) -> str:
        """The full reply the stream will produce for `messages`."""
        text = last_user_text(messages).strip()
        # str.replace, not str.format: braces in the caller's words must not break the template.
        reply = self.settings.reply.replace("{text}", text)
        folded = text.casefold()
        if any(word.casefold() in folded for word in self.settings.end_call_on if word):
            reply = f"{reply} {END_MARKER}"
        return reply

    def __init__(self, settings: FakeLLMSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self.prefilled: list[list[Message]] = []
        """Prompts whose prefill ran to the end (tests compare them with `streamed`)."""
        self.streamed: list[list[Message]] = []
        self.responded: list[tuple[list[Message], list[str]]] = []
        """Every `respond` call: its messages and the names of the tools offered."""
        self.warmed: list[tuple[list[Message], list[str]]] = []
        self._calls_made = 0

    async def warm(self, prefix: list[Message], tools: list[ToolSpec] | None = None) -> None:
        _keep_recent(self.warmed, (list(prefix), [tool.name for tool in tools or []]))

    async def prefill(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> bool:
        """Takes `prefill_ms`, then remembers the prompt; 'hang' never finishes."""
        await _sleep_ms(self.settings.prefill_ms)
        if self.settings.fail == "hang":
            await asyncio.get_running_loop().create_future()
        _keep_recent(self.prefilled, list(messages))
        return True

    async def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        _keep_recent(self.streamed, list(messages))
        async for chunk in self._chunks(self.compose(messages)):
            yield chunk

    async def respond(
        self, messages: list[Message], tools: list[ToolSpec] | None = None
    ) -> AsyncIterator[str | ToolCall]:
        offered = [tool.name for tool in tools or []]
        _keep_recent(self.responded, (list(messages), offered))
        if messages and messages[-1].role == "tool":
            # str.replace, not str.format: braces in a JSON result must not break the template.
            reply = self.settings.tool_reply.replace("{result}", messages[-1].content)
            _keep_recent(self.streamed, list(messages))
            async for chunk in self._chunks(reply):
                yield chunk
            return
        call = self.scripted_call(messages, offered)
        if call is None:
            async for chunk in self.stream(messages):
                yield chunk
            return
        await _sleep_ms(self.settings.delay_ms)
        if self.settings.fail == "hang":
            await asyncio.get_running_loop().create_future()
        if self.settings.fail in ("raise", "mid"):
            raise ProviderError("fake LLM failed on purpose before the tool call")
        yield call

    def scripted_call(self, messages: list[Message], offered: list[str]) -> ToolCall | None:
        """The ToolCall whose keyword is in the last user message, if its tool is offered."""
        folded = last_user_text(messages).casefold()
        for word, call in self.settings.tool_calls.items():
            if word and word.casefold() in folded and call.name in offered:
                self._calls_made += 1
                return ToolCall(call.name, dict(call.arguments), id=f"fake_call_{self._calls_made}")
        return None

    async def _chunks(self, reply: str) -> AsyncIterator[str]:
        chunks = tokens(reply)
        await _sleep_ms(self.settings.delay_ms)
        fail = self.settings.fail
        if fail == "hang":
            await asyncio.get_running_loop().create_future()
        if fail == "raise":
            raise ProviderError("fake LLM failed on purpose before the first token")
        fail_at = max(1, len(chunks) // 2) if fail == "mid" else None
        for index, chunk in enumerate(chunks):
            if index == fail_at:
                raise ProviderError("fake LLM failed on purpose mid-stream")
            if index:
                await _sleep_ms(self.settings.token_delay_ms)
            yield chunk
        if fail_at is not None:
            # A one-token reply still fails, after that token.
            raise ProviderError("fake LLM failed on purpose mid-stream")

    async def choose(self, messages: list[Message], options: list[str]) -> str:
        text = last_user_text(messages).strip()
        folded = text.casefold()
        answer = next(
            (
                chosen
                for word, chosen in self.settings.choices.items()
                if word and word.casefold() in folded
            ),
            text,
        )
        await _sleep_ms(self.settings.delay_ms)
        if self.settings.fail == "hang":
            await asyncio.get_running_loop().create_future()
        if self.settings.fail in ("raise", "mid"):
            raise ProviderError("fake LLM failed on purpose")
        return match_option(answer, options)
