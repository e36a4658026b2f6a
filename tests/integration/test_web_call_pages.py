"""The calls pages over the robots' JSON files, and what only the JSON store does: refuse
recordings outside a robot's folder, skip odd files, follow the folder as it changes.

The calls are those of tests/integration/web_calls_world.py (three calls, times known).
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.web_calls_world import (  # noqa: F401 (the *_fixture are fixtures)
    World,
    at,
    ids,
    json_api_fixture,
    world_fixture,
    write_wav,
)
from voiceplat.storage.jsonfile import JsonFileSink
from voiceplat.storage.records import CallRecord, CallSnapshot, TurnRecord

# --- the JSON store only: recordings, odd files, a cache that follows the folder ---------------


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
