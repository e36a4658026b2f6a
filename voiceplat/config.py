"""A robot's configuration: the schema (RobotConfig) and the priority chain that fills it.

Priority, highest first: the robot's config.json, the process environment, the robot's .env, the root
.env (the current directory's), then the defaults below. In env files a config value is written as
`VOICEPLAT_<PATH>` with `__` between levels (`VOICEPLAT_WS_PORT=5300`, `VOICEPLAT_LLM__MODEL=...`);
every other variable (API keys) is left to providers, which read secrets only from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from voiceplat.audio.pcm import FRAME_MS
from voiceplat.config_errors import describe_errors
from voiceplat.config_refs import reference_problems
from voiceplat.config_sources import deep_merge, env_overrides, read_config_json
from voiceplat.errors import RobotError
from voiceplat.forms.settings import FormSettings
from voiceplat.knowledge.settings import KnowledgeSettings
from voiceplat.privacy.settings import PrivacySettings
from voiceplat.recording.settings import RecordingSettings
from voiceplat.reports.settings import ReportsSettings
from voiceplat.sessions.chunking import ChunkingSettings
from voiceplat.telephony.admission import AdmissionSettings
from voiceplat.telephony.ingress.asterisk_ws.settings import AsteriskWsSettings
from voiceplat.telephony.ingress.audio_stream.settings import AudioStreamSettings
from voiceplat.telephony.ingress.audiosocket.settings import AudioSocketSettings
from voiceplat.telephony.ingress.sip.settings import SipSettings
from voiceplat.telephony.ingress.twilio.settings import TwilioSettings
from voiceplat.telephony.media_auth import MediaAuthSettings, WsTlsSettings
from voiceplat.tools.settings import ToolList
from voiceplat.turns.barge_in import BargeInSettings
from voiceplat.turns.echo import EchoSettings
from voiceplat.turns.end_of_turn import EndOfTurnSettings
from voiceplat.turns.endpointer import EndpointerSettings
from voiceplat.turns.utterance_filter import UtteranceFilterSettings

SEED_FRAME_MS = 32
"""The seed design counted VAD frames of 32 ms: silence_frames 25 = 0.8 s, min_speech_frames 5 = 160 ms."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VadSettings(Strict):
    enabled: bool = True
    engine: Literal["webrtc", "energy", "silero"] = "webrtc"
    aggressiveness: int = Field(2, ge=0, le=3, description="webrtcvad: 0 keeps most, 3 drops most")
    energy_threshold: PositiveFloat = Field(200, description="energy VAD: RMS level that is speech")
    silero_threshold: float = Field(0.5, gt=0, lt=1)
    silence_frames: PositiveInt = Field(
        25, description="end of utterance after this many 32 ms frames"
    )
    min_speech_frames: PositiveInt = Field(
        5, description="32 ms frames of speech that start speech"
    )
    silence_ms: PositiveInt | None = Field(None, description="overrides silence_frames")
    min_speech_ms: PositiveInt | None = Field(None, description="overrides min_speech_frames")
    pre_roll_ms: int = Field(300, ge=0, le=2000)
    speculative_pause_ms: int = Field(
        200,
        ge=0,
        description="start ASR after this much silence, keep it if the caller stays silent",
    )
    speculative_answer: bool = Field(
        False,
        description="after speculative ASR, the LLM writes the answer and its first words are "
        "synthesised while the caller is still silent; dropped if they go on (costs LLM work "
        "per pause: on for local models)",
    )
    max_utterance_s: PositiveFloat = 30.0

    @property
    def end_silence_ms(self) -> int:
        return self.silence_ms or self.silence_frames * SEED_FRAME_MS

    @property
    def start_speech_ms(self) -> int:
        return self.min_speech_ms or self.min_speech_frames * SEED_FRAME_MS

    def endpointer_settings(self) -> EndpointerSettings:
        """What the endpointer of a call (or a replay of one) is built with."""
        return EndpointerSettings(
            frame_ms=FRAME_MS,
            min_speech_ms=self.start_speech_ms,
            silence_ms=self.end_silence_ms,
            pre_roll_ms=self.pre_roll_ms,
            max_utterance_s=self.max_utterance_s,
            pause_ms=self.speculative_pause_ms,
        )


class NoInputSettings(Strict):
    reprompt_after_s: PositiveFloat = 8.0
    max_reprompts: int = Field(2, ge=0)
    reprompt_text: str = "Вы меня слышите? Чем я могу помочь?"
    goodbye_text: str = "Не слышу вас. Перезвоните, пожалуйста. До свидания!"


class PlayoutSettings(Strict):
    lead_ms: int = Field(
        200, ge=40, le=2000, description="audio sent ahead of what the caller hears"
    )
    chunk_ms: int = Field(60, ge=20, le=500, description="size of one outbound audio message")


DTMF_KEYS = "0123456789*#ABCD"
DTMF_ACTIONS = '"repeat", "hangup", "transfer", {"transfer": "<extension or SIP URI>"}'


class TransferAction(Strict):
    """A key that hands the caller to a person: `{"transfer": target}`, or `"transfer"` (target
    None) for `transfer.target`."""

    transfer: str | None = Field(None, min_length=1, description="extension or SIP URI")


DtmfAction = Literal["repeat", "hangup"] | TransferAction


class TransferSettings(Strict):
    target: str | None = Field(
        None, min_length=1, description='where the LLM\'s marker and a bare "transfer" key go'
    )
    marker: str = Field("[TRANSFER]", min_length=1)
    caller_phrases: list[str] = Field(
        default_factory=list,
        description="the caller asking for a person in these words (matched by lemma: "
        '"соединить" matches "соедините") is handed over at once, without the LLM',
    )
    text: str = "Соединяю с оператором."
    failed_text: str = "Не получилось соединить. Продолжим."


def _dtmf_problem(
    key: str, expected: str, value: Any, loc: tuple[str, ...] | None = None
) -> InitErrorDetails:
    # literal_error: config_errors says "must be one of: <expected>" in these words, unchanged.
    error = PydanticCustomError("literal_error", "bad dtmf entry", {"expected": expected})
    return InitErrorDetails(type=error, loc=loc or (key,), input=value)


def parse_dtmf(value: Any) -> Any:
    """The `dtmf` map with keys upper-cased and actions parsed; every bad key or action is one
    error at `dtmf.<key>` (pydantic's own errors for a union would be two cryptic lines)."""
    if not isinstance(value, dict):
        return value  # pydantic says it must be an object
    parsed: dict[str, Any] = {}
    problems: list[InitErrorDetails] = []
    for raw_key, action in value.items():
        key = str(raw_key).upper()
        if len(key) != 1 or key not in DTMF_KEYS:
            problems.append(_dtmf_problem(str(raw_key), "0-9, *, #, A-D (one key)", raw_key))
            continue
        if action == "transfer":
            action = TransferAction()
        elif isinstance(action, dict) and set(action) == {"transfer"}:
            target = action["transfer"]
            if target is not None and (not isinstance(target, str) or not target.strip()):
                problems.append(_dtmf_problem(str(raw_key), DTMF_ACTIONS, action))
                continue
            action = TransferAction(transfer=target)
        elif action not in ("repeat", "hangup"):
            problems.append(_dtmf_problem(str(raw_key), DTMF_ACTIONS, action))
            continue
        parsed[key] = action
    if problems:
        raise ValidationError.from_exception_data("dtmf", problems)
    return parsed


