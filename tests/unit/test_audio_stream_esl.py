"""FreeSWITCH's event socket: the sans-I/O codec and the asyncio client against a fake server."""

from __future__ import annotations

import asyncio

import pytest

from tests.doubles.fake_esl import FakeEsl
from voiceplat.telephony.ingress.audio_stream.esl import (
    EslEvent,
    EslParser,
    EslProtocolError,
    command,
    encode_event,
    encode_message,
    parse_event,
)
from voiceplat.telephony.ingress.audio_stream.esl_client import EslClient, EslError

API_REPLY = b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"


def test_messages_split_and_merged_anyhow() -> None:
    stream = b"Content-Type: auth/request\n\n" + API_REPLY + API_REPLY
    for cut in range(1, len(stream)):
        parser = EslParser()
        messages = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [m.content_type for m in messages] == [
            "auth/request",
            "api/response",
            "api/response",
        ]
        assert [m.body for m in messages] == ["", "+OK\n", "+OK\n"]


def test_event_plain_headers_are_url_decoded_and_body_kept() -> None:
    data = encode_event(
        {
            "Event-Name": "CUSTOM",
            "Event-Subclass": "mod_audio_stream::play",
            "Unique-ID": "abc",
            "Caller-Caller-ID-Name": "Ivan Petrov",
        },
        '{"file": "/tmp/abc_0.tmp.r8"}',
    )
    assert b"Ivan%20Petrov" in data
    [message] = EslParser().feed(data)
    event = parse_event(message)
    assert event.name == "mod_audio_stream::play"
    assert event.uuid == "abc"
    assert event.headers["Caller-Caller-ID-Name"] == "Ivan Petrov"
    assert event.body == '{"file": "/tmp/abc_0.tmp.r8"}'


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"no colon here\n\n", "not an ESL header line"),
        (b"Content-Length: many\n\n", "bad Content-Length"),
        (b"Content-Length: 999999999\n\n", "bad Content-Length"),
        (b"X" * (70 * 1024), "header block too long"),
    ],
)
def test_garbage_is_refused(data: bytes, error: str) -> None:
    with pytest.raises(EslProtocolError, match=error):
        EslParser().feed(data)


def test_a_command_is_one_line() -> None:
    assert command("api status") == b"api status\n\n"
    with pytest.raises(ValueError, match="one line"):
        command("api uuid_kill x\n\nexit")


async def test_client_authenticates_runs_api_and_bgapi() -> None:
    server = FakeEsl("s3cret")
    server.replies["status"] = "UP 0 years\n"
    port = await server.start()
    events: list[str] = []
    got = asyncio.Event()

    def on_event(event: EslEvent) -> None:
        events.append(f"{event.name}:{event.body}")
        got.set()

    client = EslClient(on_event)
    try:
        await client.connect("127.0.0.1", port, "s3cret")
        assert await client.api("status") == "UP 0 years\n"
        assert await client.api("nope 1") == "-ERR nope Command not found!\n"
        await client.subscribe(["BACKGROUND_JOB"])
        job = await client.bgapi("status")
        await asyncio.wait_for(got.wait(), 60)
        assert job and events == ["BACKGROUND_JOB:UP 0 years\n"]
        assert server.commands[:2] == ["api status", "api nope 1"]
    finally:
        await client.close()
        await server.stop()


async def test_events_reach_only_the_filtered_call() -> None:
    server = FakeEsl()
    port = await server.start()
    names: list[str] = []
    got = asyncio.Event()

    def on_event(event: EslEvent) -> None:
        names.append(event.uuid)
        got.set()

    client = EslClient(on_event)
    try:
        await client.connect("127.0.0.1", port, "ClueCon")
        await client.subscribe(["DTMF", "CUSTOM", "mod_audio_stream::play"], uuid="call-1")
        assert server.fire({"Event-Name": "DTMF", "Unique-ID": "call-2"}) == 0
        custom = {"Event-Name": "CUSTOM", "Event-Subclass": "other::x", "Unique-ID": "call-1"}
        assert server.fire(custom) == 0
        assert server.fire({"Event-Name": "DTMF", "Unique-ID": "call-1", "DTMF-Digit": "5"}) == 1
        await asyncio.wait_for(got.wait(), 60)
        assert names == ["call-1"]
    finally:
        await client.close()
        await server.stop()


async def test_wrong_password_is_refused_with_freeswitchs_words() -> None:
    server = FakeEsl("right")
    port = await server.start()
    try:
        with pytest.raises(EslError, match="refused the password: -ERR invalid"):
            await EslClient().connect("127.0.0.1", port, "wrong")
        assert server.auth_failures == 1 and server.commands == []
    finally:
        await server.stop()


async def test_nobody_listening_is_a_clear_error() -> None:
    server = FakeEsl()
    port = await server.start()
    await server.stop()
    with pytest.raises(EslError, match=f"cannot reach the event socket at 127.0.0.1:{port}"):
        await EslClient().connect("127.0.0.1", port, "ClueCon")


async def test_a_closed_socket_fails_waiting_commands() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode_message({"Content-Type": "auth/request"}))
        await reader.readuntil(b"\n\n")
        writer.write(encode_message({"Content-Type": "command/reply", "Reply-Text": "+OK"}))
        await reader.readuntil(b"\n\n")  # the api command: FreeSWITCH goes away instead
        writer.write(encode_message({"Content-Type": "text/disconnect-notice"}, "bye\n"))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = EslClient()
    try:
        await client.connect("127.0.0.1", port, "x")
        with pytest.raises(EslError, match="event socket closed: bye"):
            await client.api("uuid_kill abc")
        with pytest.raises(EslError, match="closed"):
            await client.api("status")
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
