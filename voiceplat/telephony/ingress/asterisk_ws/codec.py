"""Asterisk chan_websocket, sans-I/O: the messages Asterisk sends, decoded; the commands it takes.

Read from Asterisk's own source (channels/chan_websocket.c, res/res_websocket_client.c, 2026-08):

- Asterisk is the WebSocket client (`Dial(WebSocket/<connection>/...)`, websocket_client.conf):
  it offers the subprotocols of `protocols =` (the docs' sample: `media`) and sends Basic auth
  from `username` / `password`. `v(a=1,b=2)` in the dial string appends `?a=1&b=2` to the URI.
- First TEXT message: `MEDIA_START` with connection_id, channel, channel_id, format,
  optimal_frame_size, ptime (and, in JSON only, channel_variables). Then BINARY frames of the
  native format both ways; every other control message is TEXT.
- Control format: `plain-text` (the default: `EVENT key:value key:value`, mark ids bare after
  the name) or `json` (`{"event": ...}` in, `{"command": ...}` out), set by chan_websocket.conf or
  `f(json)`. Asterisk parses our commands in its own format, so we answer in the one MEDIA_START
  came in. A command longer than 128 bytes is ignored by Asterisk.
- Events in: MEDIA_START, MEDIA_XOFF / MEDIA_XON (its queue of 1000 frames reached 900 / fell
  below 800), MEDIA_MARK_PROCESSED <id> (the dequeue reached our mark: the audio before it has
  played), DTMF_END (digit; there is no DTMF_BEGIN), QUEUE_DRAINED, MEDIA_BUFFERING_COMPLETED,
  STATUS, ERROR (error_text: the rest of the line). Asterisk's hangup is the socket's close; it
  sends no HANGUP event (HANGUP is a command *to* Asterisk).
- Commands out: MARK_MEDIA <id>, FLUSH_MEDIA (drops the queue, marks included, which are then
  never answered), HANGUP, ANSWER, REPORT_QUEUE_DRAINED, GET_STATUS, START/STOP_MEDIA_BUFFERING,
  PAUSE_MEDIA / CONTINUE_MEDIA. Asterisk cuts our BINARY frames into optimal_frame_size pieces
  and, outside buffering mode, drops a shorter remainder: we send whole frames only.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from voiceplat.config import DTMF_KEYS
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn, MarkReply
from voiceplat.telephony.ingress.asterisk_ws.media import Format, Transcoder, format_named

log = logging.getLogger(__name__)

SUBPROTOCOL = "media"
MAX_CALL_ID = 128
MAX_FIELD = 128
MAX_QUERY_FIELDS = 32
MAX_COMMAND_BYTES = 128
"""chan_websocket.c MAX_TEXT_MESSAGE_LEN: a longer TEXT message is ignored."""
MAX_MARK_ID = 64
MAX_FRAME_SIZE = 16000
"""A sane bound on MEDIA_START's optimal_frame_size (slin16 at 20 ms is 640 bytes)."""
CALLER_VARIABLE = "VOICEPLAT_CALLER"
CALLEE_VARIABLE = "VOICEPLAT_CALLEE"
"""JSON control format only: MEDIA_START carries the WebSocket channel's variables, so the
dialplan sets them inherited on the caller's channel: `Set(__VOICEPLAT_CALLER=...)` before Dial."""

_EVENT_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
IGNORED_EVENTS = frozenset({"QUEUE_DRAINED", "MEDIA_BUFFERING_COMPLETED", "STATUS"})


@dataclass(frozen=True, slots=True)
class MediaStart:
    channel_id: str
    format: Format
    optimal_frame_size: int
    ptime: int
    json_format: bool
    connection_id: str = ""
    channel: str = ""
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlowControl:
    """MEDIA_XOFF (paused) / MEDIA_XON: Asterisk's queue is (no longer) nearly full."""

    paused: bool


