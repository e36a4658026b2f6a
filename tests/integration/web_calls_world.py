"""The world the calls pages' tests look at: two fixture robots, three calls on them recorded
through the real sinks (the robots' JSON files, or a real PostgreSQL) with a clock the test sets,
and an in-process client of the web service over them.
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

from voiceplat.robot import Robot, load_robot
from voiceplat.storage.live import LiveCalls
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import CallRecord, TurnRecord
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


@pytest.fixture(name="world")
def world_fixture(tmp_path: Path) -> World:
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


@pytest.fixture(name="store_env", params=["json", "postgres"])
async def store_env_fixture(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "json":
        return {}
    stores = request.getfixturevalue("stores")
    return {"POSTGRES_DSN": stores.env["POSTGRES_DSN"]}


@pytest.fixture(name="api")
async def api_fixture(world: World, store_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    await record_calls(world, store_env)
    client, context = client_for(world, store_env)
    async with client:
        yield client
    await context.calls.aclose()


async def ids(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get("/api/calls", params=params)
    assert response.status_code == 200, response.text
    return [call["call_id"] for call in response.json()["items"]]


@pytest.fixture(name="json_api")
async def json_api_fixture(world: World) -> AsyncIterator[httpx.AsyncClient]:
    await record_calls(world, {})
    client, context = client_for(world, {})
    async with client:
        yield client
    await context.calls.aclose()
