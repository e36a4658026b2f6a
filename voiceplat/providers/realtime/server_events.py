"""The OpenAI Realtime protocol's server events, sans-I/O: each server message parsed into a small
typed event, so the session never digs in JSON.

Both the GA names and the older beta names are accepted (`response.output_audio.delta` and
`response.audio.delta`, `audio.output.format` and `output_audio_format`): providers that copy the
protocol lag behind it by different amounts.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from voiceplat.providers.realtime.protocol import AudioFormat, RealtimeProtocolError


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
    # RecursionError: JSON nested deeper than the stack (a peer can send "[" * 10**5).
    except (ValueError, RecursionError) as exc:
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
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    # JSON's Infinity and NaN (Python's json reads them) are no count: int() would raise.
    return int(value) if math.isfinite(value) else None


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise RealtimeProtocolError("audio delta without a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RealtimeProtocolError("audio delta is not valid base64") from exc
