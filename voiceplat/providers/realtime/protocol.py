"""The OpenAI Realtime protocol (GA event names; Yandex speaks it too), sans-I/O: audio formats
and the client events, built as plain dicts.

Server events, parsed into small typed events so the session never digs in JSON, are in
`server_events.py`; the arithmetic that ties the server's audio timelines to the call's, in
`timelines.py`.

Both the GA names and the older beta names are accepted from servers (`response.output_audio.delta`
and `response.audio.delta`, `audio.output.format` and `output_audio_format`): providers that copy
the protocol lag behind it by different amounts.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode

FormatType = Literal["audio/pcm", "audio/pcmu"]
Modality = Literal["text", "audio"]
G711_RATE = 8000
MAX_RATE = 384_000
"""The highest PCM rate a server may announce (soxr's and any sound card's range)."""


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
            # (a JSON true is an int to isinstance; a rate past MAX_RATE no resampler takes)
            usable = type(rate) is int and 0 < rate <= MAX_RATE
            return cls("audio/pcm", rate if usable else 24000)
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
