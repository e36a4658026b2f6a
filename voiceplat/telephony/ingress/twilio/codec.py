"""Twilio Media Streams, sans-I/O: JSON TEXT messages in, events out; outbound messages built here.

The protocol (https://www.twilio.com/docs/voice/media-streams/websocket-messages, the shapes kept in
tests/fixtures/twilio/): every message is a JSON object in a TEXT frame with an `event` name.

- Twilio -> robot: `connected` (first; protocol "Call"), `start` (once: `start.callSid`,
  `start.streamSid`, `start.accountSid`, `start.tracks`, `start.mediaFormat` audio/x-mulaw 8000 Hz
  mono, `start.customParameters` from the TwiML's <Parameter>s), `media` (`media.payload`: base64
  mu-law, 20 ms a message; `media.track` "inbound" for the caller), `dtmf` (`dtmf.digit`), `mark`
  (`mark.name`: the audio sent before that mark has played, or a `clear` dropped it), `stop` (last).
- robot -> Twilio (bidirectional <Connect><Stream> only): `media` (base64 mu-law 8 kHz, no file
  header), `mark`, `clear` (drops the audio Twilio has buffered; Twilio then answers the marks it
  held). Each carries the `streamSid`.

The start message carries no caller or callee: the TwiML passes them as custom parameters
`from` / `to` (e.g. <Parameter name="from" value="{{From}}"/>); other custom parameters go to the
call's metadata `extra`. Messages of an event we do not know are ignored (Twilio may add events);
what cannot be a Media Streams message (not JSON, no event, media before start, bad base64, a
BINARY frame) is a protocol error.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.config import DTMF_KEYS
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn, MarkReply

MAX_ID = 128
MAX_MARK_NAME = 256
ENCODING = "audio/x-mulaw"

Event = CallMetadata | AudioIn | DtmfIn | MarkReply | Hangup


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CallProtocolError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _text(value: Any, what: str, limit: int = MAX_ID) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise CallProtocolError(f"{what} must be a non-empty string of at most {limit} chars")
    return value


def parse_start(data: dict[str, Any]) -> CallMetadata:
    start = _object(data.get("start"), "start.start")
    call_sid = _text(start.get("callSid"), "start.callSid")
    stream_sid = _text(start.get("streamSid") or data.get("streamSid"), "start.streamSid")
    media_format = start.get("mediaFormat")
    if media_format is not None:
        media_format = _object(media_format, "start.mediaFormat")
        encoding, rate = media_format.get("encoding"), media_format.get("sampleRate")
        if encoding not in (None, ENCODING) or rate not in (None, 8000):
            raise CallProtocolError(f"unsupported media format {encoding!r} at {rate!r} Hz")
    params = _object(start.get("customParameters") or {}, "start.customParameters")
    extra = {k: v for k, v in params.items() if k not in ("from", "to", "token")}
    caller, callee = params.get("from"), params.get("to")
    extra["stream_sid"] = stream_sid
    if isinstance(start.get("accountSid"), str):
        extra["account_sid"] = start["accountSid"]
    return CallMetadata(
        call_id=call_sid,
        caller=str(caller)[:MAX_ID] if caller else None,
        callee=str(callee)[:MAX_ID] if callee else None,
        source="twilio",
        extra=extra,
    )


class TwilioDecoder:
    """Decodes what Twilio sends, in order. Raises CallProtocolError on a broken stream."""

    def __init__(self) -> None:
        self.metadata: CallMetadata | None = None
        self.custom_parameters: dict[str, Any] = {}
        self.unknown_events = 0

    def binary(self, message: bytes) -> list[Event]:
        raise CallProtocolError("Media Streams sends JSON TEXT messages only, got a BINARY one")

    def text(self, message: str) -> list[Event]:
        try:
            data = json.loads(message)
        # RecursionError: JSON nested deeper than the stack (a peer can send "[" * 10**5).
        except (ValueError, RecursionError):
            raise CallProtocolError(f"message is not JSON: {message[:80]!r}") from None
        data = _object(data, "a message")
        event = data.get("event")
        if not isinstance(event, str):
            raise CallProtocolError(f"message without an event name: {message[:80]!r}")
        if event == "connected":
            return []
        if event == "start":
            if self.metadata is not None:
                return []  # sent once; a repeat changes nothing
            self.metadata = parse_start(data)
            self.custom_parameters = dict(data["start"].get("customParameters") or {})
            return [self.metadata]
        if event == "stop":
            return [Hangup("caller_hangup")]
        if self.metadata is None and event in ("media", "dtmf", "mark"):
            raise CallProtocolError(f"{event} arrived before the start message")
        if event == "media":
            return self._media(_object(data.get("media"), "media.media"))
        if event == "dtmf":
            digit = _object(data.get("dtmf"), "dtmf.dtmf").get("digit")
            if not isinstance(digit, str) or len(digit) != 1 or digit not in DTMF_KEYS:
                raise CallProtocolError(f"dtmf digit must be one of {DTMF_KEYS}, got {digit!r}")
            return [DtmfIn(digit, "other")]
        if event == "mark":
            name = _text(_object(data.get("mark"), "mark.mark").get("name"), "mark.name", 256)
            return [MarkReply(name, "playout")]  # the channel knows whether a clear dropped it
        self.unknown_events += 1
        return []

    def _media(self, media: dict[str, Any]) -> list[Event]:
        if media.get("track", "inbound") not in ("inbound", "inbound_track"):
            return []  # the robot's own audio echoed (<Start><Stream track="both_tracks">)
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise CallProtocolError("media.payload must be a base64 string")
        try:
            ulaw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise CallProtocolError("media.payload is not valid base64") from None
        return [AudioIn(ulaw_decode(ulaw))] if ulaw else []


def media(stream_sid: str, pcm8k: bytes) -> str:
    """Robot audio (8 kHz s16le) as an outbound media message."""
    payload = base64.b64encode(ulaw_encode(pcm8k)).decode()
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})
