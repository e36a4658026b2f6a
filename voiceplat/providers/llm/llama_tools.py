"""Tool calls for the `llama_cpp` LLM: a lazy grammar, as llama.cpp's server applies one.

The model answers freely, with the tools described in its system part by the chat template. Qwen2.5
writes a call as `<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>`; the small coder model
often leaves the tag out and starts its answer with the JSON itself (`{{"name": …`, like the
template's own example with its doubled braces) or with a code fence (```json). `ToolScanner`
watches the streamed text for these starts: text before a `<tool_call>` tag is spoken; an answer
that begins with `{` or ``` is never spoken (no spoken answer does). From there the engine writes `<tool_call>\\n` itself, as the template
renders a past call, and the model continues under a GBNF grammar (`tool_grammar`, built from the
tools' JSON schemas by llama.cpp's own converter): the name can only be one of the tools and the
arguments only an object its schema accepts. The text under the grammar is parsed into a ToolCall.

Constraining only the call keeps free answers at full speed: a grammar is checked against the
whole vocabulary at every sampled token.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, cast

from voiceplat.providers.base import ProviderError, ToolCall, ToolSpec
from voiceplat.providers.llm.llama_prompt import ChatRequest, compile_grammar
from voiceplat.providers.llm.llama_state_cache import prefill

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import CreateCompletionStreamResponse

TOOL_CALL_TAG = "<tool_call>"
CALL_OPENING = TOOL_CALL_TAG + "\n"
"""What the engine writes before the call's JSON (the template's rendering of a past call)."""
BARE_CALL_STARTS = ("{", "```", "<tools>", "<function")
"""An answer that starts with one of these is a call without the tag (the model also echoes the
template's `<tools>` block, or writes a `<function…>` tag it saw in training)."""


class ToolScanner:
    """Splits a streamed free answer into text to speak and the start of a tool call.

    `feed` returns the text that can be spoken now; it holds back a tail that may be the start of
    the tag, and everything while the answer has not started (spaces, a `<`). Once `triggered`,
    `said` is all the text spoken before the call and the rest of the stream is not wanted.
    """

    def __init__(self) -> None:
        self.said = ""
        self.triggered = False
        self._pending = ""

    def feed(self, text: str) -> str:
        if self.triggered:
            return ""
        self._pending += text
        if not self.said:
            start = self._pending.lstrip()
            if start.startswith(BARE_CALL_STARTS):
                self.triggered = True
                self._pending = ""
                return ""
            if any(bare.startswith(start) for bare in BARE_CALL_STARTS):
                return ""  # nothing yet, or "`", "``": the answer may still be a bare call
        tag = self._pending.find(TOOL_CALL_TAG)
        if tag >= 0:
            return self._speak(self._pending[:tag], triggered=True)
        keep = _tag_prefix_length(self._pending)
        return self._speak(self._pending[: len(self._pending) - keep], keep=keep)

    def finish(self) -> str:
        """The held-back tail, once the answer ended without a call."""
        if self.triggered:
            return ""
        return self._speak(self._pending)

    def _speak(self, text: str, *, triggered: bool = False, keep: int = 0) -> str:
        self._pending = self._pending[len(self._pending) - keep :] if keep else ""
        self.said += text
        self.triggered = triggered
        return text


def _tag_prefix_length(text: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of the tag."""
    for length in range(min(len(text), len(TOOL_CALL_TAG) - 1), 0, -1):
        if TOOL_CALL_TAG.startswith(text[-length:]):
            return length
    return 0


def tool_grammar(tools: list[ToolSpec]) -> str:
    """GBNF whose sentences are `{"name": "<tool>", "arguments": {…}}` for each tool, the
    arguments accepted by that tool's parameters schema."""
    # Not sort_keys: the grammar writes properties in the schemas' order.
    key = json.dumps([[tool.name, tool.parameters] for tool in tools], ensure_ascii=False)
    return _grammar(key)


@functools.lru_cache(maxsize=64)
def _grammar(key: str) -> str:
    from llama_cpp.llama_grammar import SchemaConverter

    alternatives: list[dict[str, Any]] = []
    definitions: dict[str, Any] = {}
    # The converter orders properties it is not told about alphabetically: keep the schemas' order.
    order: dict[str, int] = {"name": 0, "arguments": 1}
    for name, parameters in json.loads(key):
        for prop in parameters.get("properties", {}):
            order.setdefault(prop, len(order))
        # `#/$defs/…` references in a tool's schema point at the wrapper's root once nested.
        parameters = dict(parameters)
        definitions.update(parameters.pop("$defs", {}))
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": parameters},
                "required": ["name", "arguments"],
            }
        )
    schema: dict[str, Any] = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
    if definitions:
        schema = {**schema, "$defs": definitions}
    converter = SchemaConverter(
        prop_order=order,
        allow_fetch=False,
        dotall=False,
        raw_pattern=False,
    )
    try:
        converter.visit(converter.resolve_refs(schema, "tools"), "call")
    except Exception as exc:  # the converter raises plain errors on schemas it cannot express
        raise ProviderError(
            f"the tools' JSON schemas cannot be turned into a grammar: {exc}"
        ) from exc
    return "root ::= call\n" + converter.format_grammar()


