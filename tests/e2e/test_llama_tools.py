"""`llama_cpp` tool calling with Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) from the model cache: the
GGUF's chat template renders the tools and past calls; a booking request comes back as a ToolCall
whose arguments the tool's schema accepts (written under the grammar built from it).

Skipped when llama-cpp-python or the model packages are missing (scripts/setup.sh installs them).
Run with -s to see the time to the call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jsonschema
import pytest

from voiceplat.providers.base import Message, ToolCall, ToolSpec
from voiceplat.providers.llm.llama_cpp import LlamaCppLLM
from voiceplat.providers.llm.llama_prompt import message_dicts, tool_dicts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SYSTEM = (
    "Ты — голосовой помощник медицинской клиники «Здоровье». Отвечай по-русски, коротко. "
    "Чтобы записать пациента на приём, вызови инструмент book_visit."
)
BOOK_VISIT = ToolSpec(
    "book_visit",
    "Записать пациента на приём к врачу.",
    {
        "type": "object",
        "properties": {
            "doctor": {"type": "string", "description": "Специальность врача, например терапевт"},
            "date": {"type": "string", "description": "Дата приёма, как её сказал пациент"},
        },
        "required": ["doctor", "date"],
    },
)
HANG_S = 60.0


async def test_a_booking_request_becomes_a_schema_valid_tool_call(
    llm: LlamaCppLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = llm._engine
    assert engine is not None
    await llm.warm([Message("system", SYSTEM)], tools=[BOOK_VISIT])
    evaluated: list[int] = []
    real_eval = engine.llm.eval

    def counting_eval(tokens: Sequence[int]) -> None:
        evaluated.append(len(tokens))
        return real_eval(tokens)

    monkeypatch.setattr(engine.llm, "eval", counting_eval)
    history = [Message("system", SYSTEM), Message("user", "Запишите меня к терапевту на завтра")]
    started = time.perf_counter()

    pieces = [piece async for piece in llm.respond(history, [BOOK_VISIT])]

    prefix = engine.tokens(message_dicts(history[:1]), False, tool_dicts([BOOK_VISIT]))
    print(
        f"\nbook_visit call after {time.perf_counter() - started:.1f} s, {sum(evaluated)} tokens "
        f"evaluated (the warmed prefix: {len(prefix)}): {pieces!r}"
    )
    # warm() evaluated the system prompt with its tool block: the answer, the call and the user
    # turn together took fewer tokens than that prefix, so it was not evaluated again.
    assert sum(evaluated) < len(prefix)
    *said, call = pieces
    assert isinstance(call, ToolCall), pieces
    assert call.name == "book_visit"
    jsonschema.validate(call.arguments, BOOK_VISIT.parameters)
    assert "терапевт" in call.arguments["doctor"].casefold()
    assert all(isinstance(piece, str) for piece in said)  # text may come first, never JSON
    assert "{" not in "".join(map(str, said))


def test_the_gguf_template_renders_tools_calls_and_results(llm: LlamaCppLLM) -> None:
    engine = llm._engine
    assert engine is not None and engine.takes_tools
    call = ToolCall("book_visit", {"doctor": "терапевт", "date": "завтра"}, id="call_1")
    history = [
        Message("system", SYSTEM),
        Message("user", "Запишите меня к терапевту на завтра"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", '{"time": "10:00"}', tool_call_id="call_1"),
    ]

    prompt = engine.render(message_dicts(history), True, tool_dicts([BOOK_VISIT]))

    assert prompt.startswith("<|im_start|>system\n" + SYSTEM + "\n\n# Tools")
    assert '"name": "book_visit", "description": "Записать пациента' in prompt  # not \\u escapes
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "book_visit", "arguments": '
        '{"doctor": "терапевт", "date": "завтра"}}\n</tool_call><|im_end|>'
    ) in prompt
    assert prompt.endswith(
        '<|im_start|>user\n<tool_response>\n{"time": "10:00"}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )
