"""The OpenAI Realtime protocol (GA event names; Yandex speaks it too), sans-I/O.

Client events are built as plain dicts; server events are parsed into small typed events, so the
session never digs in JSON. Also here, the arithmetic that ties the server's audio timelines to the
call's: how much of an output item the caller actually heard (`conversation.item.truncate`), and
when the caller really stopped speaking (`speech_stopped.audio_end_ms` → session clock).

Both the GA names and the older beta names are accepted from servers (`response.output_audio.delta`
and `response.audio.delta`, `audio.output.format` and `output_audio_format`): providers that copy
the protocol lag behind it by different amounts.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode

FormatType = Literal["audio/pcm", "audio/pcmu"]
Modality = Literal["text", "audio"]
G711_RATE = 8000


class RealtimeProtocolError(ValueError):
    """A server message that is not a valid Realtime event."""


# -- audio formats ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A wire audio format: 16-bit PCM at `rate`, or G.711 mu-law (always 8 kHz)."""

    type: FormatType = "audio/pcm"
    rate: int = 24000

    def __post_init__(self) -> None:
        if self.type == "audio/pcmu" and self.rate != G711_RATE:
            object.__setattr__(self, "rate", G711_RATE)

    def to_json(self) -> dict[str, Any]:
        if self.type == "audio/pcm":
            return {"type": self.type, "rate": self.rate}
        return {"type": self.type}

    @classmethod
    def from_json(cls, value: Any) -> AudioFormat | None:
        """GA objects ({"type": "audio/pcm", "rate": 24000}) and beta strings ("pcm16")."""
        if isinstance(value, str):
            value = {"pcm16": {"type": "audio/pcm"}, "g711_ulaw": {"type": "audio/pcmu"}}.get(
                value, {"type": value}
            )
        if not isinstance(value, dict):
            return None
        kind = value.get("type")
        if kind == "audio/pcmu":
            return cls("audio/pcmu", G711_RATE)
        if kind == "audio/pcm":
            rate = value.get("rate", 24000)
            return cls("audio/pcm", rate if isinstance(rate, int) and rate > 0 else 24000)
        return None

    def decode(self, wire: bytes) -> bytes:
        """Wire bytes → int16 LE samples at `rate`."""
        if self.type == "audio/pcmu":
            return ulaw_decode(wire)
        return wire[: len(wire) - len(wire) % 2]

    def encode(self, pcm: bytes) -> bytes:
        """int16 LE samples at `rate` → wire bytes."""
        return ulaw_encode(pcm) if self.type == "audio/pcmu" else pcm

    def wire_ms(self, nbytes: int) -> float:
        """Duration of `nbytes` of wire audio."""
        per_second = G711_RATE if self.type == "audio/pcmu" else self.rate * 2
        return nbytes * 1000.0 / per_second


# -- client events ---------------------------------------------------------------------------
def session_update(session: dict[str, Any]) -> dict[str, Any]:
    return {"type": "session.update", "session": session}


def realtime_session(
    *,
    instructions: str,
    voice: str | None,
    input_format: AudioFormat,
    output_format: AudioFormat,
    turn_detection: dict[str, Any] | None,
    transcription: dict[str, Any] | None,
    output_modalities: Sequence[Modality] = ("audio",),
) -> dict[str, Any]:
    """The GA `session` object: audio formats, server VAD, transcription, voice, instructions,
    and what the model answers with (OpenAI: ["audio"] is audio plus its transcript)."""
    audio_in: dict[str, Any] = {"format": input_format.to_json(), "turn_detection": turn_detection}
    if transcription is not None:
        audio_in["transcription"] = transcription
    audio_out: dict[str, Any] = {"format": output_format.to_json()}
    if voice:
        audio_out["voice"] = voice
    return {
        "type": "realtime",
        "instructions": instructions,
        "output_modalities": list(output_modalities),
        "audio": {"input": audio_in, "output": audio_out},
    }


def input_audio_append(wire: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(wire).decode("ascii")}


def response_create(instructions: str | None = None) -> dict[str, Any]:
    if instructions is None:
        return {"type": "response.create"}
    return {"type": "response.create", "response": {"instructions": instructions}}


def response_cancel(response_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id:
        event["response_id"] = response_id
    return event


def item_truncate(item_id: str, audio_end_ms: int, content_index: int = 0) -> dict[str, Any]:
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": content_index,
        "audio_end_ms": audio_end_ms,
    }


