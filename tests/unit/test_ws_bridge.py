"""freeswitch/ws_bridge.lua, run by Lua against a stub FreeSWITCH (tests/unit/ws_bridge_harness.lua):
the API commands it issues for each sequence of mod_audio_fork events.

The event names and bodies are the module's (jambonz freeswitch-modules, mod_audio_fork.h and
lws_glue.cpp): mod_audio_fork::disconnect (the robot's `disconnect`, no body is required, and the
socket closed by the robot), ::transfer (body: the message's data), ::connect_failed, ::error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "freeswitch" / "ws_bridge.lua"
HARNESS = Path(__file__).with_name("ws_bridge_harness.lua")
URL = "ws://robot:5200/"
UUID = "6f1c2d3e-0000-4000-8000-000000000001"
START = (
    f"api uuid_audio_fork {UUID} start {URL} mono 8k voiceplat "
    f'{{"callId":"{UUID}","from":"+79991234567","to":"8800"}} true true 8000'
)
SUBSCRIBED = [
    "subscribe CUSTOM mod_audio_fork::disconnect",
    "subscribe CUSTOM mod_audio_fork::transfer",
    "subscribe CUSTOM mod_audio_fork::connect_failed",
    "subscribe CUSTOM mod_audio_fork::error",
]
OPENING = ["answer", "set send_silence_when_idle=-1", *SUBSCRIBED, START]


@pytest.fixture
def lua() -> str:
    found = shutil.which("lua5.4") or shutil.which("lua")
    if found:
        return found
    message = "no lua5.4 interpreter (scripts/setup.sh test installs the Debian package lua5.4)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)  # a broken setup must not pass as a skip
    pytest.skip(message)


def lua_literal(value: Any) -> str:
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        return "'" + escaped + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    raise TypeError(value)


def event(subclass: str, *, uuid: str = UUID, body: str | None = None, after: int = 2) -> dict:
    spec: dict[str, Any] = {"subclass": f"mod_audio_fork::{subclass}", "uuid": uuid}
    if body is not None:
        spec["body"] = body
    spec["after_polls"] = after
    return spec


def bridge(
    lua: str,
    tmp_path: Path,
    events: list[dict],
    *args: str,
    api: dict[str, str] | None = None,
    caller: str = "+79991234567",
) -> list[str]:
    """Runs the script for one call; returns what it did, one line per action."""
    scenario = {
        "uuid": UUID,
        "variables": {"caller_id_number": caller, "destination_number": "8800"},
        "api": api or {},
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


def test_starts_the_fork_after_subscribing_then_hangs_up_on_disconnect(lua, tmp_path) -> None:
    lines = bridge(lua, tmp_path, [event("disconnect", after=5)], URL)
    assert lines == [*OPENING, "sleep 20 x5", "hangup NORMAL_CLEARING", "script returned"]


def test_the_socket_closed_by_the_robot_hangs_up_too(lua, tmp_path) -> None:
    # CONNECTION_DROPPED raises mod_audio_fork::disconnect without a body.
    lines = bridge(lua, tmp_path, [event("disconnect", body=None)], URL)
    assert lines[-2:] == ["hangup NORMAL_CLEARING", "script returned"]


def test_events_of_other_calls_are_not_ours(lua, tmp_path) -> None:
    other = "0b0e0000-0000-4000-8000-000000000002"
    lines = bridge(
        lua,
        tmp_path,
        [event("disconnect", uuid=other), event("transfer", uuid=other, body='{"target":"1"}')],
        URL,
    )
    assert [line for line in lines if line.startswith(("api", "hangup"))] == [START]
    assert lines[-2:] == ["caller hung up", "script returned"]


def test_transfer_stops_the_fork_and_transfers_then_leaves_the_call_alone(lua, tmp_path) -> None:
    # The robot closes the socket after `transfer`: that disconnect must not hang up the caller.
    events = [event("transfer", body='{"target":"1001"}'), event("disconnect", after=0)]
    lines = bridge(lua, tmp_path, events, URL)
    assert lines[len(OPENING) :] == [
        "sleep 20 x2",
        f"api uuid_audio_fork {UUID} stop voiceplat",
        f"api uuid_transfer {UUID} 1001",
        "script returned",
    ]


def test_transfer_goes_to_the_context_given(lua, tmp_path) -> None:
    lines = bridge(lua, tmp_path, [event("transfer", body='{"target": "sip:100@pbx"}')], URL, "ops")
    assert f"api uuid_transfer {UUID} sip:100@pbx XML ops" in lines


@pytest.mark.parametrize("body", ['{"target":"1001 XML public"}', '{"target":""}', "{}", None])
def test_a_transfer_without_a_usable_target_hangs_up(lua, tmp_path, body) -> None:
    lines = bridge(lua, tmp_path, [event("transfer", body=body)], URL)
    assert not any(line.startswith("api uuid_transfer") for line in lines)
    assert lines[-2:] == ["hangup NORMAL_CLEARING", "script returned"]
    assert any(
        line.startswith("log ERR ws_bridge: transfer without a usable target") for line in lines
    )


def test_an_unreachable_robot_hangs_up(lua, tmp_path) -> None:
    failed = event("connect_failed", body='{"reason":"connection refused"}', after=0)
    lines = bridge(lua, tmp_path, [failed], URL)
    assert lines[-2:] == ["hangup NORMAL_TEMPORARY_FAILURE", "script returned"]
    assert any("cannot reach the robot" in line and "refused" in line for line in lines)


def test_an_error_from_the_robot_is_logged_and_the_call_goes_on(lua, tmp_path) -> None:
    events = [event("error", body='{"detail":"x"}'), event("disconnect")]
    lines = bridge(lua, tmp_path, events, URL)
    assert any(line.startswith("log WARNING") and "detail" in line for line in lines)
    assert lines[-2:] == ["hangup NORMAL_CLEARING", "script returned"]


def test_a_fork_that_does_not_start_hangs_up(lua, tmp_path) -> None:
    lines = bridge(lua, tmp_path, [], URL, api={"uuid_audio_fork": "-ERR Operation Failed\n"})
    assert lines[-4:] == [
        START,
        "log ERR ws_bridge: uuid_audio_fork start failed: -ERR Operation Failed",
        "hangup NORMAL_TEMPORARY_FAILURE",
        "script returned",
    ]
    assert not any(line.startswith("sleep") for line in lines)


def test_the_caller_hanging_up_ends_the_script(lua, tmp_path) -> None:
    lines = bridge(lua, tmp_path, [], URL)
    assert lines == [*OPENING, "sleep 20 x3", "caller hung up", "script returned"]


def test_metadata_keeps_only_plain_characters(lua, tmp_path) -> None:
    # FreeSWITCH splits API arguments at spaces and takes quotes and backslashes out.
    lines = bridge(lua, tmp_path, [event("disconnect")], URL, caller="+7 (999) 'x\"\\y")
    start = next(line for line in lines if " start " in line)
    assert f'{{"callId":"{UUID}","from":"+7999xy","to":"8800"}}' in start


def test_without_a_url_it_says_how_to_call_it(lua, tmp_path) -> None:
    lines = bridge(lua, tmp_path, [])
    assert lines[0].startswith("log ERR ws_bridge: usage: lua ws_bridge.lua <ws-url>")
    assert lines[1:] == ["hangup NORMAL_TEMPORARY_FAILURE", "script returned"]


def test_the_dialplan_hands_the_call_to_ws_bridge() -> None:
    tree = ET.parse(ROOT / "freeswitch" / "dialplan" / "voiceplat.xml")
    actions = [(a.get("application"), a.get("data")) for a in tree.iter("action")]
    assert actions == [("lua", f"ws_bridge.lua {URL}")]
