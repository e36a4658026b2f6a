"""A loaded robot: its folder, config, prompt, greeting audio, tracks, env and providers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.audio.wav import WavError, read_wav
from voiceplat.config import RobotConfig, load_config
from voiceplat.config_errors import describe_errors, format_value, missing_provider, prefixed
from voiceplat.config_sources import read_env_files
from voiceplat.errors import RobotError
from voiceplat.knowledge.grounding import system_instruction
from voiceplat.knowledge.index import KnowledgeBase, knowledge_problems, load_knowledge
from voiceplat.providers import base as providers
from voiceplat.providers.base import (
    ASR,
    LLM,
    ROBOT_ENV_PLACEHOLDER,
    TTS,
    Kind,
    Message,
    Provider,
    ProviderSettings,
    Realtime,
)
from voiceplat.recording.settings import recording_problems
from voiceplat.reports.settings import reports_problems
from voiceplat.sessions.speech_rates import SpeechRates
from voiceplat.sessions.turn_audio import render
from voiceplat.turns.end_of_turn import EndOfTurnPolicy
from voiceplat.turns.smart_turn import SmartTurn

if TYPE_CHECKING:
    from voiceplat.reports.after_call import AfterCall

    # Imported where tracks are loaded: the llm_script package imports its session, whose base
    # class imports this module.
    from voiceplat.sessions.llm_script.tracks import TrackSet
    from voiceplat.tools.toolbox import ToolBox

MODES_AVAILABLE = ("pipeline", "realtime", "llm_script")
VAD_MODES = ("pipeline", "llm_script")
T = TypeVar("T")


def kinds_for(config: RobotConfig) -> tuple[Kind, ...]:
    """The providers a robot's mode needs; realtime robots use a TTS only for fallback phrases."""
    if config.mode == "realtime":
        return ("realtime", "tts") if "tts" in config.model_fields_set else ("realtime",)
    return ("asr", "llm", "tts")


