"""FreeSWITCH with mod_audio_stream, played for the robot: `audio_stream+ws://host:port/audio_stream`.

Two sockets make one call, as with a real FreeSWITCH: the module's WebSocket to the robot (the
metadata TEXT with the channel's `uuid`, then 20 ms BINARY L16 8 kHz frames; the robot's
`streamAudio` TEXT is "written to a file" and announced as `mod_audio_stream::play`), and an event
socket the robot connects to (`esl_server.EslServer` on `?esl=host:port`, default 127.0.0.1:8021,
password `?esl_password=`, default ClueCon; one server per address, shared by the calls of this
process). The robot's `uuid_broadcast` plays a file (its audio is what the caller hears),
`uuid_break` flushes, `uuid_kill` hangs up, `uuid_transfer` transfers; DTMF and the caller's
hangup go to the robot as `DTMF` / `CHANNEL_HANGUP` events. `?bearer=T` sends
`Authorization: Bearer T` (what STREAM_EXTRA_HEADERS would). The query is removed before
connecting.

Sans-I/O still: the codec's event-socket side travels as `EslFire` (an event to send) and
`EslCommand` (an api command the robot sent) wires, which `AudioStreamTransport` moves.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from voiceplat.simulator.peer_playout import MarkRules
from voiceplat.simulator.peers.base import (
    CallInfo,
    PeerEvent,
    PeerSend,
    PeerWarning,
    RobotAudio,
    RobotClear,
    RobotEvent,
    RobotHangup,
    RobotTransfer,
    Wire,
)
from voiceplat.simulator.peers.esl_server import EslServer
from voiceplat.simulator.peers.transports import TransportError, WebSocketTransport
from voiceplat.telephony.ingress.audio_stream.codec import PLAY_EVENT

DEFAULT_ESL = ("127.0.0.1", 8021)
DEFAULT_PASSWORD = "ClueCon"


class EslFire(str):
    """A wire for the event socket: JSON {"headers": {...}, "body": "..."} of an event to fire."""


class EslCommand(str):
    """What the robot asked over the event socket: an `api` command line."""


def _fire(headers: dict[str, str], body: str = "") -> EslFire:
    return EslFire(json.dumps({"headers": headers, "body": body}))


class AudioStreamPeer:
    """mod_audio_stream plus FreeSWITCH's event side for one channel (see `peers/base`)."""

    marks: MarkRules = "none"  # the module answers no marks
    prebuffer = False

    def __init__(self) -> None:
        self.uuid = ""
        self.files: dict[str, bytes] = {}
        self._next_file = 0

    def _event(self, name: str, **headers: str) -> dict[str, str]:
        return {"Event-Name": name, "Unique-ID": self.uuid, **headers}

    def start(self, call: CallInfo) -> list[Wire]:
        self.uuid = call.call_id
        meta = {**call.metadata, "uuid": call.call_id, "from": call.caller, "to": call.callee}
        meta.pop("callId", None)
        return [json.dumps(meta)]

    def caller_audio(self, frame: bytes) -> list[Wire]:
        return [frame]

    def dtmf(self, digits: str) -> list[Wire]:
        return [
            _fire(self._event("DTMF", **{"DTMF-Digit": d, "DTMF-Source": "RTP"})) for d in digits
        ]

    def hangup(self) -> list[Wire]:
        return [_fire(self._event("CHANNEL_HANGUP", **{"Hangup-Cause": "NORMAL_CLEARING"}))]

    def mark_answer(self, name: str, event: str) -> list[Wire]:
        return []

    def receive(self, data: Wire) -> list[PeerEvent]:
        if isinstance(data, EslCommand):
            return self._command(data)
        if isinstance(data, bytes):
            return [
                PeerWarning("the robot sent a BINARY frame (mod_audio_stream plays streamAudio)")
            ]
        try:
            message: Any = json.loads(data)
        except ValueError:
            return [PeerWarning(f"the robot sent a message that is not JSON: {data[:80]!r}")]
        body = message.get("data") if isinstance(message, dict) else None
        if not isinstance(message, dict) or message.get("type") != "streamAudio":
            # The module fires mod_audio_stream::json with it: nobody plays it.
            return [RobotEvent("mod_audio_stream::json", str(data)[:200])]
        if not isinstance(body, dict) or not isinstance(body.get("audioData"), str):
            return [PeerWarning("streamAudio missing 'audioData' field")]
        if body.get("audioDataType") != "raw" or body.get("sampleRate") != 8000:
            return [PeerWarning(f"streamAudio other than raw 8000: {str(body)[:80]}")]
        try:
            pcm = base64.b64decode(body["audioData"], validate=True)
        except (binascii.Error, ValueError):
            return [PeerWarning("streamAudio audioData is not base64")]
        path = f"/tmp/{self.uuid}_{self._next_file}.tmp.r8"
        self._next_file += 1
        self.files[path] = pcm
        played = {"audioDataType": "raw", "sampleRate": 8000, "file": path}
        custom = self._event("CUSTOM", **{"Event-Subclass": PLAY_EVENT})
        return [PeerSend(_fire(custom, json.dumps(played)))]

    def _command(self, line: str) -> list[PeerEvent]:
        words = line.split(" ")
        name, args = words[0], words[2:]
        if name == "uuid_broadcast" and args:
            pcm = self.files.pop(args[0], None)
            if pcm is None:
                return [PeerWarning(f"uuid_broadcast of an unknown file {args[0]!r}")]
            return [RobotAudio(pcm)]
        if name == "uuid_break":
            return [RobotClear("uuid_break")]
        if name == "uuid_kill":
            return [RobotHangup("uuid_kill")]
        if name == "uuid_transfer" and args:
            return [RobotTransfer(" ".join(args))]
        return [PeerWarning(f"unexpected event socket command {line[:80]!r}")]


