"""The robot's WebSocket layer over real sockets on 127.0.0.1: handshake, close codes, timeouts,
plain HTTP, shutdown. The peers are websockets' own clients (asyncio, or sans-I/O over a raw
stream where a test needs bytes no well-behaved client would send)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import TEXT, Frame
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from tests.conftest import read_call_records
from voiceplat.errors import RobotError
from voiceplat.telephony.connection import CallConnection, ConnectionSettings
from voiceplat.telephony.ingress.audio_fork.codec import SUBPROTOCOL
from voiceplat.telephony.server import RobotServer

SETTINGS = ConnectionSettings(subprotocols=(SUBPROTOCOL,), max_message_bytes=4096)
HANG_S = 60  # only a hang reaches this
OFFER = [Subprotocol(SUBPROTOCOL)]  # what mod_audio_fork offers


async def first_audio(ws: Any) -> str | bytes:
    """The robot's first message that is not its turn's opening mark (`t0s0`, sent before the
    greeting's audio so a peer knows whose audio follows)."""
    while True:
        message = await ws.recv()
        if not (isinstance(message, str) and '"mark"' in message and 's0"' in message):
            return message


class Calls:
    """Receiver of every connection the test server opens."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.in_task: list[bool] = []
        self.closed: list[ConnectionClosed] = []
        self.closed_event = asyncio.Event()

    def on_message(self, message: str | bytes) -> None:
        self.messages.append(message)
        self.in_task.append(asyncio.current_task() is not None)

    def on_closed(self, exc: ConnectionClosed) -> None:
        self.closed.append(exc)
        self.closed_event.set()


class ConnectionServer:
    def __init__(self, server: asyncio.Server, opened: list[CallConnection], calls: Calls):
        self.server, self.opened, self.calls = server, opened, calls
        self.port: int = server.sockets[0].getsockname()[1]


@pytest.fixture
async def connection_server() -> AsyncIterator[Callable[..., Any]]:
    """Starts bare CallConnection servers (no robot); each opened connection gets one Calls."""
    servers: list[asyncio.Server] = []

    async def start(**settings: Any) -> ConnectionServer:
        opened: list[CallConnection] = []
        calls = Calls()

        def on_open(connection: CallConnection) -> None:
            opened.append(connection)
            connection.attach(calls)

        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: CallConnection(replace(SETTINGS, **settings), on_open=on_open),
            "127.0.0.1",
            0,
        )
        servers.append(server)
        return ConnectionServer(server, opened, calls)

    yield start
    for server in servers:
        server.close()


class RawClient:
    """websockets' sans-I/O client over a plain stream: frames are written as the test says."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = ClientProtocol(
            parse_uri("ws://127.0.0.1/"), subprotocols=[Subprotocol(SUBPROTOCOL)]
        )

    @classmethod
    async def open(cls, port: int) -> RawClient:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        client.protocol.send_request(client.protocol.connect())
        client.flush()
        async with asyncio.timeout(HANG_S):
            while True:
                client.protocol.receive_data(await client.reader.read(65536))
                events = client.protocol.events_received()
                if events:
                    assert isinstance(events[0], Response) and events[0].status_code == 101
                    return client

    def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)

    def write(self, *frames: Frame) -> None:
        self.writer.write(b"".join(f.serialize(mask=True) for f in frames))

    async def close_code_received(self) -> int | None:
        """Reads until the server ends TCP, then closes ours; the code of the server's close frame."""
        async with asyncio.timeout(HANG_S):
            while data := await self.reader.read(65536):
                self.protocol.receive_data(data)
        self.writer.close()
        return self.protocol.close_rcvd.code if self.protocol.close_rcvd else None


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (EOF or reset)."""
    received = bytearray()
    async with asyncio.timeout(HANG_S):
        try:
            while data := await reader.read(65536):
                received += data
        except ConnectionResetError:
            pass
    return bytes(received)


async def drain(ws: ClientConnection) -> None:
    """Keeps reading (a client that stops reading stalls the server's close frame)."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


# -- bare connections -----------------------------------------------------------------------
async def test_messages_reach_the_receiver_in_the_read_callback(connection_server) -> None:
    served = await connection_server()
    async with connect(f"ws://127.0.0.1:{served.port}/", subprotocols=OFFER) as ws:
        await ws.send('{"callId": "x"}')
        await ws.send(bytes(320))
        await ws.send(bytes(321))
    async with asyncio.timeout(HANG_S):
        await served.calls.closed_event.wait()
    assert served.calls.messages == ['{"callId": "x"}', bytes(320), bytes(321)]
    assert served.calls.in_task == [False, False, False]  # no task woke up for a message
    assert isinstance(served.calls.closed[0], ConnectionClosedOK)


async def test_invalid_utf8_in_a_text_message_closes_with_1007(connection_server) -> None:
    served = await connection_server()
    client = await RawClient.open(served.port)
    client.write(Frame(TEXT, b'{"callId": "\xff"}'))
    assert await client.close_code_received() == 1007
    async with asyncio.timeout(HANG_S):
        await served.calls.closed_event.wait()
    (closed,) = served.calls.closed
    assert closed.sent is not None and closed.sent.code == 1007
    assert served.calls.messages == []


async def test_a_message_over_the_limit_closes_with_1009(connection_server) -> None:
    served = await connection_server()
    async with connect(f"ws://127.0.0.1:{served.port}/", subprotocols=OFFER) as ws:
        await ws.send(bytes(SETTINGS.max_message_bytes))
        with pytest.raises(ConnectionClosed):
            await ws.send(bytes(SETTINGS.max_message_bytes + 1))
            await ws.recv()
    assert ws.close_code == 1009
    assert served.calls.messages == [bytes(SETTINGS.max_message_bytes)]


async def test_no_handshake_within_the_open_timeout_drops_the_socket(connection_server) -> None:
    served = await connection_server(open_timeout_s=0.05)
    silent_reader, silent = await asyncio.open_connection("127.0.0.1", served.port)
    partial_reader, partial = await asyncio.open_connection("127.0.0.1", served.port)
    partial.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
    assert await read_to_end(silent_reader) == b""
    assert await read_to_end(partial_reader) == b""
    assert served.opened == []
    silent.close()
    partial.close()


async def test_close_gives_up_on_a_peer_that_never_answers(connection_server) -> None:
    served = await connection_server(close_timeout_s=0.05)
    client = await RawClient.open(served.port)  # reads nothing until the test asks
    (connection,) = served.opened
    async with asyncio.timeout(HANG_S):
        await connection.close(1000, "bye")  # returns although the peer sent no close frame
    assert await client.close_code_received() == 1000
    (closed,) = served.calls.closed
    assert closed.rcvd is None and closed.sent is not None and closed.sent.code == 1000


async def test_server_close_handshake_with_a_real_client(connection_server) -> None:
    served = await connection_server()
    async with connect(f"ws://127.0.0.1:{served.port}/", subprotocols=OFFER) as ws:
        reading = asyncio.create_task(drain(ws))
        (connection,) = served.opened
        async with asyncio.timeout(HANG_S):
            await connection.close(1000, "goodbye")
        await reading
    assert (ws.close_code, ws.close_reason) == (1000, "goodbye")
    (closed,) = served.calls.closed
    assert isinstance(closed, ConnectionClosedOK)
    assert connection.send_now(b"late") is False


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"426"),  # a browser, curl, a health check
        (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", b"405"),
    ],
)
async def test_plain_http_gets_an_http_error_response(
    connection_server, request_head: bytes, status: bytes
) -> None:
    served = await connection_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(request_head)
    response = await read_to_end(reader)  # the server ends the connection after its answer
    assert response.startswith(b"HTTP/1.1 " + status + b" ")
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % len(body) in head and body
    assert served.opened == []
    writer.close()


