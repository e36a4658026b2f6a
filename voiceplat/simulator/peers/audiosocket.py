"""Asterisk's side of AudioSocket: `voiceplat call audiosocket://127.0.0.1:5270 --say a.wav`.

As app_audiosocket does: connect, send the UUID frame (the call id, which must be a UUID), then
one 20 ms slin frame per tick and DTMF frames; play the robot's audio frames as they come (no
buffer, no marks); a hangup frame from the robot ends the call. The caller hangs up by closing
the socket (Asterisk sends no hangup frame). Anything else from the robot is what Asterisk
refuses: reported, and the call ends as Asterisk would end it.

`?register=1` first registers caller/callee for the UUID with the robot's GET /calls/<uuid>, as
the documented dialplan does with CURL() (see telephony/ingress/audiosocket/server.py).
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import parse_qs, quote, urlsplit

from voiceplat.simulator.peer_playout import MarkRules
from voiceplat.simulator.peers.base import (
    CallInfo,
    PeerEvent,
    PeerWarning,
    RobotAudio,
    RobotHangup,
    Wire,
)
from voiceplat.simulator.peers.transports import TcpTransport
from voiceplat.telephony.events import CallProtocolError
from voiceplat.telephony.ingress.audiosocket.codec import (
    KIND_AUDIO,
    KIND_HANGUP,
    FrameReader,
    audio_frame,
    dtmf_frame,
    uuid_frame,
)

DEFAULT_PORT = 5270


class AudioSocketPeer:
    marks: MarkRules = "none"
    prebuffer = False

    def __init__(self) -> None:
        self.reader = FrameReader(max_payload=65535)
        self.broken = False

    def start(self, call: CallInfo) -> list[Wire]:
        return [uuid_frame(uuid.UUID(call.call_id))]

    def caller_audio(self, frame: bytes) -> list[Wire]:
        return [audio_frame(frame)]

    def dtmf(self, digits: str) -> list[Wire]:
        return [dtmf_frame(d) for d in digits]

    def hangup(self) -> list[Wire]:
        return []  # Asterisk just closes the socket

    def mark_answer(self, name: str, event: str) -> list[Wire]:
        return []

    def receive(self, data: Wire) -> list[PeerEvent]:
        if self.broken:
            return []
        assert isinstance(data, bytes)
        try:
            frames = self.reader.feed(data)
        except CallProtocolError as exc:  # cannot happen with 65535, kept for clarity
            return self._broken(str(exc))
        events: list[PeerEvent] = []
        for item in frames:
            if item.kind == KIND_HANGUP:
                events.append(RobotHangup("hangup frame"))
                break
            if item.kind == KIND_AUDIO and item.payload:
                events.append(RobotAudio(item.payload))
                continue
            what = "an empty audio frame" if item.kind == KIND_AUDIO else f"kind 0x{item.kind:02x}"
            events += self._broken(f"the robot sent {what}: Asterisk ends the call")
            break
        return events

    def _broken(self, text: str) -> list[PeerEvent]:
        self.broken = True
        return [PeerWarning(text), RobotHangup("protocol error")]


async def register(host: str, port: int, call: CallInfo, timeout_s: float = 10.0) -> str:
    """The dialplan's CURL(): GET /calls/<uuid>?caller=&callee=; returns the status line."""
    query = f"caller={quote(call.caller)}&callee={quote(call.callee)}"
    request = f"GET /calls/{call.call_id}?{query} HTTP/1.1\r\nHost: {host}\r\n\r\n"
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request.encode())
            answer = await reader.read()
        finally:
            writer.close()
    return answer.split(b"\r\n", 1)[0].decode("latin-1")


class RegisteringTransport(TcpTransport):
    """Registers caller/callee for the call's UUID, then connects as AudioSocket."""

    def __init__(self, host: str, port: int, call: CallInfo) -> None:
        super().__init__(host, port)
        self.call = call

    async def open(self) -> None:
        status = await register(self.host, self.port, self.call)
        if " 200 " not in status + " ":
            raise OSError(f"registering the call was refused: {status}")
        await super().open()


def make_peer(url: str, call: CallInfo) -> tuple[AudioSocketPeer, TcpTransport]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r}: expected audiosocket://host:port")
    try:
        uuid.UUID(call.call_id)
    except ValueError:
        raise ValueError(f"AudioSocket call ids are UUIDs, not {call.call_id!r}") from None
    port = parts.port or DEFAULT_PORT
    if parse_qs(parts.query).get("register", ["0"])[0] not in ("", "0"):
        return AudioSocketPeer(), RegisteringTransport(parts.hostname, port, call)
    return AudioSocketPeer(), TcpTransport(parts.hostname, port)
