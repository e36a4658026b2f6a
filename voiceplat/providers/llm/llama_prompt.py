"""Prompt text and grammars for the `llama_cpp` LLM: pure helpers, no model needed.

The chat template renderer (the GGUF's own template, ChatML without one), the GBNF grammar that
limits `choose()` to its option ids, and messages as the dicts chat templates take. llama-cpp-python
is imported only when a model is there to use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from voiceplat.providers.base import Message

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestMessage

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Used only when a GGUF carries no chat template."""


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


def chat_renderer(llm: Llama) -> Callable[[list[dict[str, str]], bool], str]:
    """Renders messages to prompt text with the GGUF's chat template (ChatML without one)."""
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
    return lambda messages, generation_prompt: (
        formatters[generation_prompt](
            messages=cast("list[ChatCompletionRequestMessage]", messages)
        ).prompt
    )


def message_dicts(messages: list[Message]) -> list[dict[str, str]]:
    """Messages as the role/content dicts that chat templates take."""
    return [{"role": m.role, "content": m.content} for m in messages]
