"""A websockets server connection that hands each inbound message to its call as it is parsed.

websockets' `recv()` passes every message through a frame queue, a future and a task wake-up; at
50 caller frames a second per call that chain cost about a fifth of a busy robot's CPU. Here the
reader callback (`data_received`) gives each whole message straight to the call's receiver (its
`CallChannel`), so the session's frame handling runs right there, with no task switch. Outbound,
`send_now` writes a message at once, so one shared pacer can send every call's audio from one
timer callback.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CONT, DATA_OPCODES, TEXT, CloseCode, Frame, Opcode
from websockets.protocol import OPEN


class Receiver(Protocol):
    def on_message(self, message: str | bytes) -> None:
        """One whole message, in order. Must not raise: it runs in the connection's reader."""

    def on_closed(self, exc: ConnectionClosed) -> None:
        """The connection is closed; no message follows."""


class CallConnection(ServerConnection):
    """`ServerConnection` whose data messages go to an attached receiver instead of `recv()`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._receiver: Receiver | None = None
        self._early: deque[str | bytes] = deque()  # messages before attach()
        self._lost = False
        self._opcode: Opcode = TEXT
        self._fragments: list[bytes] = []

    def attach(self, receiver: Receiver) -> None:
        """From now on every message goes to `receiver`, starting with those already received."""
        self._receiver = receiver
        while self._early:
            receiver.on_message(self._early.popleft())
        if self._lost:
            receiver.on_closed(self.close_exc)

    def write_ready(self) -> bool:
        """False while the peer does not read and the write buffer is above its high-water mark."""
        return not self.paused

    def send_now(self, message: str | bytes) -> bool:
        """Writes one whole message without waiting; False if the connection is not open."""
        if self.protocol.state is not OPEN:
            return False
        try:
            if isinstance(message, str):
                self.protocol.send_text(message.encode())
            else:
                self.protocol.send_binary(message)
            self.send_data()
        except Exception as exc:  # the socket failed: end the connection as send() would
            self.set_connection_exc(exc)
            self.transport.abort()
            return False
        return True

    # -- websockets hooks ------------------------------------------------------------------
    def process_event(self, event: object) -> None:
        if isinstance(event, Frame) and event.opcode in DATA_OPCODES:
            self._on_data_frame(event)
        else:  # the handshake request, pings, pongs, close
            super().process_event(event)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._lost = True
        if self._receiver is not None:
            self._receiver.on_closed(self.close_exc)

    def _on_data_frame(self, frame: Frame) -> None:
        # The protocol has already enforced max_size on the whole message, fragments included.
        if frame.opcode is not CONT:
            self._opcode = frame.opcode
        if not frame.fin:
            self._fragments.append(bytes(frame.data))
            return
        data = bytes(frame.data)
        if self._fragments:
            data = b"".join([*self._fragments, data])
            self._fragments = []
        message: str | bytes = data
        if self._opcode is TEXT:
            try:
                message = data.decode()
            except UnicodeDecodeError as exc:  # what recv() does: close with 1007
                self.set_connection_exc(exc)
                self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                self.send_data()
                self.transport.close()  # no reply to wait for: the stream is broken
                return
        if self._receiver is None:
            self._early.append(message)
        else:
            self._receiver.on_message(message)
