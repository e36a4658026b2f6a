"""One WebSocket connection from FreeSWITCH: websockets' sans-I/O `ServerProtocol`, driven by our own
`asyncio.Protocol`, handing each inbound message to its call as it is parsed.

websockets parses and frames (`receive_data` → `events_received`, `send_*` → `data_to_send`); this
module owns the socket, the timers and what happens with each message. We do not build on
websockets' asyncio `ServerConnection`: its `recv()` passes every message through a frame queue, a
future and a task wake-up (at 50 caller frames a second per call that chain cost about a fifth of a
busy robot's CPU), and hooking into it meant using its internals, which change between releases.

Inbound, the reader callback (`data_received`) gives each whole message straight to the call's
receiver (its `AudioForkChannel`), so the session's frame handling runs right there, with no task switch.
Outbound, `send_now` writes a message at once, so one shared pacer can send every call's audio from
one timer callback; `write_ready()` says whether the socket's write buffer is below its high-water
mark. Pings are answered (the protocol queues the pong) but never sent (FreeSWITCH does not answer
pings on every version); no compression (audio does not compress, and it would cost CPU per frame).

A request without `Upgrade: websocket` (Prometheus scraping /metrics, a health check) goes to the
optional `http_handler`, whose response is sent before the socket is closed: one request per
connection (`Connection: close`), so the robot's one port serves both.

Only websockets' documented sans-I/O API is used (`ServerProtocol`, `Request`, `Frame`, `close_exc`,
unchanged since 13.0). The floor is 17.0: from it on the protocol answers a non-GET request (405), a
wrong HTTP version (505) or oversized headers (414, 431) with an HTTP error instead of dropping the
socket, and `websockets.frames` has the opcode names imported here.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from websockets.exceptions import ConnectionClosed
from websockets.frames import BINARY, CONT, TEXT, CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING, OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

log = logging.getLogger(__name__)


class _InfoAsDebug(logging.LoggerAdapter):
    """websockets logs each HTTP answer and its close at INFO: a line pair per Prometheus
    scrape. Kept, at DEBUG, for plain HTTP requests only."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)


_HTTP_LOG = _InfoAsDebug(logging.getLogger("websockets.server"), {})

HttpHandler = Callable[[Request, str | None], Response]
"""Answers a plain HTTP request (no WebSocket upgrade): the request and the peer's address."""

Authorize = Callable[[Request, str | None], Response | None]
"""Checks a WebSocket handshake's credentials (the request and the peer's address): the refusal
to send (a 401), or None to go on with the handshake."""