def message_item(role: Literal["user", "assistant"], text: str) -> dict[str, Any]:
    """A text message added to the conversation (replayed history, a locally played greeting)."""
    part = "input_text" if role == "user" else "output_text"
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": role, "content": [{"type": part, "text": text}]},
    }


def say_verbatim(prompt: str, text: str) -> str:
    """Instructions for a response that speaks `text` as written (greeting, goodbye, reprompt)."""
    return (
        f"{prompt}\n\nNow say exactly the following, word for word, in the language it is "
        f"written in, and nothing else:\n{text}"
    )


# -- server events ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SessionInfo:
    """session.created / session.updated: what the server will actually use."""

    updated: bool
    session_id: str | None
    input_format: AudioFormat | None
    output_format: AudioFormat | None


@dataclass(frozen=True, slots=True)
class InputSpeechStarted:
    """input_audio_buffer.speech_started: the service's VAD heard the caller begin (the local
    endpointer's event is turns.endpointer.SpeechStarted)."""

    item_id: str | None
    audio_start_ms: int | None


@dataclass(frozen=True, slots=True)
class InputSpeechStopped:
    """input_audio_buffer.speech_stopped: the service's VAD heard the caller stop."""

    item_id: str | None
    audio_end_ms: int | None


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str | None


@dataclass(frozen=True, slots=True)
class AudioDelta:
    response_id: str | None
    item_id: str | None
    content_index: int
    audio: bytes
    """Wire bytes, in the session's output format."""


@dataclass(frozen=True, slots=True)
class AudioDone:
    response_id: str | None
    item_id: str | None


TextSource = Literal["transcript", "text"]


@dataclass(frozen=True, slots=True)
class RobotTextDelta:
    """Robot speech as text: output_audio_transcript.delta, or output_text.delta (Yandex)."""

    response_id: str | None
    item_id: str | None
    delta: str
    source: TextSource = "transcript"


@dataclass(frozen=True, slots=True)
class RobotTextDone:
    response_id: str | None
    item_id: str | None
    text: str
    source: TextSource = "transcript"


@dataclass(frozen=True, slots=True)
class UserTranscript:
    item_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class UserTranscriptFailed:
    item_id: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str | None
    status: str
    """completed | cancelled | failed | incomplete"""
    error: str | None


@dataclass(frozen=True, slots=True)
class ServerError:
    type: str
    code: str | None
    message: str
    event_id: str | None
    """The client event that caused it, when the server says."""

    @property
    def expired(self) -> bool:
        return self.code == "session_expired" or "maximum duration" in self.message


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """Events the session does not act on (committed, item.created, rate limits…)."""

    type: str
    data: dict[str, Any] = field(default_factory=dict, repr=False)


ServerEvent = (
    SessionInfo
    | InputSpeechStarted
    | InputSpeechStopped
    | ResponseCreated
    | AudioDelta
    | AudioDone
    | RobotTextDelta
    | RobotTextDone
    | UserTranscript
    | UserTranscriptFailed
    | ResponseDone
    | ServerError
    | OtherEvent
)

_AUDIO_DELTA = {"response.output_audio.delta", "response.audio.delta"}
_AUDIO_DONE = {"response.output_audio.done", "response.audio.done"}
_TEXT_DELTA = {
    "response.output_audio_transcript.delta",
    "response.audio_transcript.delta",
    "response.output_text.delta",
    "response.text.delta",
}
_TEXT_DONE = {
    "response.output_audio_transcript.done",
    "response.audio_transcript.done",
    "response.output_text.done",
    "response.text.done",
}