# -- the robot's server ---------------------------------------------------------------------
async def final_records(robot, count: int = 1) -> list[dict]:
    """The JSON sink writes in its own task: wait (bounded) until `count` calls are final."""
    async with asyncio.timeout(HANG_S):
        while True:
            records = [r for r in read_call_records(robot) if r["call"]["status"] != "in_progress"]
            if len(records) >= count:
                return records
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("offered", [[SUBPROTOCOL], []], ids=["audio.drachtio.org", "none"])
async def test_robot_accepts_its_subprotocol_or_none(
    make_robot, robot_server, offered: list[str]
) -> None:
    robot = make_robot()
    url, _, _ = await robot_server(robot)
    async with connect(url, subprotocols=[Subprotocol(s) for s in offered] or None) as ws:
        assert ws.subprotocol == (offered[0] if offered else None)
        await ws.send(json.dumps({"callId": "sub"}))
        async with asyncio.timeout(HANG_S):
            first = await first_audio(ws)
        assert isinstance(first, bytes)  # the greeting's audio
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "caller_hangup"


async def test_robot_answers_plain_http_and_goes_on(make_robot, robot_server) -> None:
    robot = make_robot()
    url, server, _ = await robot_server(robot)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (await read_to_end(reader)).startswith(b"HTTP/1.1 426 ")
    writer.close()
    assert read_call_records(robot) == []  # no call was started
    async with connect(url, subprotocols=OFFER) as ws:
        await ws.send(json.dumps({"callId": "after"}))
        async with asyncio.timeout(HANG_S):
            assert isinstance(await first_audio(ws), bytes)