class Receiver(Protocol):
    def on_message(self, message: str | bytes) -> None:
        """One whole message, in order. Must not raise: it runs in the connection's reader."""

    def on_closed(self, exc: ConnectionClosed) -> None:
        """The connection is closed; no message follows."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    subprotocols: tuple[str, ...]
    """The first of these the peer offers is selected (each ingress has its own: mod_audio_fork's
    `audio.drachtio.org`, ...); a peer that offers none of them is accepted without one."""
    max_message_bytes: int
    """A bigger message (fragments included) closes the connection with 1009."""
    max_fragments: int = 1024
    """Bounds the memory a peer can tie up with empty fragments, which max_message_bytes does not."""
    open_timeout_s: float = 10.0
    """From the TCP connect to a complete handshake request; then the socket is dropped."""
    close_timeout_s: float = 10.0
    """From our close frame (or a refused handshake) to the peer closing TCP; then it is dropped."""
    write_high_water: int = 32 * 1024
    """Write buffer size above which `write_ready()` is False (the peer does not read)."""


def _select_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    # websockets' default refuses a peer that offers no subprotocol; we accept it without one
    # (test tools, other ingresses), and select ours when it is offered.
    for name in protocol.available_subprotocols or ():
        if name in offered:
            return name
    return None


def _wants_websocket(request: Request) -> bool:
    return any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))


class CallConnection(asyncio.Protocol):
    """A server-side WebSocket whose data messages go to an attached receiver.

    `on_open(connection)` is called once, when the handshake has succeeded; `accepting()` is asked
    when a handshake request arrives (False: refused with 503, the server is shutting down);
    `authorize` then checks its credentials (a refusal is sent as it is, and no call starts).
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        on_open: Callable[[CallConnection], None],
        accepting: Callable[[], bool] = lambda: True,
        http_handler: HttpHandler | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self._settings = settings
        self._on_open = on_open
        self._accepting = accepting
        self._http_handler = http_handler
        self._authorize = authorize
        self.protocol = ServerProtocol(
            subprotocols=[Subprotocol(name) for name in settings.subprotocols],
            select_subprotocol=_select_subprotocol,
            max_size=settings.max_message_bytes,
        )
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.opened = False
        self._loop = asyncio.get_running_loop()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._connection_exc: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None  # the handshake's deadline, then the close's
        self._closing_deadline_set = False
        self._paused = False
        self._failed = False  # we failed the connection: the rest of the input is ignored
        self._receiver: Receiver | None = None
        self._early: deque[str | bytes] = deque()  # messages before attach()
        self._opcode: Opcode = TEXT  # of the fragmented message being assembled
        self._fragments: list[bytes] = []

    # -- what a call uses ------------------------------------------------------------------
    @property
    def subprotocol(self) -> str | None:
        return self.protocol.subprotocol

    def attach(self, receiver: Receiver) -> None:
        """From now on every message goes to `receiver`, starting with those already received."""
        self._receiver = receiver
        while self._early:
            receiver.on_message(self._early.popleft())
        if self._lost.done():
            receiver.on_closed(self._close_exc())

    def write_ready(self) -> bool:
        """False while the peer does not read and the write buffer is above its high-water mark."""
        return not self._paused

    def send_now(self, message: str | bytes) -> bool:
        """Writes one whole message without waiting; False if the connection is not open."""
        protocol = self.protocol
        if protocol.state is not OPEN:
            return False
        transport = self.transport
        assert transport is not None
        try:
            if isinstance(message, str):
                protocol.send_text(message.encode())
            else:
                protocol.send_binary(message)
            for data in protocol.data_to_send():  # one frame; never the end of stream
                transport.write(data)
        except Exception as exc:  # the socket failed: end the connection
            self._connection_exc = exc
            transport.abort()
            return False
        return True

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Starts the closing handshake (if not started) and waits until the socket is closed:
        by the peer, or by us `close_timeout_s` after our close frame."""
        if self.protocol.state is OPEN:
            self.protocol.send_close(code, reason)
            self._write_pending()
            self._expect_close()
        elif self.transport is not None and not self.opened and not self._lost.done():
            self.transport.abort()  # still in the handshake: nothing to say goodbye to
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Calls `callback` once the socket is closed (at once if it already is)."""
        self._lost.add_done_callback(lambda _: callback())

    def abort(self) -> None:
        """Drops the socket at once, without a closing handshake."""
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self._settings.write_high_water)
        # A peer that connects and never completes its request must not hold a socket forever.
        self._timer = self._loop.call_later(self._settings.open_timeout_s, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self._write_pending()  # pongs, the echo of a close frame, the end of stream
        for event in events:
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is BINARY or opcode is TEXT or opcode is CONT:
                    self._on_data_frame(event)
                # PING, PONG, CLOSE: the protocol has already answered them
            elif isinstance(event, Request):
                self._on_request(event)
        if protocol.close_expected():
            self._expect_close()

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._write_pending()
        # Returning None lets the transport close itself: WebSocket ends with TCP's close.

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()  # idempotent: the protocol's state is CLOSED from here on
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if exc is not None and self._connection_exc is None:
            self._connection_exc = exc
        self._paused = False
        self._lost.set_result(None)
        if self.opened and self._receiver is not None:
            self._receiver.on_closed(self._close_exc())

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    # -- internals -------------------------------------------------------------------------
    def _on_request(self, request: Request) -> None:
        protocol = self.protocol
        self.request = request
        if self._http_handler is not None and not _wants_websocket(request):
            self._answer_http(request, self._http_handler)
            return
        refusal = None
        if not self._accepting():
            refusal = protocol.reject(http.HTTPStatus.SERVICE_UNAVAILABLE, "Shutting down.\n")
        elif self._authorize is not None:
            refusal = self._authorize(request, self._peer())
            if refusal is not None:  # the hook has logged its one line; websockets' is DEBUG
                protocol.logger = _HTTP_LOG
                protocol.send_response(refusal)
                self._write_pending()
                return
        response = protocol.accept(request) if refusal is None else refusal
        protocol.send_response(response)  # an HTTP error response for a bad request too
        self._write_pending()
        if protocol.state is not OPEN:
            log.info("refused a connection (%d): %s", response.status_code, protocol.handshake_exc)
            return  # data_received sees close_expected() and bounds the wait for the peer
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.opened = True
        self._on_open(self)

    def _answer_http(self, request: Request, handler: HttpHandler) -> None:
        protocol = self.protocol
        protocol.logger = _HTTP_LOG  # (the protocol's documented `logger` attribute)
        try:
            response = handler(request, self._peer())
        except Exception:  # a bug in a route: this request fails, the robot goes on
            log.exception("HTTP %s failed", request.path)
            response = protocol.reject(http.HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error.\n")
        protocol.send_response(response)  # then the end of our stream: one request per socket
        self._write_pending()
        self._expect_close()

    def _peer(self) -> str | None:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return str(peer[0]) if peer else None

    def _on_data_frame(self, frame: Frame) -> None:
        if self._failed or not self.opened:  # (frames pipelined behind a refused request)
            return
        # The protocol has already enforced max_message_bytes on the whole message.
        data = bytes(frame.data)  # (the parser gives bytes: no copy)
        if not frame.fin:
            if frame.opcode is not CONT:
                self._opcode = frame.opcode
            self._fragments.append(data)
            if len(self._fragments) > self._settings.max_fragments:
                self._fail(CloseCode.MESSAGE_TOO_BIG, "too many fragments")
            return
        if self._fragments:  # the last fragment of a fragmented message
            opcode = self._opcode
            data = b"".join([*self._fragments, data])
            self._fragments = []
        else:
            opcode = frame.opcode
        message: str | bytes = data
        if opcode is TEXT:
            try:
                message = data.decode()
            except UnicodeDecodeError as exc:  # RFC 6455 §8.1: fail the connection with 1007
                self._connection_exc = exc
                self._fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                return
        if self._receiver is None:
            self._early.append(message)
        else:
            self._receiver.on_message(message)

    def _fail(self, code: CloseCode, reason: str) -> None:
        self._failed = True
        self.protocol.fail(code, reason)  # close frame, end of our stream, input discarded
        self._write_pending()
        self._expect_close()

    def _write_pending(self) -> None:
        transport = self.transport
        assert transport is not None
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # the protocol's end of stream: half-close
                transport.write_eof()
            else:
                transport.close()

    def _expect_close(self) -> None:
        """The peer should close TCP now; if it has not within close_timeout_s, drop the socket."""
        if self._closing_deadline_set or self._lost.done():
            return
        self._closing_deadline_set = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._settings.close_timeout_s, self._close_timeout)

    def _handshake_timeout(self) -> None:
        self._timer = None
        if self.protocol.state is CONNECTING and not self._closing_deadline_set:
            log.info("no WebSocket handshake within %.0f s: dropped", self._settings.open_timeout_s)
            self._connection_exc = TimeoutError("timed out during the opening handshake")
            self.abort()

    def _close_timeout(self) -> None:
        self._timer = None
        if not self._lost.done():
            self._connection_exc = self._connection_exc or TimeoutError(
                "timed out while closing the connection"
            )
            self.abort()

    def _close_exc(self) -> ConnectionClosed:
        exc = self.protocol.close_exc
        if exc.__cause__ is None and self._connection_exc is not None:
            exc.__cause__ = self._connection_exc
        return exc
