"""freeswitch/stream_bridge.lua, run by Lua against the stub FreeSWITCH of ws_bridge_harness.lua:
the commands it issues for each sequence of mod_audio_stream events.

Event names are the module's (amigniter/mod_audio_stream, mod_audio_stream.h): ::disconnect when
the socket closes, ::error (e.g. code 6 CONNECT_FAILED) when the stream fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.unit.test_ws_bridge import lua_literal

SCRIPT = ROOT / "freeswitch" / "stream_bridge.lua"
HARNESS = Path(__file__).with_name("ws_bridge_harness.lua")
URL = "ws://robot:5200/audio_stream"
UUID = "6f1c2d3e-0000-4000-8000-000000000001"
START = (
    f"api uuid_audio_stream {UUID} start {URL} mono 8k "
    f'{{"uuid":"{UUID}","callId":"{UUID}","from":"+79991234567","to":"8810"}}'
)
OPENING = [
    "answer",
    "subscribe CUSTOM mod_audio_stream::disconnect",
    "subscribe CUSTOM mod_audio_stream::error",
    START,
]


@pytest.fixture
def lua() -> str:
    found = shutil.which("lua5.4") or shutil.which("lua")
    if found:
        return found
    message = "no lua5.4 interpreter (scripts/setup.sh test installs the Debian package lua5.4)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def event(subclass: str, *, uuid: str = UUID, body: str | None = None, after: int = 2) -> dict:
    spec: dict[str, Any] = {"subclass": f"mod_audio_stream::{subclass}", "uuid": uuid}
    if body is not None:
        spec["body"] = body
    spec["after_polls"] = after
    return spec


def bridge(lua: str, tmp_path: Path, events: list[dict], *args: str, **extra: Any) -> list[str]:
    scenario = {
        "uuid": UUID,
        "variables": {"caller_id_number": "+79991234567", "destination_number": "8810"},
        "api": extra.get("api", {}),
        "events": events,
    }
    path = tmp_path / "scenario.lua"
    path.write_text("return " + lua_literal(scenario) + "\n")
    done = subprocess.run(
        [lua, str(HARNESS), str(SCRIPT), str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,  # a hang only
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "blocking pop" not in lines  # waiting must go on reading the call's audio
    return lines


def test_starts_the_stream_with_the_channel_uuid_then_hangs_up_when_the_robot_closes(
    lua, tmp_path
) -> None:
    lines = bridge(lua, tmp_path, [event("disconnect", after=4)], URL)
    assert lines == [*OPENING, "sleep 20 x4", "hangup NORMAL_CLEARING", "script returned"]


def test_a_failed_stream_hangs_up_and_says_why(lua, tmp_path) -> None:
    body = '{"status":"error","message":{"code":6,"error":"connect failed"}}'
    lines = bridge(lua, tmp_path, [event("error", body=body, after=0)], URL)
    assert lines[-2:] == ["hangup NORMAL_TEMPORARY_FAILURE", "script returned"]
    assert any(
        line.startswith("log ERR stream_bridge: the stream to") and "connect failed" in line
        for line in lines
    )


def test_events_of_other_calls_are_not_ours(lua, tmp_path) -> None:
    other = "0b0e0000-0000-4000-8000-000000000002"
    lines = bridge(
        lua, tmp_path, [event("disconnect", uuid=other), event("error", uuid=other)], URL
    )
    assert not any(line.startswith("hangup") for line in lines)
    assert lines[-2:] == ["caller hung up", "script returned"]


def test_a_stream_that_does_not_start_hangs_up(lua, tmp_path) -> None:
    api = {"uuid_audio_stream": "-ERR no such channel\n"}
    lines = bridge(lua, tmp_path, [], URL, api=api)
    assert lines[-3:] == [
        "log ERR stream_bridge: uuid_audio_stream start failed: -ERR no such channel",
        "hangup NORMAL_TEMPORARY_FAILURE",
        "script returned",
    ]
    assert not any(line.startswith("sleep") for line in lines)


def test_without_a_url_it_says_how_to_call_it(lua, tmp_path) -> None:
    lines = bridge(lua, tmp_path, [])
    assert lines[0] == "log ERR stream_bridge: usage: lua stream_bridge.lua <ws-url>"
    assert lines[1:] == ["hangup NORMAL_TEMPORARY_FAILURE", "script returned"]
