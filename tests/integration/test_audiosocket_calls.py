"""Whole calls through the AudioSocket ingress: the robot's TCP listener on 127.0.0.1, Asterisk's
side played by `voiceplat call audiosocket://` (simulator/peers/audiosocket.py), fake providers.

The common checks are tests/integration/ingress_checks.py; below them what is AudioSocket's own:
caller/callee registered by the dialplan's GET, `allow_from`, and bad input on a live socket.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.child_process import output_of, wait_listening
from tests.integration import ingress_checks
from tests.integration.ingress_checks import call, final_records
from tests.storage_servers import free_port
from voiceplat.robot import load_robot
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.telephony.ingress.audiosocket.codec import audio_frame, frame, uuid_frame
from voiceplat.telephony.ingress.audiosocket.server import AudioSocketServer
from voiceplat.telephony.ingress.audiosocket.settings import AudioSocketSettings

SOURCE = "asterisk"


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Any]]:
    """Starts robots with their AudioSocket listener on 127.0.0.1:<free port>."""
    started: list[tuple[AudioSocketServer, Recorder]] = []

    async def start_server(robot_dir: Path, **settings: Any) -> AudioSocketServer:
        robot = load_robot(robot_dir)
        recorder = Recorder(sinks_from_env(robot.env, robot.logs_dir, robot.directory / "spool"))
        await recorder.start()
        await robot.start()
        server = AudioSocketServer(robot, recorder, AudioSocketSettings(**settings))
        await server.start("127.0.0.1", 0)
        started.append((server, recorder))
        return server

    yield start_server
    for server, recorder in started:
        await server.shutdown(grace_s=5)
        await recorder.aclose()
        await server.robot.aclose()


@pytest.fixture
def start(servers: Callable[..., Any]) -> Callable[[Path], Any]:
    async def start_robot(robot_dir: Path) -> str:
        server = await servers(robot_dir)
        return f"audiosocket://127.0.0.1:{server.port}"

    return start_robot


async def test_greeting_and_answer(make_robot, start) -> None:
    _, record = await ingress_checks.greeting_and_answer(make_robot, start, source=SOURCE)
    assert record["call"]["caller"] is None  # nothing registered: AudioSocket carries no number


async def test_barge_in(make_robot, start) -> None:
    await ingress_checks.barge_in(make_robot, start, source=SOURCE)


async def test_dtmf(make_robot, start) -> None:
    await ingress_checks.dtmf(make_robot, start, source=SOURCE)


async def test_caller_hangs_up(make_robot, start) -> None:
    await ingress_checks.caller_hangs_up(make_robot, start, source=SOURCE)


async def test_robot_hangs_up_with_a_hangup_frame(make_robot, start) -> None:
    await ingress_checks.robot_hangs_up(make_robot, start, source=SOURCE)


async def test_caller_and_callee_registered_by_the_dialplan_reach_the_record(
    make_robot, start
) -> None:
    robot = make_robot()
    url = await start(robot)
    metadata = {"from": "+79991112233", "to": "700"}
    result = await call(url + "?register=1", [], metadata=metadata)  # the greeting only
    assert result.ok, result.errors
    (record,) = await final_records(robot)
    info = record["call"]
    assert (info["call_id"], info["caller"], info["callee"]) == (result.call_id, *metadata.values())
    assert info["source"] == SOURCE


async def test_an_address_outside_allow_from_is_refused(make_robot, servers) -> None:
    robot = make_robot()
    server = await servers(robot, allow_from=["10.99.0.0/24"])
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(uuid_frame(uuid.uuid4()))
    async with asyncio.timeout(60):
        assert await reader.read() == b""  # closed without a word
    writer.close()
    assert not server.calls


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (lambda: [uuid_frame(uuid.uuid4()), frame(0x42, b"x")], "unknown frame kind 0x42"),
        (lambda: [uuid_frame(uuid.uuid4()), b"\x10\xff\xff"], "65535 bytes"),
        (lambda: [uuid_frame(uuid.uuid4()), frame(0xFF, b"\x02")], "Asterisk reported an error"),
        (lambda: [uuid_frame(uuid.uuid4()), audio_frame(bytes(100))[:50]], "middle of a frame"),
    ],
)
async def test_bad_input_ends_the_call_as_a_protocol_error(
    make_robot, servers, frames, reason
) -> None:
    robot = make_robot()
    server = await servers(robot)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for data in frames():
        writer.write(data)
    writer.write_eof()  # as an early close would; the robot has closed first where it could
    async with asyncio.timeout(60):
        assert await reader.read() == b""  # the robot closes the socket, sending nothing
        await asyncio.gather(*server.calls)
    writer.close()
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "protocol_error"
    assert reason in json.dumps(record, ensure_ascii=False)


@pytest.mark.parametrize(
    "data", [audio_frame(bytes(320)), b"GARBAGE", b""], ids=["audio", "garbage", "nothing"]
)
async def test_a_connection_without_a_uuid_is_closed_and_not_a_call(
    make_robot, servers, data
) -> None:
    robot = make_robot()
    server = await servers(robot)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    writer.write_eof()
    async with asyncio.timeout(60):
        await reader.read()
        await asyncio.gather(*server.calls)
    writer.close()
    assert list((robot / "logs").glob("*.json")) == []  # no call record without a call id


async def test_a_connection_that_sends_nothing_is_closed(make_robot, servers) -> None:
    server = await servers(make_robot())
    server.first_data_timeout_s = 0.1  # Asterisk sends its UUID at once
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    async with asyncio.timeout(60):
        assert await reader.read() == b""
    writer.close()
    assert not server.calls


async def test_voiceplat_serve_listens_and_voiceplat_call_plays_asterisk(make_robot) -> None:
    """The command lines end to end: `serve` starts the listener from config.json and says so,
    `voiceplat call audiosocket://...` speaks, presses a key and reports as JSON."""
    port, ws_port = free_port(), free_port()
    robot = make_robot(ws_port=ws_port, audiosocket={"host": "127.0.0.1", "port": port})
    log_path = robot / "serve.log"
    with log_path.open("wb") as log:
        serve = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "voiceplat.cli", "serve", str(robot), "--host", "127.0.0.1"],
            *["--grace", "5"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        await wait_listening(serve, port, log_path)
        assert f"audiosocket: listening on 127.0.0.1:{port}" in output_of(log_path)
        metadata = json.dumps({"from": "+79991112233", "to": "700"})
        url = f"audiosocket://127.0.0.1:{port}?register=1"
        done = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "voiceplat.cli", "call", url, "--dtmf", "7", "--json"],
            *["--metadata", metadata, "--timeout", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        async with asyncio.timeout(90):
            out, err = await done.communicate()
        assert done.returncode == 0, (err.decode()[-2000:], output_of(log_path))
        report = json.loads(out)
        (keys,) = report["utterances"]
        assert keys["source"] == "dtmf 7" and keys["answered"]
        assert [e["data"] for e in report["events"] if e["type"] == "dtmf"] == [{"digits": "7"}]
    finally:
        serve.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):  # --grace 5: only a hang takes this long
            await serve.wait()
    (record,) = await final_records(robot)
    info = record["call"]
    assert (info["source"], info["caller"], info["callee"]) == ("asterisk", "+79991112233", "700")
    assert info["call_id"] == report["call_id"] and info["dtmf"] == "7"
    assert ingress_checks.robot_texts(record)[-1] == "Вы сказали: [DTMF 7]."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audiosocket://127.0.0.1:1", "--dtmf", "x"], "keys are 0-9, *, #, A-D"),
        (["audiosocket://127.0.0.1:1", "--metadata", '{"callId": "c1"}'], "are UUIDs"),
        (["audiosocket://:5270"], "expected audiosocket://host:port"),
    ],
)
def test_voiceplat_call_refuses_bad_input_with_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voiceplat.cli", "call", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr


async def test_backchannel(make_robot, start) -> None:
    await ingress_checks.backchannel(make_robot, start, source=SOURCE)


async def test_goodbye_heard_then_hangup(make_robot, start) -> None:
    await ingress_checks.goodbye_heard_then_hangup(make_robot, start, source=SOURCE)
