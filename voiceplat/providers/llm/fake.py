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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Literal

from pydantic import Field

from voiceplat.providers.base import (
    LLM,
    LLMSettings,
    Message,
    ProviderError,
    match_option,
    register,
)

END_MARKER = "[END]"

Failure = Literal["none", "raise", "mid", "hang"]


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

    async def prefill(self, messages: list[Message]) -> bool:
        """Takes `prefill_ms`, then remembers the prompt; 'hang' never finishes."""
        await _sleep_ms(self.settings.prefill_ms)
        if self.settings.fail == "hang":
            await asyncio.get_running_loop().create_future()
        self.prefilled.append(list(messages))
        return True

    async def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        self.streamed.append(list(messages))
        chunks = tokens(self.compose(messages))
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
