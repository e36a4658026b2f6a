"""Provider contracts (ASR, LLM, TTS) and the registry that finds them by `provider` name.

A provider is one file: a class with a pydantic `Settings` model (its part of config.json), registered
with `@register("asr" | "llm" | "tts", "<name>")`. Heavy providers load models in `start()` and run
their CPU work off the event loop (threads or worker processes), so one call's model work never
stalls another call's audio.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from voiceplat.audio.pcm import Pcm

Kind = Literal["asr", "llm", "tts", "realtime"]
KINDS: tuple[Kind, ...] = ("asr", "llm", "tts", "realtime")


ROBOT_ENV_PLACEHOLDER = "robots/<robot>/.env"
"""Where a provider's problem message tells to put a secret; `Robot.problems` names the real file."""


class ProviderError(RuntimeError):
    """A provider failed in a way the session can report and recover from (spoken fallback)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """An action the LLM may ask for: its name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The LLM asks for `name` with `arguments` (parsed JSON); `id` pairs the call with its
    result message (OpenAI's tool_call_id; local models get one made up)."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    """assistant: the tools it asked for (content may be empty)."""
    tool_call_id: str | None = None
    """tool: the id of the call this message is the result of."""


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class ProviderSettings(BaseModel):
    """Base of every provider's settings: unknown keys are errors (likely typos)."""

    model_config = ConfigDict(extra="forbid")
    provider: str


class ASRSettings(ProviderSettings):
    language: str | None = None
    timeout_s: float = 15.0


class LLMSettings(ProviderSettings):
    temperature: float = 0.5
    max_tokens: int = 120
    timeout_s: float = 20.0


class TTSSettings(ProviderSettings):
    voice: str | None = None
    sample_rate: int | None = None
    timeout_s: float = 15.0


class RealtimeSettings(ProviderSettings):
    voice: str | None = None
    timeout_s: float = 15.0


class Provider:
    """Common lifecycle. `env` holds the merged env files (secrets live there, never in config)."""

    kind: ClassVar[Kind]
    name: ClassVar[str]
    Settings: ClassVar[type[ProviderSettings]]
    bounds_own_time: ClassVar[bool] = False
    """True when the provider applies `timeout_s` itself, from the moment its model starts on the
    request: a local model shared by every call of the process queues requests, and the wait in
    that queue is not a hang. The session then adds no timeout of its own; otherwise the
    session's clock starts when it asks."""

    def __init__(self, settings: ProviderSettings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.env = env

    def problems(self) -> list[str]:
        """What stops this provider from running (a missing key, a missing package), for `check`."""
        return []

    async def start(self) -> None:
        """Loads models, opens pools, warms caches. Called once per process before calls arrive."""

    async def aclose(self) -> None:
        """Releases what `start` took."""


class ASR(Provider):
    kind = "asr"
    settings: ASRSettings

    async def transcribe(self, audio: Pcm, language: str | None) -> Transcript:
        raise NotImplementedError


class LLM(Provider):
    kind = "llm"
    settings: LLMSettings

    supports_tools: ClassVar[bool] = False
    """True when `respond` can ask for tools; robots with tools need such a provider."""

    def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        """Yields text chunks of the answer as they are produced."""
        raise NotImplementedError

    def respond(
        self, messages: list[Message], tools: list[ToolSpec] | None = None
    ) -> AsyncIterator[str | ToolCall]:
        """Like `stream`, but the model may ask for one of `tools` instead of answering: then it
        yields a ToolCall (after any text it wrote first) and stops. The caller runs the tool and
        asks again with the assistant's tool-call message and a `tool` message holding the result.

        This default ignores `tools` (providers with `supports_tools` override it)."""
        return self.stream(messages)

    async def warm(self, prefix: list[Message], tools: list[ToolSpec] | None = None) -> None:
        """Precomputes what it can for the opening of every dialog (system prompt, greeting,
        and the block describing `tools` when the model's prompt holds one)."""

    async def prefill(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> bool:
        """Precomputes what it can of `respond(messages, tools)` before it is asked for (the
        caller may still be talking); cancelling it stops the work. False: nothing to precompute
        (remote providers)."""
        return False

    async def choose(self, messages: list[Message], options: list[str]) -> str:
        """Picks one of `options` (e.g. track ids) for the dialog; ProviderError if it cannot.

        This default streams a free answer and matches it (`match_option`); providers that can
        constrain the output (a grammar, a JSON schema) override it so nothing else can come out.
        """
        answer = "".join([piece async for piece in self.stream(messages)])
        return match_option(answer, options)


def match_option(answer: str, options: list[str]) -> str:
    """The option `answer` names: the answer itself (quotes, spaces, a final dot and case aside),
    else the option that occurs in it as a whole word first (the longest, if several start there).
    """
    cleaned = answer.strip().strip("\"'`«»").rstrip(".!").strip()
    for option in options:
        if cleaned.casefold() == option.casefold():
            return option
    found: list[tuple[int, int, str]] = []
    for option in options:
        hit = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", answer, re.IGNORECASE)
        if hit:
            found.append((hit.start(), -len(option), option))
    if not found:
        raise ProviderError(
            f"the answer {answer.strip()[:80]!r} names none of the options: {', '.join(options)}"
        )
    return min(found)[2]


class TTS(Provider):
    kind = "tts"
    settings: TTSSettings

    def synthesize(self, text: str) -> AsyncIterator[Pcm]:
        """Yields audio chunks for `text`, at any sample rate."""
        raise NotImplementedError


class Realtime(Provider):
    """A full-duplex speech-to-speech service (OpenAI Realtime protocol); see sessions/realtime.py."""

    kind = "realtime"
    settings: RealtimeSettings


_REGISTRY: dict[Kind, dict[str, type[Provider]]] = {kind: {} for kind in KINDS}
_loaded = False


def register(kind: Kind, name: str) -> Callable[[type[Provider]], type[Provider]]:
    def decorate(cls: type[Provider]) -> type[Provider]:
        cls.name = name
        _REGISTRY[kind][name] = cls
        return cls

    return decorate


def _load_all() -> None:
    """Imports every module under providers/<kind>/ so their @register calls run."""
    global _loaded
    if _loaded:
        return
    for kind in KINDS:
        package = importlib.import_module(f"voiceplat.providers.{kind}")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    _loaded = True


def known(kind: Kind) -> list[str]:
    _load_all()
    return sorted(_REGISTRY[kind])


def provider_class(kind: Kind, name: str) -> type[Provider] | None:
    _load_all()
    return _REGISTRY[kind].get(name)


def create(kind: Kind, settings: ProviderSettings, env: Mapping[str, str]) -> Provider:
    cls = provider_class(kind, settings.provider)
    if cls is None:
        raise KeyError(settings.provider)
    return cls(settings, env)