class _SharedEsl:
    """One event socket per address for all the calls of this process, routed by uuid."""

    def __init__(self, password: str) -> None:
        self.server = EslServer(password, api=self.api)
        self.calls: dict[str, AudioStreamTransport] = {}
        self.users = 0
        self.starting: asyncio.Task[int] | None = None

    def api(self, line: str) -> str:
        words = line.split(" ")
        known = ("uuid_broadcast", "uuid_break", "uuid_kill", "uuid_transfer")
        if words[0] not in known:
            return f"-ERR {words[0]} Command not found!\n"
        call = self.calls.get(words[1]) if len(words) > 1 else None
        if call is None:
            return "-ERR No such channel!\n"
        call.queue.put_nowait(EslCommand(line))
        return "+OK\n"


_servers: dict[tuple[str, int], _SharedEsl] = {}


class AudioStreamTransport:
    """The module's WebSocket plus this call's share of the event socket."""

    def __init__(
        self, ws: WebSocketTransport, esl: tuple[str, int], password: str, uuid: str
    ) -> None:
        self.ws = ws
        self.esl_address = esl
        self.password = password
        self.uuid = uuid
        self.queue: asyncio.Queue[Wire | Exception | None] = asyncio.Queue()
        self._shared: _SharedEsl | None = None
        self._pump: asyncio.Task[None] | None = None

    async def open(self) -> None:
        shared = _servers.get(self.esl_address)
        if shared is None:  # registered before any await: the next call shares it
            shared = _servers[self.esl_address] = _SharedEsl(self.password)
            shared.starting = asyncio.ensure_future(shared.server.start(*self.esl_address))
        shared.users += 1
        self._shared = shared
        shared.calls[self.uuid] = self
        assert shared.starting is not None
        try:
            await asyncio.shield(shared.starting)
        except OSError as exc:
            await self.close()
            raise OSError(
                f"cannot listen for the event socket on {self.esl_address}: {exc}"
            ) from None
        try:
            await self.ws.open()
        except BaseException:
            await self.close()
            raise
        self._pump = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while (message := await self.ws.receive()) is not None:
                self.queue.put_nowait(message)
        except TransportError as exc:
            self.queue.put_nowait(exc)
        self.queue.put_nowait(None)

    def send(self, data: Wire, *, audio: bool = False) -> bool:
        if isinstance(data, EslFire):
            if self._shared is None:
                return False
            event = json.loads(data)
            self._shared.server.fire(event["headers"], event["body"])
            return True
        return self.ws.send(data, audio=audio)

    async def receive(self) -> Wire | None:
        item = await self.queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def close(self) -> None:
        if self.ws.ws is not None:
            await self.ws.close()
        if self._pump is not None:
            self._pump.cancel()
        shared, self._shared = self._shared, None
        if shared is None:
            return
        shared.calls.pop(self.uuid, None)
        shared.users -= 1
        if shared.users == 0 and _servers.get(self.esl_address) is shared:
            del _servers[self.esl_address]
            await shared.server.stop()


def make_peer(url: str, call: CallInfo) -> tuple[AudioStreamPeer, AudioStreamTransport]:
    # (urlsplit takes no "_" in a scheme: parse the URL as the ws:// one it stands for)
    given, _, rest = url.partition("://")
    scheme = "wss" if given.lower().endswith("wss") else "ws"
    parts = urlsplit(f"{scheme}://{rest}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    ws_url = urlunsplit((scheme, parts.netloc, parts.path or "/audio_stream", "", ""))
    headers = {"Authorization": f"Bearer {query['bearer']}"} if "bearer" in query else {}
    host, port = DEFAULT_ESL
    if "esl" in query:
        host, _, port_text = query["esl"].rpartition(":")
        if not host or not port_text.isdigit():
            raise ValueError(f"?esl={query['esl']!r}: expected host:port")
        port = int(port_text)
    password = query.get("esl_password", DEFAULT_PASSWORD)
    transport = AudioStreamTransport(
        WebSocketTransport(ws_url, headers=headers), (host, port), password, call.call_id
    )
    return AudioStreamPeer(), transport
