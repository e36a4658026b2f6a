"""`llama_cpp` LLM: a local GGUF model (Qwen2.5-Coder Instruct by default) through llama-cpp-python.

One `Llama` per process and model, shared by every call; it runs on a single worker thread, one
generation at a time, and further requests queue (bounded by `max_queue`; beyond it they fail fast
with ProviderError). Tokens travel to the event loop through `loop.call_soon_threadsafe` into an
asyncio.Queue. A consumer that stops iterating (barge-in, hang-up) sets a flag the worker checks
between tokens and between 32-token slices of prompt evaluation, so the model is free again within
tens of milliseconds; a request still waiting in the queue is dropped before it starts.

Prompts are rendered with the chat template stored in the GGUF (`llama_prompt.py`). The context
keeps the tokens it evaluated last, and `StateCache` snapshots it after every generation, so each
call's next turn evaluates only its new user message even when other calls took turns in between.
`warm()` evaluates a robot's system prompt once at start, so the first caller does not pay for it.
`prefill()` evaluates a prompt before its answer is asked for (the session's speculative
transcript, while the caller may still be talking): the stream that follows with the same messages
evaluates only its last token.

`choose()` (llm_script) runs through the same queue with a GBNF grammar (`root ::= "id1" | "id2"`),
greedy (temperature 0) and a few tokens: the model can only write one of the ids, then stop.

`respond(messages, tools)` renders the tools with the chat template (in the system part, so warm()
and the snapshots keep them evaluated) and applies a grammar only once the model starts a call
(`llama_tools.py`): the call's JSON is written greedily under it, on the same worker turn.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

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
from voiceplat.providers.llm.llama_prompt import (
    ChatRequest,
    Renderer,
    chat_renderer,
    message_dicts,
    options_grammar,
    template_takes_tools,
    tool_dicts,
)
from voiceplat.providers.llm.llama_state_cache import StateCache, prefill
from voiceplat.providers.llm.llama_tools import answer, tool_grammar
from voiceplat.providers.worker import SharedModels, SingleWorker

if TYPE_CHECKING:
    from llama_cpp import Llama

LLAMA_CPP_REQUIREMENT = "llama-cpp-python==0.3.36"
MODEL_NAMES = {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"}
"""Catalog models (voiceplat.models.catalog); any other value is a path to a .gguf file."""


class LlamaCppSettings(LLMSettings):
    """Settings of the `llama_cpp` LLM."""

    model: str = Field(
        "qwen2.5-coder-1.5b",
        description="'qwen2.5-coder-1.5b', 'qwen2.5-coder-0.5b' or a path to a .gguf file.",
    )
    n_ctx: int = Field(2048, ge=256, description="Context length in tokens.")
    n_threads: int = Field(2, ge=1, description="CPU threads for prompt evaluation and generation.")
    n_batch: int = Field(256, ge=8, description="Prompt tokens decoded per llama.cpp batch.")
    stop: list[str] = Field(default_factory=list, description="Extra stop strings.")
    top_p: float = Field(0.95, gt=0, le=1)
    state_cache_mb: int = Field(
        256, ge=0, description="Memory for per-conversation context snapshots (0 disables)."
    )
    max_queue: int = Field(16, ge=1, description="Requests waiting before new ones fail fast.")
    tool_call_max_tokens: int = Field(
        200, ge=16, description="Longest tool call (its JSON) the model may write."
    )


class _Engine(SingleWorker):
    """A loaded model, its chat template, its snapshots and the one thread that runs it."""

    def __init__(self, llm: Llama, render: Renderer, states: StateCache) -> None:
        super().__init__("llama", "the local LLM is overloaded: {pending} requests queued")
        self.llm = llm
        self.render = render
        self.states = states
        self.takes_tools = template_takes_tools(render)
        """The chat template writes `tools` into the prompt (templates without tools ignore them)."""

    def tokens(
        self,
        messages: list[dict[str, Any]],
        generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[int]:
        text = self.render(messages, generation_prompt, tools)
        return self.text_tokens(text)

    def text_tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def fit(self, request: ChatRequest) -> list[int]:
        """Prompt tokens, dropping the oldest turns (never the system prompt) to fit n_ctx."""
        messages = list(request.messages)
        budget = self.llm.n_ctx() - request.max_tokens - request.tool_max_tokens
        tools = request.tool_dicts
        tokens = self.tokens(messages, True, tools)
        while len(tokens) > budget:
            first = 1 if messages and messages[0]["role"] == "system" else 0
            if len(messages) - first <= 1:
                raise ProviderError(
                    f"the prompt needs {len(tokens)} tokens but n_ctx {self.llm.n_ctx()} leaves "
                    f"{budget} after max_tokens {request.max_tokens}; shorten the system prompt "
                    "or raise n_ctx"
                )
            del messages[first]
            tokens = self.tokens(messages, True, tools)
        return tokens

    def warm(self, prefix: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> None:
        """Runs on the worker: evaluates the dialog opening's tokens and snapshots them."""
        tokens = self.tokens(prefix, False, tools)
        prefill(self.llm, tokens, threading.Event(), leave_last=False)
        self.states.save(self.llm, pin=True)  # every call starts from it

    def prefill_prompt(self, request: ChatRequest, stop: threading.Event) -> None:
        """Runs on the worker: evaluates what generate(request) would, up to its last token."""
        if stop.is_set():
            return
        tokens = self.fit(request)
        self.states.restore_best(self.llm, tokens)
        if prefill(self.llm, tokens, stop):
            self.states.save(self.llm)  # another call may take the context before ours asks

    def generate(
        self, request: ChatRequest, emit: Callable[[str, Any], None], stop: threading.Event
    ) -> None:
        """Runs on the worker: streams text chunks through `emit` until done or `stop` is set."""
        try:
            if stop.is_set():
                return
            tokens = self.fit(request)
            self.states.restore_best(self.llm, tokens)
            if prefill(self.llm, tokens, stop):
                answer(self.llm, tokens, request, emit, stop)
            self.states.save(self.llm)
        except Exception as exc:  # reported to the consumer, which raises ProviderError
            emit("error", exc)
        finally:
            emit("end", None)


