"""CallConnection driven byte by byte through a stand-in transport: how TCP reads are split or
coalesced never changes the messages a call receives, and each message is handed over inside the
read that completes it.

The peer is websockets' own sans-I/O client, so what the server writes is checked by a real parser.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import BINARY, CONT, TEXT, Frame
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from voiceplat.telephony.connection import CallConnection, ConnectionSettings

SETTINGS = ConnectionSettings(subprotocols=("audio.drachtio.org",), max_message_bytes=4096)


class FakeTransport(asyncio.Transport):
    """Collects what the connection writes; closing it reports connection_lost like asyncio."""

    def __init__(self, protocol: CallConnection) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.eof_written = False
        self.high_water: int | None = None
        self._closing = False

    def write(self, data: Any) -> None:
        assert not self.eof_written, "write after write_eof"
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high_water = high

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if not self._closing:
            self._closing = True
            self.protocol.connection_lost(None)

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


class Calls:
    """A receiver that records what it gets."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.closed: list[ConnectionClosed] = []

    def on_message(self, message: str | bytes) -> None:
        self.messages.append(message)

    def on_closed(self, exc: ConnectionClosed) -> None:
        self.closed.append(exc)


def frame_bytes(opcode: Any, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)  # a client masks every frame


class Peer:
    """One server-side CallConnection on a FakeTransport, and a sans-I/O client talking to it."""

    def __init__(self, subprotocols: list[str] | None = None) -> None:
        self.opened: list[CallConnection] = []
        self.connection = CallConnection(SETTINGS, on_open=self.opened.append)
        self.transport = FakeTransport(self.connection)
        self.client = ClientProtocol(
            parse_uri("ws://127.0.0.1/"),
            subprotocols=[Subprotocol(s) for s in subprotocols] if subprotocols else None,
        )
        self.calls = Calls()

    def connect(self) -> Response:
        self.connection.connection_made(self.transport)
        self.client.send_request(self.client.connect())
        self.feed(*self.client.data_to_send())
        (response,) = self.client_events()
        assert isinstance(response, Response)
        return response

    def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.connection.data_received(chunk)

    def client_events(self) -> list[Any]:
        self.client.receive_data(self.transport.take())
        if self.transport.eof_written:
            self.client.receive_eof()
        return self.client.events_received()


async def test_handshake_selects_the_subprotocol_when_offered() -> None:
    peer = Peer(["audio.drachtio.org"])
    response = peer.connect()
    assert response.status_code == 101
    assert response.headers["Sec-WebSocket-Protocol"] == "audio.drachtio.org"
    assert peer.client.state is OPEN and peer.client.subprotocol == "audio.drachtio.org"
    assert peer.opened == [peer.connection]
    assert peer.connection.subprotocol == "audio.drachtio.org"


async def test_handshake_accepts_a_peer_that_offers_no_subprotocol() -> None:
    peer = Peer()
    response = peer.connect()
    assert response.status_code == 101
    assert "Sec-WebSocket-Protocol" not in response.headers
    assert peer.client.state is OPEN and peer.opened == [peer.connection]


async def test_a_message_split_across_reads_arrives_once_and_whole() -> None:
    peer = Peer(["audio.drachtio.org"])
    peer.connect()
    peer.connection.attach(peer.calls)
    text = '{"callId": "split", "note": "привет"}'.encode()
    # One TEXT message in three fragments, its bytes fed one at a time (a UTF-8 letter is cut too).
    wire = (
        frame_bytes(TEXT, text[:10], fin=False)
        + frame_bytes(CONT, text[10:31], fin=False)
        + frame_bytes(CONT, text[31:])
    )
    for i in range(len(wire) - 1):
        peer.feed(wire[i : i + 1])
    assert peer.calls.messages == []  # nothing until the last byte of the last fragment
    peer.feed(wire[-1:])
    assert peer.calls.messages == [text.decode()]
    audio = bytes(range(256)) * 2
    wire = frame_bytes(BINARY, audio)
    peer.feed(wire[:3], wire[3:200], wire[200:])
    assert peer.calls.messages[1] == audio  # handed over inside the read that completed it


async def test_several_messages_in_one_read_arrive_in_order() -> None:
    peer = Peer(["audio.drachtio.org"])
    peer.connect()
    peer.connection.attach(peer.calls)
    audio = [bytes([n]) * 320 for n in range(3)]
    wire = (
        frame_bytes(TEXT, b'{"callId": "many"}')
        + b"".join(frame_bytes(BINARY, a) for a in audio)
        + frame_bytes(TEXT, b'{"type": "mark"}')
    )
    peer.feed(wire)
    assert peer.calls.messages == ['{"callId": "many"}', *audio, '{"type": "mark"}']