class RobotConfig(Strict):
    ws_host: str = "0.0.0.0"
    ws_port: int = Field(5200, ge=1, le=65535)
    media_auth: MediaAuthSettings = Field(default_factory=MediaAuthSettings)
    tls: WsTlsSettings | None = Field(None, description="wss:// and https:// on the robot port")
    mode: Literal["pipeline", "realtime", "llm_script"] = "pipeline"
    asr: dict[str, Any] = Field(default_factory=lambda: {"provider": "faster_whisper"})
    llm: dict[str, Any] = Field(default_factory=lambda: {"provider": "llama_cpp"})
    tts: dict[str, Any] = Field(default_factory=lambda: {"provider": "festival"})
    realtime: dict[str, Any] | None = Field(
        None, description="realtime mode: the speech-to-speech API"
    )
    vad: VadSettings = Field(default_factory=VadSettings)
    barge_in: BargeInSettings = Field(default_factory=BargeInSettings)
    end_of_turn: EndOfTurnSettings = Field(default_factory=EndOfTurnSettings)
    utterance_filter: UtteranceFilterSettings = Field(default_factory=UtteranceFilterSettings)
    echo: EchoSettings = Field(default_factory=EchoSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    filler_text: str = Field(
        "Так…", description="said once in an answer to cover a gap the LLM would leave ('' = never)"
    )
    hold_repeat_texts: list[str] = Field(
        default_factory=lambda: ["Минутку…", "Ещё секунду…", "Почти готово…"],
        description="said in turn while an answer is not yet started and the caller has heard "
        "nothing for hold_repeat_ms ([] = never)",
    )
    hold_repeat_ms: int = Field(3000, ge=300, description="silence before a hold_repeat_texts one")
    hold_repeat_max: int = Field(4, ge=0, description="hold_repeat_texts said at most per answer")
    no_input: NoInputSettings = Field(default_factory=NoInputSettings)
    playout: PlayoutSettings = Field(default_factory=PlayoutSettings)
    greeting_text: str | None = None
    greeting_wav: str | None = Field(
        None, description="file in the robot folder; greeting.wav if it exists"
    )
    greeting_interruptible: bool = True
    fallback_text: str = "Извините, у меня техническая заминка. Повторите, пожалуйста."
    end_call_marker: str = Field("[END]", min_length=1)
    goodbye_words: list[str] = Field(
        default_factory=lambda: [
            "до свидания",
            "всего доброго",
            "всего хорошего",
            "всего вам доброго",
            "всего вам хорошего",
            "счастливо",
            "пока",
            "до свиданья",
            "до свиданьица",
            "прощайте",
            "до встречи",
            "bye",
            "goodbye",
            "good bye",
            "see you",
        ],
        description="the marker ends the call only after the caller said one of these ([] = always)",
    )
    goodbye_text: str | None = Field(
        None,
        description="said, and the call ended, when the caller says one of goodbye_words and "
        "asks nothing more (None: the LLM answers a goodbye)",
    )
    first_clause_min_chars: int = Field(
        8, ge=0, description="old name of chunking.first_clause_min_chars (used when set)"
    )
    max_call_s: PositiveFloat = 600.0
    max_call_text: str = "Время разговора истекло. Спасибо за звонок, до свидания!"
    history_turns: int = Field(20, ge=0, description="dialog turns sent to the LLM")
    logs_dir: str = "logs"
    dtmf: dict[str, DtmfAction] = Field(
        default_factory=dict,
        description='key -> "repeat" | "hangup" | "transfer" | {"transfer": target}',
    )
    dtmf_inter_digit_ms: int = Field(
        1500, ge=100, le=10000, description="other keys go to the LLM after this pause"
    )
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    admission: AdmissionSettings = Field(
        default_factory=AdmissionSettings,
        description="max_calls, max_queue_wait_ms, busy_phrase/busy_wav, filler_after_ms",
    )
    sip: SipSettings | None = Field(None, description="the embedded SIP endpoint; absent = no SIP")
    audiosocket: AudioSocketSettings | None = Field(
        None, description="Asterisk AudioSocket over TCP on its own port; absent = none"
    )
    asterisk_ws: AsteriskWsSettings = Field(
        default_factory=AsteriskWsSettings,
        description="Asterisk chan_websocket on the robot's port (path /asterisk)",
    )
    audio_stream: AudioStreamSettings = Field(
        default_factory=AudioStreamSettings,
        description="FreeSWITCH mod_audio_stream on the robot's port (path /audio_stream) + ESL",
    )
    twilio: TwilioSettings = Field(
        default_factory=TwilioSettings,
        description="Twilio-style Media Streams on the robot's port (path /twilio)",
    )
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    tools: ToolList = Field(
        default_factory=list,
        description="actions the LLM may take: HTTP webhooks and the builtins transfer, end_call",
    )
    form: FormSettings | None = Field(
        None, description="fields to collect for a webhook tool (a booking), asked one by one"
    )
    tool_filler_text: str = Field(
        "Минутку, проверяю…", description="said while a webhook runs (a tool may have its own)"
    )
    tool_failed_text: str = Field(
        "Извините, сейчас не получается это сделать. Могу соединить вас с администратором.",
        description="said when a tool fails or times out",
    )
    timezone: str | None = Field(
        None, description="IANA zone the robot's dates are in (forms: 'завтра'); host's when unset"
    )
    reports: ReportsSettings = Field(default_factory=ReportsSettings)
    recording: RecordingSettings = Field(
        default_factory=RecordingSettings,
        description="call recordings: {enabled, dir, retention_days, format: wav|flac}",
    )
    privacy: PrivacySettings = Field(
        default_factory=PrivacySettings,
        description="personal data: {mask_caller_in_logs, retention_days} of the call records",
    )

    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"{value!r} is not a known time zone (an IANA name like 'Europe/Moscow')"
                ) from None
        return value

    def chunking_settings(self) -> ChunkingSettings:
        """`chunking`, with the older top-level `first_clause_min_chars` when a robot sets it."""
        if "first_clause_min_chars" in self.model_fields_set:
            return self.chunking.model_copy(
                update={"first_clause_min_chars": self.first_clause_min_chars}
            )
        return self.chunking

    @field_validator("dtmf", mode="before")
    @classmethod
    def _parse_dtmf(cls, value: Any) -> Any:
        return parse_dtmf(value)

    @model_validator(mode="after")
    def _references_hold(self) -> RobotConfig:
        reference_problems(self)  # raises ValidationError naming the section
        return self

    @model_validator(mode="after")
    def _transfer_keys_have_a_target(self) -> RobotConfig:
        if self.transfer.target is not None:
            return self
        needs = '{"transfer": "<extension or SIP URI>"}, or "transfer" with transfer.target set'
        problems = [
            _dtmf_problem(key, needs, "transfer", loc=("dtmf", key))
            for key, action in self.dtmf.items()
            if isinstance(action, TransferAction) and action.transfer is None
        ]
        if problems:
            raise ValidationError.from_exception_data("dtmf", problems)
        return self


def load_config(robot_dir: Path, env: Mapping[str, str]) -> RobotConfig:
    """Validates config.json over env overrides; raises RobotError listing every problem."""
    config_path = robot_dir / "config.json"
    data = deep_merge(env_overrides(env), read_config_json(config_path))
    try:
        return RobotConfig.model_validate(data)
    except ValidationError as exc:
        lines = describe_errors(exc, model=RobotConfig)
        raise RobotError([f"{config_path}: {line}" for line in lines]) from None