@dataclass
class Robot:
    directory: Path
    config: RobotConfig
    prompt: str
    """The LLM's system prompt: prompt.txt (llm_script: followed by the menu of tracks)."""
    env: Mapping[str, str]
    settings: dict[Kind, ProviderSettings]
    greeting_audio: Pcm | None = None
    tracks: TrackSet | None = None
    """llm_script: the prerecorded tracks, audio at 8 kHz."""
    providers: dict[Kind, Provider] = field(default_factory=dict)
    rates: SpeechRates = field(default_factory=SpeechRates)
    """The LLM's and TTS's measured speeds, shared by the robot's calls (answer chunk sizes)."""
    filler_audio: tuple[str, Pcm] | None = None
    """`filler_text` synthesised at start (8 kHz), ready to cover a gap inside an answer."""
    hold_repeat_audio: list[tuple[str, Pcm]] = field(default_factory=list)
    """`hold_repeat_texts` synthesised at start: said while an answer keeps the caller waiting."""
    end_of_turn_model: SmartTurn | None = None
    """Smart Turn v3, loaded at start when `end_of_turn.model` asks for it."""
    knowledge: KnowledgeBase | None = None
    """The knowledge files' passages, indexed at start (None: the robot has none)."""
    tools: ToolBox | None = None
    """The actions its LLM may take (`tools` in config.json), made at load."""
    after_call: AfterCall | None = None
    """Summary and report of each finished call (set by `serve`)."""
    own_prompt: str = ""
    """prompt.txt as written (`prompt` adds the knowledge instruction once the index is up)."""
    calls_in_progress: int = 0
    _no_calls: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self.own_prompt = self.own_prompt or self.prompt
        self._no_calls.set()

    def call_started(self) -> None:
        self.calls_in_progress += 1
        self._no_calls.clear()

    def call_ended(self) -> None:
        self.calls_in_progress = max(0, self.calls_in_progress - 1)
        if self.calls_in_progress == 0:
            self._no_calls.set()

    async def idle(self) -> None:
        """Returns once no call is in progress (after-call work that would slow the calls)."""
        await self._no_calls.wait()

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def logs_dir(self) -> Path:
        return self.directory / self.config.logs_dir

    @property
    def asr(self) -> ASR:
        return self.providers["asr"]  # type: ignore[return-value]

    @property
    def llm(self) -> LLM:
        return self.providers["llm"]  # type: ignore[return-value]

    @property
    def tts(self) -> TTS:
        return self.providers["tts"]  # type: ignore[return-value]

    @property
    def realtime(self) -> Realtime:
        return self.providers["realtime"]  # type: ignore[return-value]

    def create_providers(self) -> None:
        self.providers = {
            kind: providers.create(kind, settings, self.env)
            for kind, settings in self.settings.items()
        }
        if self.config.tools and self.config.mode == "pipeline":
            from voiceplat.tools.toolbox import ToolBox

            self.tools = ToolBox(self.config.tools, self.env)

    def now(self) -> datetime:
        """The wall clock in the robot's time zone (`timezone`; the host's when unset)."""
        return datetime.now(self.config.zone()).astimezone(self.config.zone())

    def problems(self) -> list[str]:
        """Things that stop the providers from running (missing keys, packages)."""
        # Providers do not know which robot they serve; their messages name its .env generically.
        env_file = str(self.directory / ".env")
        found = [
            f"{self.directory / 'config.json'}: {kind}: "
            + problem.replace(ROBOT_ENV_PLACEHOLDER, env_file)
            for kind, provider in self.providers.items()
            for problem in provider.problems()
        ]
        config_file = self.directory / "config.json"
        reports = reports_problems(self.config.reports, self.env)
        found += [f"{config_file}: reports: {p}" for p in reports]
        if self.tools is not None:
            found += [f"{config_file}: {p}" for p in self.tools.problems()]
            llm = self.providers.get("llm")
            if isinstance(llm, LLM) and not llm.supports_tools:
                found.append(
                    f"{config_file}: tools: the {llm.name!r} LLM cannot call "
                    "tools; use llama_cpp or openai, or remove `tools`"
                )
        recording = recording_problems(self.directory, self.config.recording)
        found += [f"{config_file}: {p}" for p in recording]
        from voiceplat.telephony.ingress.paths import secret_problems  # (it imports Robot)

        found += [f"{config_file}: {p}" for p in secret_problems(self)]
        found += [f"{config_file}: {p}" for p in self.config.admission.problems(self.directory)]
        return found

    async def start(self) -> None:
        for provider in self.providers.values():
            await provider.start()
        await self._start_dialog()
        if self.config.mode in VAD_MODES and self.config.end_of_turn.enabled:
            self.end_of_turn_model = await asyncio.to_thread(SmartTurn.load)
        if "tts" in self.providers and self.config.filler_text and self.config.mode == "pipeline":
            self.filler_audio = (
                self.config.filler_text,
                Pcm(await render(self.tts, self.config.filler_text), CALL_RATE),
            )
        if (
            "tts" in self.providers
            and self.config.mode == "pipeline"
            and self.config.hold_repeat_max
        ):
            self.hold_repeat_audio = [
                (text, Pcm(await render(self.tts, text), CALL_RATE))
                for text in self.config.hold_repeat_texts
                if text.strip()
            ]

    async def start_text(self, *, dry_run_tools: bool = True) -> None:
        """Starts only what a text dialog needs: the LLM, the knowledge, the tools (webhooks
        answered by a stand-in with `dry_run_tools`)."""
        await self.llm.start()
        if dry_run_tools and self.tools is not None:
            from voiceplat.dialog.text_dialog import DryRunTools

            self.tools = DryRunTools(self.config.tools, self.env)
        await self._start_dialog()

    async def _start_dialog(self) -> None:
        if self.config.mode == "pipeline":
            self.knowledge = await asyncio.to_thread(
                load_knowledge, self.directory, self.config.knowledge
            )
            if self.knowledge is not None:
                self.prompt = system_instruction(self.own_prompt, self.config.knowledge)
        if self.config.form is not None:
            from voiceplat.forms.fields import warm

            await asyncio.to_thread(warm)  # dateparser's and pymorphy3's data, off the calls
        if "llm" in self.providers:
            from voiceplat.dialog.answerer import offered_tools

            await self.llm.warm(self.opening(), offered_tools(self.tools, self.config))

    def end_of_turn_policy(self) -> EndOfTurnPolicy | None:
        """How a call's turn-taking ends turns beyond silence length: the model, the text cue
        (None: silence alone)."""
        settings = self.config.end_of_turn
        if not settings.text_cue and self.end_of_turn_model is None:
            return None
        return EndOfTurnPolicy(self.config.end_of_turn, self.config.vad.end_silence_ms)

    async def end_of_turn_probability(self, audio: bytes) -> float | None:
        model = self.end_of_turn_model
        return None if model is None else await model.predict_async(audio)

    def opening(self) -> list[Message]:
        """How every dialog begins: the system prompt, then the spoken greeting."""
        track = self.tracks.greeting if self.tracks else None
        # llm_script dialogs show robot turns as track ids (sessions/llm_script/session.py)
        greeting = track.id if track else self.config.greeting_text
        system = Message("system", self.prompt)
        return [system, Message("assistant", greeting)] if greeting else [system]

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        if self.tools is not None:
            await self.tools.aclose()
        if self.end_of_turn_model is not None:
            self.end_of_turn_model.close()


