"""LLM tool calling without a model: the llama_cpp lazy grammar (scanner, grammar, the two-phase
generation on a scripted stand-in for `Llama`), the chat-template shapes, and the fake LLM."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from voiceplat.providers.base import Message, ProviderError, ToolCall, ToolSpec
from voiceplat.providers.llm.fake import FakeLLM
from voiceplat.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppSettings, _Engine
from voiceplat.providers.llm.llama_prompt import (
    CHATML_TEMPLATE,
    message_dicts,
    template_takes_tools,
    tool_dicts,
)
from voiceplat.providers.llm.llama_state_cache import StateCache
from voiceplat.providers.llm.llama_tools import ToolScanner, parse_tool_call, tool_grammar

BOOK = ToolSpec(
    "book_visit",
    "Записать на приём.",
    {
        "type": "object",
        "properties": {
            "doctor": {"type": "string", "enum": ["терапевт", "хирург"]},
            "date": {"type": "string"},
            "time": {"type": "string"},
        },
        "required": ["doctor", "date"],
    },
)
TRANSFER = ToolSpec("transfer", "Соединить с администратором.")
ASK = [Message("system", "Ты робот клиники."), Message("user", "Запишите к терапевту")]


def scan(*chunks: str) -> tuple[list[str], ToolScanner]:
    scanner = ToolScanner()
    spoken = [scanner.feed(chunk) for chunk in chunks]
    spoken.append(scanner.finish())
    return [piece for piece in spoken if piece], scanner


# ToolScanner


def test_plain_answer_is_spoken_as_it_streams() -> None:
    spoken, scanner = scan("Клиника ", "работает ", "до восьми.")
    assert spoken == ["Клиника ", "работает ", "до восьми."]
    assert not scanner.triggered


def test_text_before_a_tag_is_spoken_and_the_call_starts_at_the_tag() -> None:
    spoken, scanner = scan("Минутку, ", "проверяю. ", "<tool_call>", '\n{"name"')
    assert spoken == ["Минутку, ", "проверяю. "]
    assert scanner.triggered
    assert scanner.said == "Минутку, проверяю. "


def test_a_tag_split_across_chunks_is_held_back_not_spoken() -> None:
    spoken, scanner = scan("Сейчас <to", "ol_ca", "ll>")
    assert spoken == ["Сейчас "]
    assert scanner.triggered


@pytest.mark.parametrize(
    "chunks",
    [
        ("{{",),
        ('{"', "name"),
        (" ", "\n", "{"),
        ("```", "json"),
        ("`", "``json"),
        ("<tool_call>",),
        ("<tools>", " {"),
        ("<", "tools>"),
    ],
)
def test_an_answer_starting_as_a_call_is_never_spoken(chunks: tuple[str, ...]) -> None:
    spoken, scanner = scan(*chunks, "ignored")
    assert spoken == []
    assert scanner.triggered
    assert scanner.said == ""


def test_held_back_characters_that_are_no_call_are_spoken() -> None:
    spoken, scanner = scan("`", "Да", ", с 8 до 20 <", "3 часов")
    assert "".join(spoken) == "`Да, с 8 до 20 <3 часов"
    assert not scanner.triggered


def test_a_brace_later_in_the_answer_is_spoken() -> None:
    spoken, scanner = scan("Да ", "{точно}")
    assert "".join(spoken) == "Да {точно}"
    assert not scanner.triggered


# Grammar and parsing


def test_grammar_allows_only_the_tools_names_with_their_arguments_in_schema_order() -> None:
    grammar = tool_grammar([BOOK, TRANSFER])
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())
    assert rules["root"] == "call"
    assert rules["call"] == "call-0 | call-1"
    assert rules["call-0-name"] == '"\\"book_visit\\""'
    assert rules["call-1-name"] == '"\\"transfer\\""'
    # Required doctor and date in the schema's order, optional time after them.
    assert rules["call-0-arguments"] == (
        '"{" space call-0-arguments-doctor-kv "," space call-0-arguments-date-kv '
        '( "," space ( call-0-arguments-time-kv ) )? "}" space'
    )
    assert (
        "\\u0442\\u0435\\u0440\\u0430\\u043f\\u0435\\u0432\\u0442"
        in rules["call-0-arguments-doctor"]
    )
    assert rules["call-1-arguments"] == '"{" space  "}" space'  # no arguments at all


def test_a_schema_no_grammar_can_express_is_a_provider_error() -> None:
    bad = ToolSpec("odd", "?", {"type": "object", "properties": {"x": {"type": "bogus"}}})
    with pytest.raises(ProviderError, match="cannot be turned into a grammar: Unrecognized"):
        tool_grammar([bad])


def test_parse_tool_call() -> None:
    call = parse_tool_call('{"name": "book_visit", "arguments": {"doctor": "хирург"}}', [BOOK])
    assert (call.name, call.arguments) == ("book_visit", {"doctor": "хирург"})
    assert call.id.startswith("call_") and len(call.id) == 17
    with pytest.raises(ProviderError, match="ended before its JSON was complete"):
        parse_tool_call('{"name": "book_visit", "argu', [BOOK])
    with pytest.raises(ProviderError, match="not one of the tools"):
        parse_tool_call('{"name": "transfer", "arguments": {}}', [BOOK])


# Chat-template shapes


def test_tool_calls_and_results_become_template_dicts() -> None:
    call = ToolCall("book_visit", {"doctor": "хирург", "date": "завтра"}, id="call_1")
    dicts = message_dicts(
        [
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", '{"ok": true}', tool_call_id="call_1"),
        ]
    )
    assert dicts == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "book_visit", "arguments": call.arguments},
                }
            ],
        },
        {"role": "tool", "content": '{"ok": true}', "tool_call_id": "call_1"},
    ]
    assert tool_dicts([TRANSFER]) == [
        {
            "type": "function",
            "function": {
                "name": "transfer",
                "description": "Соединить с администратором.",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]


def test_templates_that_ignore_tools_are_recognised() -> None:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def renderer(template: str) -> Any:
        formatter = Jinja2ChatFormatter(template, eos_token="", bos_token="")
        return lambda messages, _prompt, tools: formatter(messages=messages, tools=tools).prompt

    with_tools = "{% for t in tools %}{{ t | tojson }}{% endfor %}" + CHATML_TEMPLATE
    assert template_takes_tools(renderer(with_tools))
    assert not template_takes_tools(renderer(CHATML_TEMPLATE))
    assert not template_takes_tools(renderer("{{ raise_exception('no') }}"))


# Two-phase generation on a scripted stand-in for llama_cpp.Llama


class ScriptedLlama:
    """Tokens are the UTF-8 bytes of the text; each completion streams the next script."""

    def __init__(self, *scripts: list[str]) -> None:
        self.scripts = list(scripts)
        self.completions: list[tuple[list[int], dict[str, Any]]] = []
        self.input_ids = np.zeros(8192, dtype=np.intc)
        self.n_tokens = 0

    def n_ctx(self) -> int:
        return 4096

    def tokenize(self, data: bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        return list(data)

    def eval(self, tokens: list[int]) -> None:
        self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)

    def create_completion(self, tokens: list[int], **options: Any) -> Iterator[dict[str, Any]]:
        self.completions.append((list(tokens), options))
        script = self.scripts.pop(0)
        return iter([{"choices": [{"text": text}]} for text in script])


def render(messages: list[dict[str, Any]], prompt: bool, tools: list[dict] | None) -> str:
    text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
    if tools:
        text = "[tools: " + ", ".join(t["function"]["name"] for t in tools) + "]" + text
    return text + ("<assistant>" if prompt else "")


@pytest.fixture
def make_llm() -> Iterator[Any]:
    engines: list[_Engine] = []

    def make(llama: ScriptedLlama, renderer: Any = render) -> LlamaCppLLM:
        settings = LlamaCppSettings(provider="llama_cpp", timeout_s=60, tool_call_max_tokens=99)
        llm = LlamaCppLLM(settings, {})
        llm._engine = _Engine(llama, renderer, StateCache(0))  # type: ignore[arg-type]
        engines.append(llm._engine)
        return llm

    yield make
    for engine in engines:
        engine.executor.shutdown()


async def test_text_then_a_call_written_under_the_grammar(make_llm: Any) -> None:
    call_json = '{"name": "book_visit", "arguments": {"doctor": "терапевт", "date": "завтра"}}'
    llama = ScriptedLlama(
        ["Минутку. ", "<tool_call>", "never read"], [call_json[:30], call_json[30:]]
    )
    llm = make_llm(llama)

    got = [piece async for piece in llm.respond(ASK, [BOOK, TRANSFER])]

    assert got[:-1] == ["Минутку. "]
    call = got[-1]
    assert isinstance(call, ToolCall)
    assert (call.name, call.arguments) == ("book_visit", {"doctor": "терапевт", "date": "завтра"})
    (free_tokens, free), (call_tokens, constrained) = llama.completions
    prompt = render(message_dicts(ASK), True, tool_dicts([BOOK, TRANSFER]))
    assert bytes(free_tokens).decode() == prompt  # the tools are in the prompt
    assert free["grammar"] is None  # the answer itself is free
    # The call continues what was said, after the opening the template writes for a call.
    assert bytes(call_tokens).decode() == prompt + "Минутку. <tool_call>\n"
    assert constrained["grammar"] is not None
    assert (constrained["temperature"], constrained["max_tokens"]) == (0.0, 99)


async def test_a_bare_json_answer_becomes_a_call_and_nothing_is_spoken(make_llm: Any) -> None:
    llama = ScriptedLlama(["{{", '"name"'], ['{"name": "transfer", "arguments": {}}'])
    got = [piece async for piece in make_llm(llama).respond(ASK, [BOOK, TRANSFER])]
    assert [(p.name, p.arguments) for p in got if isinstance(p, ToolCall)] == [("transfer", {})]
    assert [p for p in got if isinstance(p, str)] == []
    assert bytes(llama.completions[1][0]).decode().endswith("<assistant><tool_call>\n")


async def test_an_answer_without_a_call_streams_as_without_tools(make_llm: Any) -> None:
    llama = ScriptedLlama(["До ", "восьми", " <3"])
    got = [piece async for piece in make_llm(llama).respond(ASK, [BOOK])]
    assert got == ["До ", "восьми", " <3"]
    assert len(llama.completions) == 1


async def test_a_call_cut_at_its_token_limit_is_a_provider_error(make_llm: Any) -> None:
    llama = ScriptedLlama(["<tool_call>"], ['{"name": "book_visit", "arguments": {"doc'])
    with pytest.raises(ProviderError, match="ended before its JSON was complete"):
        [piece async for piece in make_llm(llama).respond(ASK, [BOOK])]


async def test_a_template_that_ignores_tools_is_reported(make_llm: Any) -> None:
    ignoring = make_llm(
        ScriptedLlama(), lambda messages, prompt, tools: render(messages, prompt, None)
    )
    with pytest.raises(ProviderError, match="ignores tools: use a model whose template takes"):
        [piece async for piece in ignoring.respond(ASK, [BOOK])]


async def test_warm_evaluates_the_opening_with_the_tools(make_llm: Any) -> None:
    llama = ScriptedLlama()
    await make_llm(llama).warm(ASK[:1], tools=[BOOK])
    warmed = bytes(llama.input_ids[: llama.n_tokens].tolist()).decode()
    assert warmed == "[tools: book_visit]<system>Ты робот клиники."


# The fake LLM


def fake(**settings: Any) -> FakeLLM:
    return FakeLLM(FakeLLM.Settings(provider="fake", **settings), {})


async def test_fake_calls_a_scripted_tool_only_when_offered() -> None:
    llm = fake(tool_calls={"запиш": {"name": "book_visit", "arguments": {"doctor": "терапевт"}}})

    offered = [piece async for piece in llm.respond(ASK, [BOOK])]
    not_offered = [piece async for piece in llm.respond(ASK, [TRANSFER])]

    assert offered == [ToolCall("book_visit", {"doctor": "терапевт"}, id="fake_call_1")]
    assert not_offered == ["Вы ", "сказали: ", "Запишите ", "к ", "терапевту."]
    assert [tools for _, tools in llm.responded] == [["book_visit"], ["transfer"]]
    assert llm.streamed == [ASK]  # the text answer only


async def test_fake_answers_a_tool_result_from_its_template() -> None:
    llm = fake(tool_reply="Записала: {result}.")
    call = ToolCall("book_visit", {}, id="fake_call_1")
    history = [
        *ASK,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", '{"time": "10:00"}', tool_call_id="fake_call_1"),
    ]
    got = "".join([piece async for piece in llm.respond(history, [BOOK])])  # type: ignore[misc]
    assert got == 'Записала: {"time": "10:00"}.'


async def test_fake_tool_call_fails_on_purpose() -> None:
    llm = fake(tool_calls={"запиш": {"name": "book_visit"}}, fail="raise")
    with pytest.raises(ProviderError, match="before the tool call"):
        [piece async for piece in llm.respond(ASK, [BOOK])]


def test_the_tool_capable_providers_say_so() -> None:
    from voiceplat.providers.llm.openai import OpenAILLM

    assert LlamaCppLLM.supports_tools and OpenAILLM.supports_tools and FakeLLM.supports_tools
