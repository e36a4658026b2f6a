"""Twilio's side of a bidirectional Media Stream (<Connect><Stream>): `twilio+ws://host:port/twilio`.

Sends what Twilio sends (`connected`, `start`, 20 ms `media` of base64 mu-law, `dtmf`, `stop`,
and `mark` answers once the robot's audio before a mark has played or a `clear` dropped it), and
reads the robot's `media`, `mark` and `clear`. Anything else from the robot is what Twilio
answers with error 31924: reported as a warning, the call goes on. The robot hangs up by closing
the socket (Twilio then goes on with the TwiML after <Connect>).

Auth, from the URL's query (removed before connecting, as a <Stream> url has no query):
`?token=T` is sent as the start message's `customParameters.token`, `?bearer=T` as an
`Authorization: Bearer` header, and `?auth_token=A` signs the handshake with `X-Twilio-Signature`
the way Twilio does for the URL wss://host:port/path (`?signed_url=` overrides that URL).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.simulator.peer_playout import MarkRules
from voiceplat.simulator.peers.base import (
    CallInfo,
    PeerEvent,
    PeerWarning,
    RobotAudio,
    RobotClear,
    RobotMark,
    Wire,
)
from voiceplat.simulator.peers.transports import WebSocketTransport
from voiceplat.telephony.ingress.twilio.auth import SIGNATURE_HEADER, signature

FRAME_MS = 20


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class TwilioPeer:
    """Twilio's messages for one stream, sans-I/O (see `peers/base.PeerCodec`)."""

    marks: MarkRules = "ideal"
    prebuffer = False

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.stream_sid = _sid("MZ")
        self.account_sid = _sid("AC")
        self.call_sid = ""
        self._sequence = 0
        self._chunk = 0

    def _message(self, event: str, **fields: Any) -> str:
        self._sequence += 1
        body = {"event": event, "sequenceNumber": str(self._sequence), **fields}
        return json.dumps({**body, "streamSid": self.stream_sid})

    def start(self, call: CallInfo) -> list[Wire]:
        self.call_sid = call.call_id
        params: dict[str, str] = {"from": call.caller, "to": call.callee}
        if self.token is not None:
            params["token"] = self.token
        connected = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": params,
        }
        return [connected, self._message("start", start=start)]

    def caller_audio(self, frame: bytes) -> list[Wire]:
        self._chunk += 1
        media = {
            "track": "inbound",
            "chunk": str(self._chunk),
            "timestamp": str((self._chunk - 1) * FRAME_MS),
            "payload": base64.b64encode(ulaw_encode(frame)).decode(),
        }
        return [self._message("media", media=media)]

    def dtmf(self, digits: str) -> list[Wire]:
        return [self._message("dtmf", dtmf={"track": "inbound_track", "digit": d}) for d in digits]

    def hangup(self) -> list[Wire]:
        stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
        return [self._message("stop", stop=stop)]

    def mark_answer(self, name: str, event: str) -> list[Wire]:
        return [self._message("mark", mark={"name": name})]  # played or cleared: the same

    def receive(self, data: Wire) -> list[PeerEvent]:
        if isinstance(data, bytes):
            return [PeerWarning("the robot sent a BINARY frame (Media Streams is JSON text)")]
        try:
            message = json.loads(data)
        except ValueError:
            return [PeerWarning(f"the robot sent a message that is not JSON: {data[:80]!r}")]
        if not isinstance(message, dict):
            return [PeerWarning(f"the robot sent a message that is not an object: {data[:80]!r}")]
        event = message.get("event")
        if message.get("streamSid") != self.stream_sid:
            return [PeerWarning(f"{event} for stream {message.get('streamSid')!r}, not ours")]
        body = message.get(event) if isinstance(event, str) else None
        if event == "media" and isinstance(body, dict) and isinstance(body.get("payload"), str):
            try:
                return [RobotAudio(ulaw_decode(base64.b64decode(body["payload"], validate=True)))]
            except (binascii.Error, ValueError):
                return [PeerWarning("media.payload from the robot is not base64")]
        if event == "mark" and isinstance(body, dict) and isinstance(body.get("name"), str):
            return [RobotMark(body["name"])]
        if event == "clear":
            return [RobotClear("clear")]
        return [PeerWarning(f"the robot sent an unsupported message: {data[:80]!r}")]


def make_peer(url: str, call: CallInfo) -> tuple[TwilioPeer, WebSocketTransport]:
    parts = urlsplit(url)
    scheme = "wss" if parts.scheme.lower().endswith("wss") else "ws"
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    ws_url = urlunsplit((scheme, parts.netloc, parts.path or "/", "", ""))
    headers: dict[str, str] = {}
    if "bearer" in query:
        headers["Authorization"] = f"Bearer {query['bearer']}"
    if "auth_token" in query:
        signed = query.get("signed_url") or urlunsplit(("wss", parts.netloc, parts.path, "", ""))
        headers[SIGNATURE_HEADER] = signature(query["auth_token"], signed)
    return TwilioPeer(query.get("token")), WebSocketTransport(ws_url, headers=headers)