def _provider_settings(
    config_path: Path, config: RobotConfig
) -> tuple[dict[Kind, ProviderSettings], list[str]]:
    settings: dict[Kind, ProviderSettings] = {}
    problems: list[str] = []
    for kind in kinds_for(config):
        section = getattr(config, kind) or {}
        name = section.get("provider")
        if not isinstance(name, str) or not name:
            classes = {n: providers.provider_class(kind, n) for n in providers.known(kind)}
            settings_of = {n: c.Settings for n, c in classes.items() if c is not None}
            problems += prefixed(str(config_path), missing_provider(kind, section, settings_of))
            continue
        cls = providers.provider_class(kind, name)
        if cls is None:
            problems.append(
                f"{config_path}: {kind}.provider: {format_value(name)} is not a known "
                f"{kind.upper()} provider; known: {', '.join(providers.known(kind))}"
            )
            continue
        try:
            settings[kind] = cls.Settings.model_validate(section)
        except ValidationError as exc:
            problems += [
                f"{config_path}: {line}"
                for line in describe_errors(exc, prefix=(kind,), model=cls.Settings)
            ]
    return settings, problems


def _read_prompt(robot_dir: Path) -> str:
    path = robot_dir / "prompt.txt"
    try:
        prompt = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise RobotError(f"{path}: missing; write the robot's system prompt there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RobotError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    if not prompt:
        raise RobotError(f"{path}: is empty; write the robot's system prompt there")
    return prompt


def _read_greeting(robot_dir: Path, config: RobotConfig) -> Pcm | None:
    name = config.greeting_wav
    path = robot_dir / (name or "greeting.wav")
    if name is None and not path.exists():
        return None
    try:
        return read_wav(path)
    except WavError as exc:
        raise RobotError(
            f"{exc}; greeting_wav must be a 16-bit PCM WAV in the robot folder"
        ) from None


def _collecting(problems: list[str], reader: Callable[..., T], *args: Any) -> T | None:
    """Runs a reader, adding its RobotError to `problems`, so `check` reports every problem at once."""
    try:
        return reader(*args)
    except RobotError as exc:
        problems += exc.problems
        return None


def load_robot(robot_dir: str | Path, *, root_dir: Path | None = None) -> Robot:
    """Loads and validates a robot folder; raises RobotError with every problem found."""
    directory = Path(robot_dir)
    if not directory.is_dir():
        raise RobotError(f"{directory}: no such robot folder")
    env = read_env_files(directory, root_dir)
    config = load_config(directory, env)
    problems: list[str] = []
    if config.mode not in MODES_AVAILABLE:
        problems.append(
            f"{directory / 'config.json'}: mode: {format_value(config.mode)} is not available "
            f"in this version; available: {', '.join(MODES_AVAILABLE)}"
        )
    if config.mode in VAD_MODES and not config.vad.enabled:
        problems.append(
            f"{directory / 'config.json'}: vad.enabled: false is not allowed in {config.mode} "
            "mode; it needs VAD to find where the caller stops speaking"
        )
    settings, provider_problems = _provider_settings(directory / "config.json", config)
    problems += provider_problems
    prompt = _collecting(problems, _read_prompt, directory)
    if config.mode == "pipeline":
        problems += knowledge_problems(directory, config.knowledge)
    greeting = _collecting(problems, _read_greeting, directory, config)
    tracks = None
    if config.mode == "llm_script":
        from voiceplat.sessions.llm_script.tracks import load_tracks

        tracks = _collecting(problems, load_tracks, directory, config)
    if problems:
        raise RobotError(problems)
    prompt = tracks.system_prompt(prompt or "") if tracks else prompt or ""
    robot = Robot(directory, config, prompt, env, settings, greeting, tracks)
    robot.create_providers()
    return robot