def parse_server_event(message: str | bytes) -> ServerEvent:
    """One server message → a typed event; raises RealtimeProtocolError for garbage."""
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RealtimeProtocolError(f"not JSON: {str(message)[:80]!r}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise RealtimeProtocolError(f"not an event object: {str(message)[:80]!r}")
    kind: str = data["type"]
    if kind in ("session.created", "session.updated"):
        return _session_info(data, updated=kind == "session.updated")
    if kind == "input_audio_buffer.speech_started":
        return InputSpeechStarted(_str(data, "item_id"), _int(data, "audio_start_ms"))
    if kind == "input_audio_buffer.speech_stopped":
        return InputSpeechStopped(_str(data, "item_id"), _int(data, "audio_end_ms"))
    if kind == "response.created":
        return ResponseCreated(_str(_dict(data, "response"), "id"))
    if kind in _AUDIO_DELTA:
        return AudioDelta(
            _str(data, "response_id"),
            _str(data, "item_id"),
            _int(data, "content_index") or 0,
            _b64(data.get("delta")),
        )
    if kind in _AUDIO_DONE:
        return AudioDone(_str(data, "response_id"), _str(data, "item_id"))
    if kind in _TEXT_DELTA:
        delta = _str(data, "delta") or ""
        source: TextSource = "transcript" if "transcript" in kind else "text"
        return RobotTextDelta(_str(data, "response_id"), _str(data, "item_id"), delta, source)
    if kind in _TEXT_DONE:
        source = "transcript" if "transcript" in kind else "text"
        text = _str(data, "transcript") if source == "transcript" else _str(data, "text")
        return RobotTextDone(_str(data, "response_id"), _str(data, "item_id"), text or "", source)
    if kind == "conversation.item.input_audio_transcription.completed":
        return UserTranscript(_str(data, "item_id"), (_str(data, "transcript") or "").strip())
    if kind == "conversation.item.input_audio_transcription.failed":
        error = _dict(data, "error")
        return UserTranscriptFailed(_str(data, "item_id"), _str(error, "message") or "failed")
    if kind == "response.done":
        return _response_done(_dict(data, "response"))
    if kind == "error":
        error = _dict(data, "error")
        return ServerError(
            type=_str(error, "type") or "error",
            code=_str(error, "code"),
            message=_str(error, "message") or json.dumps(error, ensure_ascii=False)[:300],
            event_id=_str(error, "event_id"),
        )
    return OtherEvent(kind, data)


def _session_info(data: dict[str, Any], *, updated: bool) -> SessionInfo:
    session = _dict(data, "session")
    audio = _dict(session, "audio")
    audio_in, audio_out = _dict(audio, "input"), _dict(audio, "output")
    input_format = AudioFormat.from_json(audio_in.get("format", session.get("input_audio_format")))
    output_format = AudioFormat.from_json(
        audio_out.get("format", session.get("output_audio_format"))
    )
    return SessionInfo(updated, _str(session, "id"), input_format, output_format)


def _response_done(response: dict[str, Any]) -> ResponseDone:
    status = _str(response, "status") or "completed"
    details = _dict(response, "status_details")
    error = _dict(details, "error")
    message = _str(error, "message") or _str(error, "code") or _str(details, "reason")
    return ResponseDone(_str(response, "id"), status, message if status == "failed" else None)


def _dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise RealtimeProtocolError("audio delta without a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RealtimeProtocolError("audio delta is not valid base64") from exc


# -- timelines -------------------------------------------------------------------------------
@dataclass(slots=True)
class ItemAudio:
    """One output item's audio, as the server counts it and as the call plays it.

    `start_ms` is the call's outbound stream position (CallChannel.queued_ms) where the item's first
    audio was queued; `received_ms` is how much audio the server has sent for it. Resampling keeps
    durations, so the caller has heard `heard_ms - start_ms` of the item.
    """

    item_id: str
    content_index: int = 0
    start_ms: float | None = None
    received_ms: float = 0.0

    def audio_end_ms(self, heard_ms: float) -> int:
        """`audio_end_ms` for conversation.item.truncate: the played part, never past the end.

        The server rejects a value beyond the audio it sent, so the result is clamped to
        `received_ms`, and rounded down (the caller did not hear the next millisecond).
        """
        if self.start_ms is None:
            return 0
        played = min(self.received_ms, heard_ms - self.start_ms)
        return max(0, int(played))


class InputTimeline:
    """Maps the server's input-buffer times (speech_started/stopped) to the session clock.

    Caller audio is streamed as it arrives, in real time, so the input buffer position p was
    spoken at about the send time of the latest chunk minus (its end − p). Reset per connection:
    each server session's buffer starts at 0.
    """

    def __init__(self) -> None:
        self.sent_ms = 0.0
        self._sent_at: float | None = None

    def reset(self) -> None:
        self.sent_ms = 0.0
        self._sent_at = None

    def on_sent(self, ms: float, now: float) -> None:
        self.sent_ms += ms
        self._sent_at = now

    def clock_at(self, audio_ms: int | None, fallback: float) -> float:
        if audio_ms is None or self._sent_at is None:
            return fallback
        return min(fallback, self._sent_at - (self.sent_ms - audio_ms) / 1000.0)
