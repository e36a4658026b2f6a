"""Asterisk's side of chan_websocket (`Dial(WebSocket/<connection>)`): `asterisk+ws://host:port/asterisk`.

What Asterisk sends (channels/chan_websocket.c): MEDIA_START first, then 20 ms BINARY frames of
the channel's format, DTMF_END per key, and MEDIA_MARK_PROCESSED once the robot's audio before a
MARK_MEDIA has played. FLUSH_MEDIA drops the queue and the marks in it, unanswered. The caller's
hangup is the socket's close (no message). The robot's HANGUP command hangs up; a BINARY frame
that is not a whole number of `optimal_frame_size` frames loses its remainder (reported), and a
command longer than 128 bytes or unknown is ignored by Asterisk (reported).

The URL's query sets the call up as websocket_client.conf and the dial string would:
`format=` slin | slin16 | ulaw (default) | alaw (`c(...)`), `control=` plain-text (default) |
json (`f(json)`), `username=` / `password=` (Basic auth), `protocol=` (default `media`). Every
other parameter, and caller/callee, go on the request URI as `v(...)` puts them.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from voiceplat.simulator.peer_playout import MarkRules
from voiceplat.simulator.peers.base import (
    CallInfo,
    PeerEvent,
    PeerWarning,
    RobotAudio,
    RobotClear,
    RobotEvent,
    RobotHangup,
    RobotMark,
    Wire,
)
from voiceplat.simulator.peers.transports import WebSocketTransport
from voiceplat.telephony.ingress.asterisk_ws.codec import MAX_COMMAND_BYTES, SUBPROTOCOL
from voiceplat.telephony.ingress.asterisk_ws.media import Transcoder, format_named

PTIME_MS = 20
OPTIONS = ("format", "control", "username", "password", "protocol")
QUIET_COMMANDS = frozenset(
    {"ANSWER", "GET_STATUS", "REPORT_QUEUE_DRAINED", "PAUSE_MEDIA", "CONTINUE_MEDIA"}
)


class AsteriskWsPeer:
    """chan_websocket's messages for one call, sans-I/O (see `peers/base.PeerCodec`)."""

    marks: MarkRules = "ideal"
    prebuffer = False

    def __init__(self, format_name: str = "ulaw", *, json_format: bool = False) -> None:
        self.format = format_named(format_name)
        self.json_format = json_format
        self.frame_size = self.format.frame_bytes(PTIME_MS)
        self._transcoder = Transcoder(self.format)  # the caller's audio to the wire
        self._robot = Transcoder(self.format)  # the robot's wire audio to slin 8 kHz
        self.channel_id = ""

    def _event(self, event: str, plain: str, **fields: Any) -> str:
        if self.json_format:
            return json.dumps({"event": event, "channel_id": self.channel_id, **fields})
        return f"{event} {plain}" if plain else event

    def start(self, call: CallInfo) -> list[Wire]:
        self.channel_id = call.call_id
        channel = "WebSocket/voiceplat-00000001"
        fields: dict[str, Any] = {
            "connection_id": "voiceplat",
            "channel": channel,
            "channel_id": call.call_id,
            "format": self.format.name,
            "optimal_frame_size": self.frame_size,
            "ptime": PTIME_MS,
        }
        if self.json_format:
            variables = {"VOICEPLAT_CALLER": call.caller, "VOICEPLAT_CALLEE": call.callee}
            return [json.dumps({"event": "MEDIA_START", **fields, "channel_variables": variables})]
        return ["MEDIA_START " + " ".join(f"{k}:{v}" for k, v in fields.items())]

    def caller_audio(self, frame: bytes) -> list[Wire]:
        return [self._transcoder.encode(frame)]

    def dtmf(self, digits: str) -> list[Wire]:
        return [
            self._event("DTMF_END", f"digit:{d} channel_id:{self.channel_id}", digit=d)
            for d in digits
        ]

    def hangup(self) -> list[Wire]:
        return []  # Asterisk hangs up by closing the socket

    def mark_answer(self, name: str, event: str) -> list[Wire]:
        if event != "playout":
            return []  # FLUSH_MEDIA drops queued marks without an answer
        return [self._event("MEDIA_MARK_PROCESSED", name, correlation_id=name)]

    def receive(self, data: Wire) -> list[PeerEvent]:
        if isinstance(data, bytes):
            return self._audio(data)
        if len(data.encode()) > MAX_COMMAND_BYTES:
            return [PeerWarning(f"a command over {MAX_COMMAND_BYTES} bytes (ignored by Asterisk)")]
        command, argument = self._command(data.strip())
        if command is None:
            return [PeerWarning(f"the robot sent a command Asterisk cannot parse: {data[:80]!r}")]
        if command == "MARK_MEDIA":
            return [RobotMark(argument or "")]
        if command == "FLUSH_MEDIA":
            return [RobotClear("FLUSH_MEDIA")]
        if command == "HANGUP":
            return [RobotHangup("HANGUP")]
        if command in QUIET_COMMANDS:
            return [RobotEvent(command.lower())]
        return [PeerWarning(f"unknown chan_websocket command {command!r} (ignored by Asterisk)")]

    def _command(self, text: str) -> tuple[str | None, str | None]:
        if not self.json_format:
            name, _, rest = text.partition(" ")
            return name, rest or None
        try:
            body = json.loads(text)
        except ValueError:
            return None, None
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            return None, None
        correlation = body.get("correlation_id")
        return body["command"], correlation if isinstance(correlation, str) else None

    def _audio(self, data: bytes) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        whole = len(data) - len(data) % self.frame_size
        if whole != len(data):
            events.append(
                PeerWarning(
                    f"a BINARY frame of {len(data)} bytes is not whole {self.frame_size}-byte "
                    f"frames: Asterisk drops the last {len(data) - whole}"
                )
            )
        if whole:
            events.insert(0, RobotAudio(self._robot.decode(data[:whole])))
        return events


def make_peer(url: str, call: CallInfo) -> tuple[AsteriskWsPeer, WebSocketTransport]:
    parts = urlsplit(url)
    scheme = "wss" if parts.scheme.lower().endswith("wss") else "ws"
    query = parse_qsl(parts.query)
    options = {k: v for k, v in query if k in OPTIONS}
    params = [(k, v) for k, v in query if k not in OPTIONS]
    params += [("caller", call.caller), ("callee", call.callee)]
    ws_url = urlunsplit((scheme, parts.netloc, parts.path or "/", urlencode(params), ""))
    headers: dict[str, str] = {}
    if "username" in options or "password" in options:
        userinfo = f"{options.get('username', '')}:{options.get('password', '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
    control = options.get("control", "plain-text")
    if control not in ("plain-text", "json"):
        raise ValueError(f"{url!r}: control= is plain-text or json, not {control!r}")
    peer = AsteriskWsPeer(options.get("format", "ulaw"), json_format=control == "json")
    protocol = options.get("protocol", SUBPROTOCOL)
    return peer, WebSocketTransport(ws_url, subprotocols=[protocol], headers=headers)
