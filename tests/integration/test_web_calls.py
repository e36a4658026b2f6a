"""The calls pages and /api/calls over records written by the real sinks: the robots' JSON files
(the embedded default) and a real PostgreSQL (tests/storage_servers.py), with the same checks.

Calls are recorded through the Recorder with a clock the test sets, so every time in them (start,
turns, pipeline events) is known, and the filters' answers can be stated exactly.
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.storage_servers import free_port
from voiceplat.robot import Robot, load_robot
from voiceplat.storage.jsonfile import JsonFileSink
from voiceplat.storage.live import LiveCalls
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import CallRecord, CallSnapshot, TurnRecord
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.web.app import create_app
from voiceplat.web.calls.store import call_store_for
from voiceplat.web.context import WebContext
from voiceplat.web.live_source import InProcessLive
from voiceplat.web.settings import WebSettings

FIXTURE_ROBOTS = Path(__file__).resolve().parents[1] / "fixtures" / "robots"
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def at(seconds: float, day: int = 0) -> datetime:
    return T0 + timedelta(days=day, seconds=seconds)


@dataclass
class World:
    robots: dict[str, Robot]
    root: Path

    def robot(self, name: str) -> Robot:
        return self.robots[name]


@pytest.fixture
def world(tmp_path: Path) -> World:
    robots = {}
    for name in ("echo", "clinic_fake"):
        shutil.copytree(FIXTURE_ROBOTS / name, tmp_path / name)
        robots[name] = load_robot(tmp_path / name, root_dir=tmp_path)
    return World(robots, tmp_path)


def write_wav(path: Path, seconds: float = 1.0) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as file:
        file.setnchannels(2)
        file.setsampwidth(2)
        file.setframerate(8000)
        file.writeframes(bytes(range(256)) * int(seconds * 8000 * 4 / 256))
    return path.read_bytes()


async def record_calls(world: World, env: dict[str, str]) -> None:
    """Three calls on two robots, over three days, written by the sinks `env` names."""
    clock = Clock()
    recorders = {
        name: Recorder(
            sinks_from_env(env, robot.logs_dir, world.root / f"spool-{name}"), clock=clock
        )
        for name, robot in world.robots.items()
    }
    for recorder in recorders.values():
        await recorder.start()
    echo_dir = world.robot("echo").directory

    # alpha: echo, a booking, a barge-in, latency figures, a recording.
    clock.now = at(0)
    alpha = recorders["echo"].open_call(
        CallRecord(
            call_id="c-alpha",
            robot="echo",
            mode="pipeline",
            caller="+79990001111",
            started_at=at(0),
            answered_at=at(0),
            recording=str(echo_dir / "recordings" / "c-alpha.wav"),
        )
    )
    alpha.add_turn(
        TurnRecord(
            call_id="c-alpha",
            idx=0,
            role="robot",
            text="Здравствуйте! Чем помочь?",
            started_at=at(0.2),
            ended_at=at(2),
            tts_ttfb_ms=80.0,
        )
    )
    alpha.add_turn(
        TurnRecord(
            call_id="c-alpha",
            idx=1,
            role="user",
            text="Хочу записаться к врачу",
            started_at=at(3),
            ended_at=at(5),
            asr_ms=120.0,
        )
    )
    clock.now = at(5.5)  # recognition started 380 ms after the caller stopped: the endpoint
    alpha.event("asr_done", ms=120, text="Хочу записаться к врачу")
    alpha.add_turn(
        TurnRecord(
            call_id="c-alpha",
            idx=2,
            role="robot",
            text="Конечно. На какой день?",
            heard_text="Конечно.",
            interrupted=True,
            started_at=at(5.5),
            ended_at=at(7),
            llm_ttft_ms=200.0,
            tts_ttfb_ms=90.0,
            v2v_ms=700.0,
        )
    )
    clock.now = at(5.8)
    alpha.event("first_sentence", turn=2, ms=260)
    clock.now = at(6.5)
    alpha.event("barge_in", turn=2, heard_ms=700)
    alpha.finish("completed", "caller_hangup", ended_at=at(30))

    # beta: clinic_fake, the next day, failed on an LLM error.
    clock.now = at(0, day=1)
    beta = recorders["clinic_fake"].open_call(
        CallRecord(
            call_id="c-beta",
            robot="clinic_fake",
            mode="pipeline",
            caller="+79995552222",
            started_at=at(0, day=1),
        )
    )
    beta.add_turn(
        TurnRecord(
            call_id="c-beta",
            idx=0,
            role="robot",
            text="Ошибка связи",
            started_at=at(1, day=1),
            error="LLM timeout after 10 s",
            v2v_ms=1500.0,
        )
    )
    clock.now = at(2, day=1)
    beta.event("error", turn=0, detail="LLM timeout after 10 s")
    beta.finish("failed", "error", ended_at=at(5, day=1))

    # gamma: echo, two days later, nobody spoke.
    clock.now = at(0, day=2)
    gamma = recorders["echo"].open_call(
        CallRecord(
            call_id="c-gamma",
            robot="echo",
            mode="pipeline",
            caller="+79990003333",
            started_at=at(0, day=2),
        )
    )
    gamma.add_turn(
        TurnRecord(
            call_id="c-gamma",
            idx=0,
            role="robot",
            text="Скидка 50% до пятницы",
            started_at=at(1, day=2),
            v2v_ms=400.0,
        )
    )
    gamma.finish("completed", "no_input", ended_at=at(62, day=2))
    for recorder in recorders.values():
        await recorder.aclose()


def client_for(world: World, env: dict[str, str]) -> tuple[httpx.AsyncClient, WebContext]:
    context = WebContext(
        settings=WebSettings(),
        robots=world.robots,
        calls=call_store_for(env, world.robots),
        live=InProcessLive(LiveCalls()),
    )
    transport = httpx.ASGITransport(app=create_app(context))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1"), context


@pytest.fixture(params=["json", "postgres"])
async def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "json":
        return {}
    stores = request.getfixturevalue("stores")
    return {"POSTGRES_DSN": stores.env["POSTGRES_DSN"]}


@pytest.fixture
async def api(world: World, store_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    await record_calls(world, store_env)
    client, context = client_for(world, store_env)
    async with client:
        yield client
    await context.calls.aclose()


async def ids(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get("/api/calls", params=params)
    assert response.status_code == 200, response.text
    return [call["call_id"] for call in response.json()["items"]]


FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["c-gamma", "c-beta", "c-alpha"]),  # newest first
    ({"robot": "clinic_fake"}, ["c-beta"]),
    ({"robot": "echo"}, ["c-gamma", "c-alpha"]),
    ({"date_from": "2026-03-11"}, ["c-gamma", "c-beta"]),
    ({"date_to": "2026-03-11"}, ["c-beta", "c-alpha"]),
    ({"date_from": "2026-03-11", "date_to": "2026-03-11"}, ["c-beta"]),
    ({"status": "failed"}, ["c-beta"]),
    ({"status": "in_progress"}, []),
    ({"end_reason": "no_input"}, ["c-gamma"]),
    ({"caller": "0003"}, ["c-gamma"]),
    ({"min_duration_s": 30}, ["c-gamma", "c-alpha"]),
    ({"max_duration_s": 30}, ["c-beta", "c-alpha"]),
    ({"min_duration_s": 10, "max_duration_s": 40}, ["c-alpha"]),
    ({"text": "записаться"}, ["c-alpha"]),
    ({"text": "КОНЕЧНО"}, ["c-alpha"]),  # case-insensitive, Cyrillic too
    ({"text": "%"}, ["c-gamma"]),  # a literal percent sign, not a wildcard
    ({"text": "врач", "robot": "clinic_fake"}, []),
    ({"robot": "", "text": "", "date_from": ""}, ["c-gamma", "c-beta", "c-alpha"]),  # a blank form
    ({"text": "   "}, ["c-gamma", "c-beta", "c-alpha"]),
]


async def test_each_filter(api: httpx.AsyncClient) -> None:
    # One recording of the calls for all of them: each filter's answer is checked on its own.
    found = {str(params): await ids(api, **params) for params, _ in FILTERS}
    assert found == {str(params): expected for params, expected in FILTERS}


async def test_pages_of_the_list(api: httpx.AsyncClient) -> None:
    first = (await api.get("/api/calls", params={"per_page": 2})).json()
    second = (await api.get("/api/calls", params={"per_page": 2, "page": 2})).json()
    beyond = (await api.get("/api/calls", params={"per_page": 2, "page": 3})).json()
    assert [c["call_id"] for c in first["items"]] == ["c-gamma", "c-beta"]
    assert [c["call_id"] for c in second["items"]] == ["c-alpha"]
    assert beyond["items"] == []
    assert first["total"] == second["total"] == beyond["total"] == 3
    assert second["page"] == 2 and second["per_page"] == 2


async def test_one_call(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/calls/c-alpha")
    assert response.status_code == 200
    body = response.json()
    assert body["call"]["caller"] == "+79990001111"
    assert body["call"]["duration_sec"] == 30.0
    assert body["call"]["recording"].endswith("/echo/recordings/c-alpha.wav")
    assert [t["text"] for t in body["turns"]][1] == "Хочу записаться к врачу"
    assert body["turns"][2]["heard_text"] == "Конечно." and body["turns"][2]["interrupted"]
    # PostgreSQL keeps no pipeline log: it comes from the robot's JSON file.
    assert [e["event"] for e in body["pipeline_log"]] == ["asr_done", "first_sentence", "barge_in"]


async def test_robot_stats(world: World, store_env: dict[str, str]) -> None:
    await record_calls(world, store_env)
    clinic = world.robot("clinic_fake")
    recorder = Recorder(sinks_from_env(store_env, clinic.logs_dir, world.root / "spool-today"))
    await recorder.start()
    today = recorder.open_call(CallRecord(call_id="c-today", robot="clinic_fake", mode="pipeline"))
    today.finish("completed", "robot_goodbye")
    await recorder.aclose()
    store = call_store_for(store_env, world.robots)
    try:
        clinic_stats = await store.robot_stats("clinic_fake")
        echo = await store.robot_stats("echo")
        last_one = await store.robot_stats("echo", last_calls=1)
        nobody = await store.robot_stats("nobody")
    finally:
        await store.aclose()
    assert echo.v2v_ms == [700.0, 400.0]  # robot turns with a v2v, oldest call first
    assert echo.v2v_p50_ms == pytest.approx(550.0)
    assert echo.v2v_p95_ms == pytest.approx(685.0)  # interpolated, as percentile_cont
    assert echo.end_reasons == {"caller_hangup": 1, "no_input": 1}
    assert echo.calls_today == 0  # recorded in March
    assert last_one.v2v_ms == [400.0] and last_one.end_reasons == {"no_input": 1}
    assert clinic_stats.calls_today == 1  # c-today; c-beta was in March
    assert clinic_stats.end_reasons == {"error": 1, "robot_goodbye": 1}
    assert nobody.v2v_p50_ms is None and nobody.v2v_ms == [] and nobody.calls_today == 0


async def test_bad_queries_get_a_clear_422(api: httpx.AsyncClient) -> None:
    cases: dict[str, dict[str, Any]] = {
        "date_to (2026-03-10) is before date_from (2026-03-12)": {
            "date_from": "2026-03-12",
            "date_to": "2026-03-10",
        },
        "date_from": {"date_from": "yesterday"},
        "max_duration_s (5) is below min_duration_s (10)": {
            "min_duration_s": 10,
            "max_duration_s": 5,
        },
        "per_page": {"per_page": 500},
        "page": {"page": 0},
        "status": {"status": "bogus"},
    }
    for expected, params in cases.items():
        response = await api.get("/api/calls", params=params)
        assert response.status_code == 422, params
        assert expected in response.json()["detail"], response.json()


async def test_unknown_and_malformed_call_ids(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/calls/no-such-call")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no call 'no-such-call'"
    assert (await api.get("/calls/no-such-call")).status_code == 404
    for bad in ("a..b", "a%5Cb", "x" * 201):
        response = await api.get(f"/api/calls/{bad}")
        assert response.status_code == 422, bad
        assert "not a call id" in response.json()["detail"]
    # The client or the router takes these apart before any store sees them.
    for path in (
        "/api/calls/..",
        "/api/calls/..%2F..%2Fetc%2Fpasswd",
        "/api/calls/x%2F..%2Fc-alpha/recording",
    ):
        assert (await api.get(path)).status_code in (404, 422), path


async def test_recording_is_served_with_ranges(world: World, api: httpx.AsyncClient) -> None:
    wav = write_wav(world.robot("echo").directory / "recordings" / "c-alpha.wav")
    whole = await api.get("/api/calls/c-alpha/recording")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.content == wav
    part = await api.get("/api/calls/c-alpha/recording", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(wav)}"
    assert part.content == wav[100:200]
    none = await api.get("/api/calls/c-gamma/recording")
    assert none.status_code == 404 and none.json()["detail"] == "call 'c-gamma' has no recording"


async def test_an_unreachable_database_is_a_503(world: World) -> None:
    env = {"POSTGRES_DSN": f"postgresql://postgres@127.0.0.1:{free_port()}/voiceplat"}
    client, context = client_for(world, env)
    async with client:
        api_answer = await client.get("/api/calls")
        page = await client.get("/calls")
        one = await client.get("/api/calls/c-alpha")
    await context.calls.aclose()
    assert api_answer.status_code == 503
    assert "PostgreSQL is not reachable" in api_answer.json()["detail"]
    assert page.status_code == 503 and "PostgreSQL is not reachable" in page.text
    assert one.status_code == 503


# --- the JSON store only: recordings, odd files, a cache that follows the folder ---------------


@pytest.fixture
async def json_api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    await record_calls(world, {})
    client, context = client_for(world, {})
    async with client:
        yield client
    await context.calls.aclose()


async def test_recording_paths_outside_the_folder_are_refused(
    world: World, json_api: httpx.AsyncClient
) -> None:
    echo = world.robot("echo")
    recordings = echo.directory / "recordings"
    write_wav(recordings / "real.wav")
    outside = write_wav(world.root / "outside.wav")
    (recordings / "link.wav").symlink_to(world.root / "outside.wav")
    tricks = {
        "abs": str(world.root / "outside.wav"),
        "dotdot": str(recordings / ".." / ".." / "outside.wav"),
        "relative": "../../outside.wav",
        "link": str(recordings / "link.wav"),
        "config": str(echo.directory / "config.json"),
        "etc": "/etc/hostname",
        "nul": str(recordings / "real.wav") + "\x00.wav",
    }
    sink = JsonFileSink(echo.logs_dir)
    for name, recording in tricks.items():
        call = CallRecord(
            call_id=f"trick-{name}",
            robot="echo",
            mode="pipeline",
            recording=recording,
            status="completed",
        )
        await sink.write(CallSnapshot(call=call))
    # A call naming another robot's folder: the robot that made it is not served here.
    stranger = CallRecord(
        call_id="trick-stranger",
        robot="elsewhere",
        mode="pipeline",
        recording=str(recordings / "real.wav"),
    )
    await sink.write(CallSnapshot(call=stranger))
    for name in [*tricks, "stranger"]:
        response = await json_api.get(f"/api/calls/trick-{name}/recording")
        assert response.status_code == 404, name
        assert response.content != outside
    page = await json_api.get("/calls/trick-link")
    assert page.status_code == 200 and "<audio" not in page.text


async def test_corrupt_files_are_skipped(
    world: World, json_api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    logs = world.robot("echo").logs_dir
    (logs / "20260101_000000_sip_broken.json").write_text('{"call": {"call_id": ')
    (logs / "20260101_000001_sip_other.json").write_text('{"something": "else"}')
    (logs / ".20260101_000002_sip_x.json.abc.tmp").write_text("{")  # a write in progress
    assert await ids(json_api) == ["c-gamma", "c-beta", "c-alpha"]
    assert (await json_api.get("/calls")).status_code == 200
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2 and any("broken.json" in line for line in skipped)
    caplog.clear()
    await ids(json_api)  # the same bad files are not parsed (nor logged) again
    assert not [r for r in caplog.records if "skipping" in r.getMessage()]


async def test_the_list_follows_the_folder(world: World, json_api: httpx.AsyncClient) -> None:
    assert await ids(json_api, robot="clinic_fake") == ["c-beta"]
    logs = world.robot("clinic_fake").logs_dir
    (beta_file,) = logs.glob("*c-beta.json")
    beta_file.unlink()
    call = CallRecord(call_id="c-delta", robot="clinic_fake", mode="pipeline", started_at=at(0, 5))
    await JsonFileSink(logs).write(CallSnapshot(call=call))
    assert await ids(json_api, robot="clinic_fake") == ["c-delta"]


# --- pages -------------------------------------------------------------------------------------


async def test_calls_page_filters_and_pages(json_api: httpx.AsyncClient) -> None:
    page = await json_api.get("/calls")
    assert page.status_code == 200
    assert all(f'href="/calls/{cid}"' in page.text for cid in ("c-alpha", "c-beta", "c-gamma"))
    assert '<form class="filters" method="get"' in page.text
    failed = page.text.split('href="/calls/c-beta"')[0].rsplit("<tr", 1)[1]
    assert "error" in failed  # the failed call's row is highlighted

    echo = await json_api.get("/calls", params={"robot": "echo", "text": "", "per_page": 1})
    assert 'href="/calls/c-gamma"' in echo.text and 'href="/calls/c-alpha"' not in echo.text
    assert 'href="/calls?robot=echo&amp;per_page=1&amp;page=2"' in echo.text  # filters kept
    second = await json_api.get("/calls", params={"robot": "echo", "per_page": 1, "page": 2})
    assert 'href="/calls/c-alpha"' in second.text
    assert 'href="/calls?robot=echo&amp;per_page=1&amp;page=1"' in second.text

    bad = await json_api.get("/calls", params={"date_from": "2026-03-12", "date_to": "2026-03-10"})
    assert bad.status_code == 422
    assert "date_to (2026-03-10) is before date_from (2026-03-12)" in bad.text
    assert 'value="2026-03-12"' in bad.text  # the form keeps what was typed


async def test_call_page_shows_transcript_player_and_waterfall(
    world: World, json_api: httpx.AsyncClient
) -> None:
    write_wav(world.robot("echo").directory / "recordings" / "c-alpha.wav")
    page = await json_api.get("/calls/c-alpha")
    assert page.status_code == 200
    html = page.text
    assert "Хочу записаться к врачу" in html
    assert '<span class="heard" title="what the caller heard">Конечно.</span>' in html
    assert "На какой день?" in html and "interrupted" in html
    assert (
        '<audio id="player" controls preload="metadata" src="/api/calls/c-alpha/recording">' in html
    )
    # Turn marks at their start in the recording: 0.2 s, 3 s, 5.5 s after the call started.
    for offset in ("0.200", "3.000", "5.500"):
        assert f'class="seek" data-offset="{offset}"' in html
        assert f'data-offset="{offset}"' in html.split('id="timeline"')[1]
    waterfall = html.split('id="waterfall"')[1].split("Pipeline log")[0]
    for label, ms in [
        ("endpoint silence", 380),
        ("ASR", 120),
        ("LLM first token", 200),
        ("first clause", 260),
        ("TTS first audio", 90),
        ("v2v", 700),
    ]:
        assert f'<span class="fall-label">{label}</span>' in waterfall, label
        assert f"{label}: {ms} ms" in waterfall, label
    log_table = html.split("Pipeline log")[1]
    assert "{&#34;ms&#34;: 120, &#34;text&#34;: &#34;Хочу записаться к врачу&#34;}" in log_table
    assert "call.js" in html
    assert (await json_api.get("/static/call.js")).status_code == 200


async def test_call_page_highlights_errors(json_api: httpx.AsyncClient) -> None:
    html = (await json_api.get("/calls/c-beta")).text
    assert 'class="turn robot error"' in html
    assert '<div class="error">LLM timeout after 10 s</div>' in html
    log_table = html.split("Pipeline log")[1]
    assert '<tr class="error">' in log_table and "LLM timeout after 10 s" in log_table
    assert "No recording of this call" in html


async def test_what_callers_said_is_shown_as_text_not_markup(
    world: World, json_api: httpx.AsyncClient
) -> None:
    call = CallRecord(call_id="c-xss", robot="echo", mode="pipeline", caller="<b>+7</b>")
    turn = TurnRecord(call_id="c-xss", idx=0, role="user", text="<script>alert(1)</script>")
    await JsonFileSink(world.robot("echo").logs_dir).write(CallSnapshot(call=call, turns=[turn]))
    for url in ("/calls/c-xss", "/calls?text=alert"):
        html = (await json_api.get(url)).text
        assert "<script>alert" not in html and "<b>+7</b>" not in html, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (await json_api.get("/calls/c-xss")).text
