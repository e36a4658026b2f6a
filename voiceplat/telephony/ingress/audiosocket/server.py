"""The robot's AudioSocket listener: one TCP connection per call, from Asterisk.

How a call reaches the robot (extensions.conf; the robot listens on `audiosocket.port`):

    exten => 700,1,Answer()
     same => n,Set(AS_ID=${UUID()})
     same => n,Set(AS_OK=${CURL(http://robot:5270/calls/${AS_ID}?caller=${URIENCODE(${CALLERID(num)})}&callee=${EXTEN})})
     same => n,AudioSocket(${AS_ID},robot:5270)
     same => n,Hangup()

AudioSocket itself carries only a UUID, so caller and callee come from a lookup: the dialplan
registers them for the UUID with one HTTP GET to the same port just before AudioSocket()
(`CURL()`, func_curl), and the call's metadata takes them (the UUID is the call id either way).
Without that line the call works with caller and callee unknown. A registration waits
`lookup_ttl_s` for its call and is used once. The port tells the two apart by the first byte:
"G" (0x47) is no AudioSocket frame kind. `Dial(AudioSocket/robot:5270/${AS_ID}/c(slin))` works
the same way (the channel driver; 8 kHz slin only).

AudioSocket has no authentication: only addresses in `allow_from` may connect (private networks
by default); others are closed at once and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from voiceplat.robot import Robot
from voiceplat.sessions.base import Session
from voiceplat.storage.recorder import Recorder
from voiceplat.telephony.admission import ADMITTED, Decision, admission_for
from voiceplat.telephony.busy import refuse_call
from voiceplat.telephony.channel import CallChannel
from voiceplat.telephony.events import CallMetadata
from voiceplat.telephony.ingress.audiosocket.channel import AudioSocketChannel
from voiceplat.telephony.ingress.audiosocket.codec import HANGUP_FRAME, audio_frame
from voiceplat.telephony.ingress.audiosocket.settings import AudioSocketSettings

log = logging.getLogger(__name__)

WRITE_BUFFER_LIMIT = 16 * 1024
MAX_REQUEST = 4096
MAX_VALUE = 64
FIRST_DATA_TIMEOUT_S = 10.0
"""Asterisk sends the UUID frame at once: a connection silent this long is closed."""
SOURCE = "asterisk"
SessionFactory = Callable[[Robot, CallChannel, Recorder], Session]


class CallDirectory:
    """Caller/callee registered by the dialplan for a UUID, waiting for that call."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, dict[str, str]]] = {}

    def register(self, call_id: str, values: dict[str, str]) -> None:
        now = self._clock()
        self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        self._entries[call_id] = (now + self.ttl_s, values)

    def metadata(self, call_id: str, peer: str) -> CallMetadata:
        expires, values = self._entries.pop(call_id, (0.0, {}))
        if expires <= self._clock():
            values = {}
        return CallMetadata(
            call_id=call_id,
            caller=values.get("caller") or None,
            callee=values.get("callee") or None,
            source=SOURCE,
            extra={"peer": peer, "registered": bool(values)},
        )


def registration(request: bytes) -> tuple[int, str, tuple[str, dict[str, str]] | None]:
    """Parses `GET /calls/<uuid>?caller=...&callee=... HTTP/1.x`: (status, text, what)."""
    line = request.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/1."):
        return 400, "expected GET /calls/<uuid>?caller=...&callee=...", None
    url = urlsplit(parts[1])
    segments = url.path.strip("/").split("/")
    if len(segments) != 2 or segments[0] != "calls":
        return 404, "the only path here is /calls/<uuid>", None
    try:
        call_id = str(uuid.UUID(segments[1]))
    except ValueError:
        return 400, f"not a UUID: {segments[1][:40]!r}", None
    query = parse_qs(url.query)
    values = {k: query[k][0] for k in ("caller", "callee") if query.get(k)}
    if any(len(v) > MAX_VALUE for v in values.values()):
        return 400, f"caller and callee hold at most {MAX_VALUE} characters", None
    return 200, "registered", (call_id, values)


