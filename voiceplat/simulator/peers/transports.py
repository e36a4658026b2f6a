"""Transports for simulator peers: a TCP stream and a WebSocket client (see `peers/base.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.protocol import State

from voiceplat.simulator.peers.base import Wire

SEND_BUFFER_LIMIT = 16 * 1024
"""Caller audio queued in the socket beyond this is dropped (the robot does not read)."""
READ_SIZE = 64 * 1024
MAX_MESSAGE = 16 * 1024 * 1024


class TransportError(Exception):
    """The connection broke mid-call (not a clean close); the text says how."""


class TcpTransport:
    """Raw bytes over TCP (AudioSocket)."""

    def __init__(self, host: str, port: int, *, open_timeout_s: float = 10.0) -> None:
        self.host, self.port = host, port
        self.open_timeout_s = open_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        async with asyncio.timeout(self.open_timeout_s):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    def send(self, data: Wire, *, audio: bool = False) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        if audio and writer.transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            return False
        writer.write(data.encode() if isinstance(data, str) else data)
        return True

    async def receive(self) -> Wire | None:
        assert self._reader is not None, "open() first"
        try:
            data = await self._reader.read(READ_SIZE)
        except ConnectionError as exc:
            raise TransportError(f"connection lost: {exc}") from exc
        return data or None

    async def close(self) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        try:
            await writer.drain()  # the hangup frame goes out before the FIN
        except ConnectionError:
            pass
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


class WebSocketTransport:
    """BINARY and TEXT frames over a WebSocket client connection."""

    def __init__(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        headers: dict[str, str] | None = None,
        open_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.subprotocols = list(subprotocols)
        self.headers = headers or {}
        self.open_timeout_s = open_timeout_s
        self.ws: ClientConnection | None = None

    async def open(self) -> None:
        self.ws = await connect(
            self.url,
            subprotocols=self.subprotocols or None,  # type: ignore[arg-type]
            additional_headers=self.headers,
            compression=None,
            max_size=MAX_MESSAGE,
            ping_interval=None,
            open_timeout=self.open_timeout_s,
            close_timeout=2.0,
        )

    def send(self, data: Wire, *, audio: bool = False) -> bool:
        # Straight to the protocol and the transport, not `await ws.send()`: the ticker serves
        # hundreds of calls per frame and must not await any one of them.
        ws = self.ws
        if ws is None or ws.protocol.state is not State.OPEN:
            return False
        if audio and ws.transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            return False
        if isinstance(data, str):
            ws.protocol.send_text(data.encode())
        else:
            ws.protocol.send_binary(data)
        ws.send_data()
        return True

    async def receive(self) -> Wire | None:
        assert self.ws is not None, "open() first"
        try:
            return await self.ws.recv()
        except ConnectionClosedError as exc:
            raise TransportError(f"connection lost: {exc}") from exc
        except ConnectionClosed:
            return None

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