@dataclass(frozen=True, slots=True)
class AsteriskError:
    """An ERROR event: Asterisk refused a command (not the end of the call)."""

    text: str


Event = MediaStart | CallMetadata | AudioIn | DtmfIn | MarkReply | FlowControl | AsteriskError


def _parse_plain(message: str) -> tuple[str, str, dict[str, str]]:
    """`EVENT key:value ...` -> (event, rest of the line, fields)."""
    name, _, rest = message.strip().partition(" ")
    fields: dict[str, str] = {}
    if name == "ERROR" and "error_text:" in rest:  # the text may hold spaces and colons
        head, _, fields["error_text"] = rest.partition("error_text:")
        rest = head
    for token in rest.split():
        key, sep, value = token.partition(":")
        if sep:
            fields[key] = value
    return name, rest.strip(), fields


def _parse_json(message: str) -> tuple[str, dict[str, Any]]:
    try:
        data = json.loads(message)
    # RecursionError: JSON nested deeper than the stack (a peer can send "[" * 10**5).
    except (ValueError, RecursionError):
        raise CallProtocolError(f"TEXT message is not JSON: {message[:80]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise CallProtocolError(f'JSON control message without "event": {message[:80]!r}')
    return data["event"], data


def _int_field(fields: dict[str, Any], key: str, low: int, high: int) -> int:
    value = fields.get(key)
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
        raise CallProtocolError(f"MEDIA_START {key} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise CallProtocolError(f"MEDIA_START {key} {number} is out of range {low}..{high}")
    return number


def parse_media_start(message: str) -> MediaStart:
    json_format = message.lstrip().startswith("{")
    if json_format:
        name, fields = _parse_json(message)
    else:
        name, _, fields = _parse_plain(message)
    if name != "MEDIA_START":
        raise CallProtocolError(f"expected MEDIA_START first, got {message[:80]!r}")
    channel_id = str(fields.get("channel_id") or "")
    if not channel_id:
        raise CallProtocolError("MEDIA_START has no channel_id")
    fmt = format_named(str(fields.get("format")))
    frame_size = _int_field(fields, "optimal_frame_size", 1, MAX_FRAME_SIZE)
    if frame_size % fmt.sample_bytes:
        raise CallProtocolError(f"optimal_frame_size {frame_size} splits a {fmt.name} sample")
    variables = fields.get("channel_variables") if json_format else None
    return MediaStart(
        channel_id=channel_id[:MAX_CALL_ID],
        format=fmt,
        optimal_frame_size=frame_size,
        ptime=_int_field(fields, "ptime", 1, 1000) if "ptime" in fields else 20,
        json_format=json_format,
        connection_id=str(fields.get("connection_id") or "")[:MAX_FIELD],
        channel=str(fields.get("channel") or "")[:MAX_FIELD],
        variables={str(k): str(v)[:MAX_FIELD] for k, v in variables.items()}
        if isinstance(variables, dict)
        else {},
    )


def query_params(path: str) -> dict[str, str]:
    """The request URI's query (what `v(...)` in the dial string added): first value each, of
    the first MAX_QUERY_FIELDS. Never raises: the path is whatever the client sent (urlsplit
    refuses "//[x", parse_qs's own field limit raises)."""
    pairs = parse_qsl(path.partition("?")[2].partition("#")[0])[:MAX_QUERY_FIELDS]
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value[:MAX_FIELD])
    return params


def call_metadata(start: MediaStart, params: dict[str, str]) -> CallMetadata:
    """caller/callee: the URI's `caller`/`callee` (v(caller=...,callee=...)), else (JSON format)
    the channel variables VOICEPLAT_CALLER / VOICEPLAT_CALLEE."""
    caller = params.get("caller") or start.variables.get(CALLER_VARIABLE)
    callee = params.get("callee") or start.variables.get(CALLEE_VARIABLE)
    extra: dict[str, Any] = {
        "channel": start.channel,
        "connection_id": start.connection_id,
        "format": start.format.name,
    }
    extra.update({k: v for k, v in params.items() if k not in ("caller", "callee")})
    return CallMetadata(
        call_id=start.channel_id,
        caller=caller or None,
        callee=callee or None,
        source="asterisk",
        extra=extra,
    )


class AsteriskWsDecoder:
    """Decodes what Asterisk sends, in order. Raises CallProtocolError on a broken stream.

    `params`: the request URI's query parameters (caller, callee, anything the dialplan added)."""

    def __init__(self, params: dict[str, str] | None = None) -> None:
        self.params = params or {}
        self.start: MediaStart | None = None
        self.transcoder: Transcoder | None = None
        self._carry = b""
        self._unknown_logged: set[str] = set()

    def text(self, message: str) -> list[Event]:
        if self.start is None:
            self.start = parse_media_start(message)
            self.transcoder = Transcoder(self.start.format)
            return [self.start, call_metadata(self.start, self.params)]
        if self.start.json_format:
            name, fields = _parse_json(message)
            mark_id = str(fields.get("correlation_id") or "")
        else:
            name, mark_id, fields = _parse_plain(message)
            if not _EVENT_NAME.fullmatch(name):
                raise CallProtocolError(f"TEXT message is not a control event: {message[:80]!r}")
        return self._event(name, mark_id, fields)

    def _event(self, name: str, mark_id: str, fields: dict[str, Any]) -> list[Event]:
        if name == "MEDIA_MARK_PROCESSED":
            return [MarkReply(mark_id, "playout")] if mark_id else []
        if name == "DTMF_END":
            digit = fields.get("digit")
            if not isinstance(digit, str) or len(digit) != 1 or digit not in DTMF_KEYS:
                raise CallProtocolError(f"DTMF_END digit must be one of {DTMF_KEYS}, got {digit!r}")
            return [DtmfIn(digit, "other")]
        if name in ("MEDIA_XOFF", "MEDIA_XON"):
            return [FlowControl(paused=name == "MEDIA_XOFF")]
        if name == "ERROR":
            return [AsteriskError(str(fields.get("error_text") or ""))]
        if name == "MEDIA_START":
            return []  # a second one changes nothing
        if name not in IGNORED_EVENTS and name not in self._unknown_logged:
            # A newer Asterisk may send more events: not an error of the call.
            self._unknown_logged.add(name)
            log.info("chan_websocket event %s ignored", name[:64])
        return []

    def binary(self, message: bytes) -> list[Event]:
        if self.start is None or self.transcoder is None:
            raise CallProtocolError("audio arrived before MEDIA_START")
        width = self.start.format.sample_bytes
        data = self._carry + message
        whole = len(data) - len(data) % width
        self._carry = data[whole:]
        if not whole:
            return []
        pcm = self.transcoder.decode(data[:whole])
        return [AudioIn(pcm)] if pcm else []


class AsteriskWsEncoder:
    """The commands we send, in the control format MEDIA_START came in."""

    def __init__(self, json_format: bool) -> None:
        self.json_format = json_format

    def command(self, name: str, correlation_id: str | None = None) -> str:
        if self.json_format:
            body: dict[str, str] = {"command": name}
            if correlation_id is not None:
                body["correlation_id"] = correlation_id
            return json.dumps(body, separators=(",", ":"))
        return name if correlation_id is None else f"{name} {correlation_id}"

    def mark(self, mark_id: str) -> str:
        return self.command("MARK_MEDIA", mark_id)

    def flush(self) -> str:
        return self.command("FLUSH_MEDIA")

    def hangup(self) -> str:
        return self.command("HANGUP")


def mark_id(name: str) -> str:
    """A mark name Asterisk echoes whole: short, no spaces (its commands are at most 128 bytes)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]", "_", name)[:MAX_MARK_ID]
    return cleaned or "mark"
