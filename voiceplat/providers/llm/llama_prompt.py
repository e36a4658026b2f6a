"""Prompt text and grammars for the `llama_cpp` LLM: pure helpers, no model needed.

The chat template renderer (the GGUF's own template, ChatML without one), the GBNF grammar that
limits `choose()` to its option ids, and messages and tools as the dicts chat templates take (the
Hugging Face / OpenAI shapes: `tool_calls` with `function.arguments` as an object, role `tool`).
llama-cpp-python is imported only when a model is there to use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from voiceplat.providers.base import Message, ToolSpec

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestMessage, ChatCompletionTool

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Used only when a GGUF carries no chat template."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One generation: the messages (as `message_dicts`), sampling, and what constrains it."""

    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    grammar: str | None = None
    """GBNF text constraining the output (llama.cpp grammar syntax)."""
    tools: list[ToolSpec] = field(default_factory=list)
    """Tools the model may call (rendered by the template; a call is written under a grammar)."""
    tool_grammar: str = ""
    """GBNF of a call to one of `tools` (`llama_tools.tool_grammar`)."""
    tool_max_tokens: int = 0

    @property
    def tool_dicts(self) -> list[dict[str, Any]] | None:
        return tool_dicts(self.tools) if self.tools else None


def options_grammar(options: list[str]) -> str:
    """A GBNF grammar whose only sentences are the `options`, as string literals."""
    return "root ::= " + " | ".join(_gbnf_literal(option) for option in options)


def _gbnf_literal(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\x{ord(char):02X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def compile_grammar(text: str | None) -> Any:
    """A llama.cpp grammar object for GBNF `text` (None: no constraint)."""
    if text is None:
        return None
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


Renderer = Callable[[list[dict[str, Any]], bool, list[dict[str, Any]] | None], str]
"""(messages, add_generation_prompt, tools) -> prompt text."""


def chat_renderer(llm: Llama) -> Renderer:
    """Renders messages (and tools) to prompt text with the GGUF's chat template (ChatML without
    one). Templates that take `tools` (Qwen2.5's does) write them into the system part, so the
    tool block is part of the prefix that warm() evaluates once."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def token_text(token: int) -> str:
        return (
            llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""
        )

    template = llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
    formatters = {
        flag: Jinja2ChatFormatter(
            template,
            eos_token=token_text(llm.token_eos()),
            bos_token=token_text(llm.token_bos()),
            add_generation_prompt=flag,
        )
        for flag in (True, False)
    }

    def render(
        messages: list[dict[str, Any]],
        generation_prompt: bool,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        return formatters[generation_prompt](
            messages=cast("list[ChatCompletionRequestMessage]", messages),
            tools=cast("list[ChatCompletionTool] | None", tools or None),
        ).prompt

    return render


def template_takes_tools(render: Renderer) -> bool:
    """Whether the chat template writes `tools` into the prompt (most without tools ignore them)."""
    probe = ToolSpec("voiceplat_probe_tool", "probe")
    try:
        prompt = render([{"role": "system", "content": "-"}], True, tool_dicts([probe]))
    except Exception:  # a template may raise on what it does not expect (jinja2 errors)
        return False
    return probe.name in prompt


def message_dicts(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as the dicts that chat templates take: role/content, plus an assistant's
    `tool_calls` (arguments as an object: templates write them with `tojson`) and a tool
    result's `tool_call_id`."""
    dicts: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id is not None:
            item["tool_call_id"] = message.tool_call_id
        dicts.append(item)
    return dicts


def tool_dicts(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tools in the OpenAI function shape: what chat templates render, and what OpenAI-compatible
    APIs take (providers/llm/openai.py)."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]
