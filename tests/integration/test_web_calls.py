"""/api/calls and the call stores over records written by the real sinks: the robots' JSON files
(the embedded default) and a real PostgreSQL (tests/storage_servers.py), with the same checks.

Calls are recorded through the Recorder with a clock the test sets (tests/integration/
web_calls_world.py), so every time in them (start, turns, pipeline events) is known, and the
filters' answers can be stated exactly. The pages: test_web_call_pages.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.web_calls_world import (  # noqa: F401 (the *_fixture are fixtures)
    World,
    api_fixture,
    client_for,
    ids,
    record_calls,
    store_env_fixture,
    world_fixture,
    write_wav,
)
from tests.storage_servers import free_port
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import CallRecord
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.web.calls.store import call_store_for

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