async def test_invalid_utf8_ends_the_call_with_1007_and_a_record(make_robot, robot_server) -> None:
    robot = make_robot()
    _, server, _ = await robot_server(robot)
    client = await RawClient.open(server.port)
    client.write(Frame(TEXT, b'{"callId": "utf8"}'), Frame(TEXT, b"\xc3\x28"))
    assert await client.close_code_received() == 1007
    (record,) = await final_records(robot)
    assert record["call"]["call_id"] == "utf8"
    assert (record["call"]["status"], record["call"]["end_reason"]) == ("failed", "protocol_error")


async def test_port_in_use_is_a_robot_error(make_robot, robot_server) -> None:
    robot = make_robot()
    _, server, recorder = await robot_server(robot)
    second = RobotServer(server.robot, recorder)
    with pytest.raises(RobotError, match=rf"port {server.port} is in use"):
        await second.start("127.0.0.1", server.port)


async def test_shutdown_waits_for_a_live_call_and_refuses_new_ones(
    make_robot, robot_server
) -> None:
    robot = make_robot()
    url, server, _ = await robot_server(robot)
    ws = await connect(url, subprotocols=OFFER)
    await ws.send(json.dumps({"callId": "live"}))
    async with asyncio.timeout(HANG_S):
        assert isinstance(await first_audio(ws), bytes)  # the greeting: the call is live
    reading = asyncio.create_task(drain(ws))
    stopping = asyncio.create_task(server.shutdown(grace_s=60))
    await asyncio.sleep(0)  # one loop turn: shutdown runs up to its wait for the live call
    with pytest.raises(OSError):
        await connect(url, subprotocols=OFFER)
    assert not stopping.done()
    await ws.close()  # the caller hangs up within the grace period
    async with asyncio.timeout(HANG_S):
        await stopping
        await reading
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "caller_hangup"


async def test_shutdown_ends_calls_left_after_the_grace_period(make_robot, robot_server) -> None:
    robot = make_robot()
    url, server, _ = await robot_server(robot)
    ws = await connect(url, subprotocols=OFFER)
    await ws.send(json.dumps({"callId": "stays"}))
    async with asyncio.timeout(HANG_S):
        assert isinstance(await first_audio(ws), bytes)  # the greeting: the call is live
    reading = asyncio.create_task(drain(ws))
    async with asyncio.timeout(HANG_S):
        await server.shutdown(grace_s=0.1)  # the caller never hangs up
        await reading  # the robot closed the socket
    assert ws.close_code is not None
    assert not server.calls
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "shutdown"