class AudioSocketConnection(asyncio.Protocol):
    """One TCP connection: an AudioSocket call, or a dialplan's registration (HTTP GET)."""

    def __init__(self, server: AudioSocketServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.channel: AudioSocketChannel | None = None
        self.peer = "?"
        self._http: bytearray | None = None
        self._silent: asyncio.TimerHandle | None = None
        self._closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port, *_ = transport.get_extra_info("peername") or ("?", 0)
        self.peer = f"{host}:{port}"
        if not self.server.allowed(host):
            log.warning("audiosocket: refused %s (not in audiosocket.allow_from)", self.peer)
            transport.close()  # a FIN, not a reset: Asterisk logs a plain failure
            return
        loop = asyncio.get_running_loop()
        self._silent = loop.call_later(self.server.first_data_timeout_s, self._no_data)

    def _no_data(self) -> None:
        log.warning("audiosocket: %s sent nothing; closed", self.peer)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._silent is not None:
            self._silent.cancel()
            self._silent = None
        if self.channel is None and self._http is None:
            if data[:1] == b"G":
                self._http = bytearray()
            else:
                self.channel = self.server.start_call(self)
        if self._http is not None:
            self._on_http(data)
        elif self.channel is not None:
            self.channel.on_data(data)

    def eof_received(self) -> bool | None:
        if self.channel is not None:
            self.channel.on_eof()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._silent is not None:
            self._silent.cancel()
        if self.channel is not None:
            self.channel.on_lost(exc)
        if not self._closed.done():
            self._closed.set_result(None)

    def _on_http(self, data: bytes) -> None:
        assert self._http is not None and self.transport is not None
        self._http += data
        if b"\r\n\r\n" not in self._http and len(self._http) < MAX_REQUEST:
            return
        status, text, what = registration(bytes(self._http))
        if what is not None:
            self.server.directory.register(*what)
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
        body = (text + "\n").encode()
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        self.transport.write(head.encode() + body)
        self.transport.close()
        self._http = bytearray()  # anything more is ignored

    # -- what the channel uses ---------------------------------------------------------------
    def attach(self, receiver: Any) -> None:
        pass  # the channel is fed by data_received

    def send_now(self, message: str | bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing() or isinstance(message, str):
            return False
        transport.write(audio_frame(message))
        return True

    def send_hangup(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(HANGUP_FRAME)

    def write_ready(self) -> bool:
        return (
            self.transport is not None
            and self.transport.get_write_buffer_size() < WRITE_BUFFER_LIMIT
        )

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.transport is not None:
            self.transport.close()  # written data is flushed first
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.shield(self._closed)
        if not self._closed.done() and self.transport is not None:
            self.transport.abort()


class AudioSocketServer:
    """Listens for Asterisk; each AudioSocket connection runs one call's session."""

    def __init__(
        self,
        robot: Robot,
        recorder: Recorder,
        settings: AudioSocketSettings,
        session_cls: SessionFactory | None = None,
    ) -> None:
        from voiceplat.telephony.server import session_class

        self.robot = robot
        self.recorder = recorder
        self.settings = settings
        self.session_cls = session_cls or session_class(robot.config.mode)
        self.directory = CallDirectory(settings.lookup_ttl_s)
        self.networks = settings.networks()
        self.calls: set[asyncio.Task[None]] = set()
        self.first_data_timeout_s = FIRST_DATA_TIMEOUT_S
        self._server: asyncio.Server | None = None
        admission_for(robot)  # the process's admission control exists from the start (SIP's too)

    def allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    async def start(self, host: str | None = None, port: int | None = None) -> str:
        """Listens; returns "host:port". Raises OSError when the port cannot be had."""
        loop = asyncio.get_running_loop()
        host = self.settings.host if host is None else host
        port = self.settings.port if port is None else port
        self._server = await loop.create_server(
            lambda: AudioSocketConnection(self), host, port, reuse_address=True
        )
        return f"{host}:{self.port}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def start_call(self, connection: AudioSocketConnection) -> AudioSocketChannel:
        peer = connection.peer
        channel = AudioSocketChannel(
            connection,
            lambda call_id: self.directory.metadata(call_id, peer),
            lead_ms=self.settings.lead_ms,
        )
        # Admission decides in the reader callback: two connections cannot both take the
        # last place.
        decision = admission_for(self.robot).admit()
        task = asyncio.get_running_loop().create_task(self._run_call(channel, decision))
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)
        return channel

    async def _run_call(self, channel: AudioSocketChannel, decision: Decision = ADMITTED) -> None:
        admission, reserved = admission_for(self.robot), decision.admitted
        try:
            if not decision.admitted:
                # AudioSocket's only way to say no: the hangup frame (after the busy phrase).
                await refuse_call(self.robot, channel, self.recorder, decision, SOURCE)
                await channel.disconnect()
                return
            reserved = False
            admission.starting()  # the session counts itself from its first step on
            await self.session_cls(self.robot, channel, self.recorder).run()
        except Exception:  # Session.run() never raises; this is a bug, kept to this call
            log.exception("audiosocket call failed")
        finally:
            if reserved:  # ended before its session started
                admission.abandon()
            await channel.close()

    async def shutdown(self, grace_s: float = 30.0) -> None:
        """Stops listening, lets live calls finish up to grace_s, then ends the rest."""
        if self._server is not None:
            self._server.close()
        if self.calls:
            _, pending = await asyncio.wait(set(self.calls), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