_ENGINES: SharedModels[tuple[str, int, int, int], _Engine] = SharedModels()


def _acquire(path: Path, settings: LlamaCppSettings) -> _Engine:
    def load() -> _Engine:
        from llama_cpp import Llama

        llm = Llama(
            model_path=str(path),
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            n_threads_batch=settings.n_threads,
            n_batch=settings.n_batch,
            verbose=False,
        )
        states = StateCache(settings.state_cache_mb << 20)
        return _Engine(llm, chat_renderer(llm), states)

    key = (str(path), settings.n_ctx, settings.n_threads, settings.n_batch)
    return _ENGINES.acquire(key, load)


def _release(engine: _Engine) -> None:
    if _ENGINES.release(engine):
        engine.executor.submit(engine.llm.close)  # after any generation still finishing
        engine.executor.shutdown(wait=False)


@register("llm", "llama_cpp")
class LlamaCppLLM(LLM):
    Settings = LlamaCppSettings
    settings: LlamaCppSettings
    bounds_own_time = True  # timeout_s from when the model starts the request
    supports_tools = True  # with a chat template that takes tools (Qwen2.5's); respond() checks

    def __init__(self, settings: LlamaCppSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._engine: _Engine | None = None
        self.load_s: float | None = None

    def problems(self) -> list[str]:
        found: list[str] = []
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            found.append(
                f"llama-cpp-python is not installed: run scripts/setup.sh "
                f"(pip install {LLAMA_CPP_REQUIREMENT})"
            )
        model = self.settings.model
        if model in MODEL_NAMES:
            from voiceplat.models.assemble import packages_problem

            if problem := packages_problem(model, model):
                found.append(problem)
        elif not Path(model).expanduser().is_file():
            found.append(
                f"model {model!r}: not a known model ({', '.join(sorted(MODEL_NAMES))}) "
                "nor a .gguf file"
            )
        return found

    def _model_path(self) -> Path:
        if self.settings.model not in MODEL_NAMES:
            return Path(self.settings.model).expanduser()
        from voiceplat.models.assemble import ensure_model_file

        return ensure_model_file(self.settings.model, progress=False)

    async def start(self) -> None:
        if self._engine is not None:
            return
        from voiceplat.models.assemble import ModelError

        started = time.perf_counter()
        try:
            path = await asyncio.to_thread(self._model_path)
            self._engine = await asyncio.to_thread(_acquire, path, self.settings)
        except ModelError as exc:
            raise ProviderError(str(exc)) from exc
        except ImportError as exc:
            raise ProviderError(
                f"llama-cpp-python is not installed ({exc}): pip install {LLAMA_CPP_REQUIREMENT}"
            ) from exc
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise ProviderError(f"cannot load {self.settings.model}: {exc}") from exc
        self.load_s = time.perf_counter() - started

    async def aclose(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            _release(engine)

    async def warm(self, prefix: list[Message], tools: list[ToolSpec] | None = None) -> None:
        """Evaluates the dialog opening; with the `tools` that `respond` will offer, since the
        template writes them into the system part."""
        engine = self._require_engine()
        opening = message_dicts(prefix)
        rendered = tool_dicts(tools) if tools and engine.takes_tools else None
        future = engine.submit(lambda: engine.warm(opening, rendered), self.settings.max_queue)
        await asyncio.wrap_future(future)

    async def prefill(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> bool:
        engine = self._require_engine()
        stop = threading.Event()
        request = self._stream_request(messages, tools)
        future = engine.submit(
            lambda: engine.prefill_prompt(request, stop), self.settings.max_queue
        )
        try:
            await asyncio.wrap_future(future)
        finally:
            stop.set()  # the worker stops at the next prompt slice
            future.cancel()
        return True

    async def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        async for piece in self._generate(self._stream_request(messages)):
            if isinstance(piece, str):
                yield piece

    async def respond(
        self, messages: list[Message], tools: list[ToolSpec] | None = None
    ) -> AsyncIterator[str | ToolCall]:
        if tools and not self._require_engine().takes_tools:
            raise ProviderError(
                f"the chat template of {self.settings.model} ignores tools: use a model whose "
                "template takes them (Qwen2.5)"
            )
        async for piece in self._generate(self._stream_request(messages, tools)):
            yield piece

    def _stream_request(
        self, messages: list[Message], tools: list[ToolSpec] | None = None
    ) -> ChatRequest:
        return ChatRequest(
            messages=message_dicts(messages),
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            top_p=self.settings.top_p,
            stop=list(self.settings.stop),
            tools=list(tools or []),
            tool_grammar=tool_grammar(tools) if tools else "",  # a bad schema fails here
            tool_max_tokens=self.settings.tool_call_max_tokens if tools else 0,
        )

    async def choose(self, messages: list[Message], options: list[str]) -> str:
        request = ChatRequest(
            messages=message_dicts(messages),
            # Every token holds at least one character: the longest id always fits.
            max_tokens=max(len(option) for option in options) + 4,
            temperature=0.0,
            top_p=1.0,
            stop=[],
            grammar=options_grammar(options),
        )
        answer = "".join([text async for text in self._generate(request) if isinstance(text, str)])
        return match_option(answer, options)

    async def _generate(self, request: ChatRequest) -> AsyncIterator[str | ToolCall]:
        engine = self._require_engine()
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def emit(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(chunks.put_nowait, (kind, value))
            except RuntimeError:  # the event loop is gone: nobody listens any more
                stop.set()

        def job() -> None:
            emit("started", None)
            engine.generate(request, emit, stop)

        future = engine.submit(job, self.settings.max_queue)
        started = False  # timeout_s bounds the model's work: the wait in the queue is not counted
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.timeout_s if started else None):
                        kind, value = await chunks.get()
                except TimeoutError:
                    raise ProviderError(
                        f"the local LLM produced nothing for {self.settings.timeout_s} s"
                    ) from None
                if kind == "started":
                    started = True
                elif kind in ("text", "tool"):
                    yield value
                elif kind == "alive":
                    continue
                elif kind == "error":
                    raise ProviderError(f"llama.cpp generation failed: {value}") from value
                else:
                    return
        finally:
            stop.set()  # the worker stops at the next token or prompt slice
            future.cancel()  # never starts if it was still queued

    def _require_engine(self) -> _Engine:
        if self._engine is None:
            raise ProviderError("llama_cpp LLM used before start()")
        return self._engine