def parse_tool_call(text: str, tools: list[ToolSpec]) -> ToolCall:
    """The ToolCall the grammar-bound `text` holds; ProviderError if it was cut short."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ProviderError(
            f"the model's tool call ended before its JSON was complete: {text[:200]!r}"
        ) from None
    names = {tool.name for tool in tools}
    if (
        not isinstance(data, dict)
        or data.get("name") not in names
        or not isinstance(data.get("arguments"), dict)
    ):
        raise ProviderError(f"the model's tool call is not one of the tools: {text[:200]!r}")
    return ToolCall(data["name"], data["arguments"], id=new_call_id())


def new_call_id() -> str:
    """An id pairing a local model's call with its result message (OpenAI's shape)."""
    return "call_" + secrets.token_hex(6)


def answer(
    llm: Llama,
    tokens: list[int],
    request: ChatRequest,
    emit: Callable[[str, Any], None],
    stop: threading.Event,
) -> None:
    """Runs on the model's worker, after `tokens` (the prompt) were evaluated: streams the answer
    as emit("text", piece); with tools, a call the model starts is written under the grammar and
    emitted as emit("tool", ToolCall) after the text said before it."""
    scanner = ToolScanner() if request.tools else None
    texts = completion_texts(
        llm,
        tokens,
        stop,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop_strings=request.stop,
        grammar=request.grammar,
    )
    with contextlib.closing(texts):
        for text in texts:
            spoken = scanner.feed(text) if scanner is not None else text
            if spoken:
                emit("text", spoken)
            if scanner is not None and scanner.triggered:
                break  # the rest is written under the tools' grammar
    if scanner is None or stop.is_set():
        return
    if not scanner.triggered:
        if rest := scanner.finish():
            emit("text", rest)
        return
    opening = (scanner.said + CALL_OPENING).encode("utf-8")
    call = write_call(
        llm,
        tokens + llm.tokenize(opening, add_bos=False, special=True),
        request.tools,
        request.tool_grammar,
        stop,
        max_tokens=request.tool_max_tokens,
        top_p=request.top_p,
        progress=lambda: emit("alive", None),  # the consumer's timeout is per gap
    )
    if call is not None:
        emit("tool", call)


def write_call(
    llm: Llama,
    tokens: list[int],
    tools: list[ToolSpec],
    grammar: str,
    stop: threading.Event,
    *,
    max_tokens: int,
    top_p: float,
    progress: Callable[[], None],
) -> ToolCall | None:
    """Runs on the model's worker: continues `tokens` (the prompt, the text said and the call's
    opening) greedily under the tools' grammar; None if `stop` was set on the way."""
    if not prefill(llm, tokens, stop):
        return None
    written: list[str] = []
    texts = completion_texts(
        llm,
        tokens,
        stop,
        max_tokens=max_tokens,
        temperature=0.0,  # arguments are data: the likeliest ones
        top_p=top_p,
        stop_strings=[],  # the grammar ends the call
        grammar=grammar,
    )
    with contextlib.closing(texts):
        for text in texts:
            written.append(text)
            progress()
    if stop.is_set():
        return None
    return parse_tool_call("".join(written), tools)


def completion_texts(
    llm: Llama,
    tokens: list[int],
    stop: threading.Event,
    *,
    max_tokens: int,
    temperature: float,
    top_p: float,
    stop_strings: list[str],
    grammar: str | None,
) -> Generator[str, None, None]:
    """The non-empty text pieces of a streamed completion of `tokens`, until it ends or `stop`
    is set; closing it closes the model's generator, so the next completion has the context."""
    chunks = llm.create_completion(
        tokens,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=stop_strings,
        stream=True,
        grammar=compile_grammar(grammar),
    )
    # With stream=True it is an iterator of chunks (typed as a union with a response).
    stream = cast("Iterator[CreateCompletionStreamResponse]", chunks)
    try:
        for chunk in stream:
            if stop.is_set():
                return
            if text := chunk["choices"][0]["text"]:
                yield text
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