async def test_messages_before_attach_are_kept_for_the_receiver() -> None:
    peer = Peer(["audio.drachtio.org"])
    peer.connect()
    peer.feed(frame_bytes(TEXT, b"first") + frame_bytes(BINARY, b"\x01\x02"))
    peer.connection.attach(peer.calls)
    assert peer.calls.messages == ["first", b"\x01\x02"]
    peer.feed(frame_bytes(TEXT, b"later"))
    assert peer.calls.messages[-1] == "later"


async def test_send_now_writes_at_once_and_write_ready_follows_the_transport() -> None:
    peer = Peer(["audio.drachtio.org"])
    peer.connect()
    assert peer.transport.high_water == SETTINGS.write_high_water
    assert peer.connection.send_now(b"\x00" * 320)
    assert peer.connection.send_now('{"type": "killAudio"}')
    events = peer.client_events()  # written before send_now returned, no loop turn needed
    assert [(e.opcode, bytes(e.data)) for e in events] == [
        (BINARY, b"\x00" * 320),
        (TEXT, b'{"type": "killAudio"}'),
    ]
    assert peer.connection.write_ready()
    peer.connection.pause_writing()  # the transport's buffer passed its high-water mark
    assert not peer.connection.write_ready()
    peer.connection.resume_writing()
    assert peer.connection.write_ready()


async def test_peer_close_is_echoed_and_reported_once_the_socket_closes() -> None:
    peer = Peer(["audio.drachtio.org"])
    peer.connect()
    peer.connection.attach(peer.calls)
    peer.client.send_close(1000, "bye")
    peer.feed(*peer.client.data_to_send())
    assert peer.connection.send_now(b"late") is False  # closing: nothing more goes out
    peer.client_events()
    assert peer.client.close_rcvd is not None and peer.client.close_rcvd.code == 1000
    assert peer.transport.eof_written  # the server ends its side of TCP after the echo
    assert peer.calls.closed == []
    peer.connection.connection_lost(None)
    (closed,) = peer.calls.closed
    assert isinstance(closed, ConnectionClosedOK)
    assert closed.rcvd is not None and closed.rcvd.code == 1000


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (frame_bytes(TEXT, b"ok \xff\xfe"), 1007),  # invalid UTF-8
        (frame_bytes(TEXT, "привет".encode()[:-1]), 1007),  # cut inside a letter
        (frame_bytes(BINARY, bytes(SETTINGS.max_message_bytes + 1)), 1009),
        (
            frame_bytes(BINARY, bytes(3000), fin=False) + frame_bytes(CONT, bytes(3000)),
            1009,  # the limit counts the whole message
        ),
        (
            b"".join(frame_bytes(BINARY if i == 0 else CONT, b"", fin=False) for i in range(2000)),
            1009,  # empty fragments without end
        ),
    ],
    ids=["invalid-utf8", "cut-letter", "too-big", "too-big-fragmented", "too-many-fragments"],
)
async def test_bad_messages_fail_the_connection_with_their_code(wire: bytes, code: int) -> None:
    peer = Peer(["audio.drachtio.org"])
    peer.connect()
    peer.connection.attach(peer.calls)
    peer.feed(wire, frame_bytes(BINARY, b"after"))
    assert peer.calls.messages == []  # neither the bad message nor anything after it
    peer.client_events()
    assert peer.client.close_rcvd is not None and peer.client.close_rcvd.code == code
    assert peer.transport.eof_written
    peer.connection.connection_lost(None)
    (closed,) = peer.calls.closed
    assert closed.sent is not None and closed.sent.code == code


async def test_a_message_at_the_limit_is_accepted() -> None:
    peer = Peer(["audio.drachtio.org"])
    peer.connect()
    peer.connection.attach(peer.calls)
    peer.feed(frame_bytes(BINARY, bytes(SETTINGS.max_message_bytes)))
    assert peer.calls.messages == [bytes(SETTINGS.max_message_bytes)]


async def test_ping_is_answered_with_pong() -> None:
    peer = Peer(["audio.drachtio.org"])
    peer.connect()
    peer.client.send_ping(b"are you there")
    peer.feed(*peer.client.data_to_send())
    (pong,) = peer.client_events()
    assert bytes(pong.data) == b"are you there"
