"""Whole simulated calls recorded into the JSON file, PostgreSQL, MongoDB and Redis, while the
stores are killed (SIGKILL) and restarted, and across a robot restart with a full spool.

Each robot reads POSTGRES_DSN / MONGO_URI / REDIS_URL from its own .env, as in production.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.child_process import output_of, wait_listening
from tests.conftest import FIXTURES, read_call_records
from tests.integration.stored import Stored, from_json_files, from_stores
from tests.storage_servers import StoreEnv, free_port
from voiceplat.robot import load_robot
from voiceplat.simulator import BargeIn, Say, run_call, run_calls
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.redis import CHANNEL
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.storage.spooled_sink import RetryPolicy, SpooledSink
from voiceplat.telephony.server import RobotServer

HELLO = FIXTURES / "ru_hello.wav"
QUESTION = FIXTURES / "ru_question.wav"
STOP = FIXTURES / "ru_stop.wav"
FAST = RetryPolicy(first_delay_s=0.05, max_delay_s=0.5, op_timeout_s=3, close_timeout_s=30)
QUICK_ROBOT = {
    "asr": {"provider": "fake", "texts": ["@dur"], "cycle": True},
    "tts": {"provider": "fake", "ms_per_char": 10},
    "greeting_text": "Алло!",
}


@dataclass
class Served:
    url: str
    robot_dir: Path
    sinks: dict[str, SpooledSink]


@asynccontextmanager
async def serving(robot_dir: Path) -> AsyncIterator[Served]:
    """The robot on a free port with the sinks its env names; stopping it flushes the recorder."""
    robot = load_robot(robot_dir)
    sinks = sinks_from_env(robot.env, robot.logs_dir, robot_dir / "spool", retry=FAST)
    recorder = Recorder(sinks)
    await recorder.start()
    await robot.start()
    server = RobotServer(robot, recorder)
    await server.start("127.0.0.1", 0)
    stores = {s.name: s for s in sinks if isinstance(s, SpooledSink)}
    try:
        yield Served(f"ws://127.0.0.1:{server.port}/", robot_dir, stores)
    finally:
        await server.shutdown(grace_s=5)
        await recorder.aclose()
        await robot.aclose()


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def json_records(robot_dir: Path) -> dict[str, Stored]:
    return from_json_files(read_call_records(robot_dir))


async def assert_everywhere_once(stores: StoreEnv, robot_dir: Path, calls: int) -> None:
    expected = json_records(robot_dir)
    assert len(expected) == calls
    assert all(s.status == "completed" and s.turn_count >= 3 for s in expected.values())
    for store, stored in (await from_stores(stores.env)).items():
        assert stored.keys() == expected.keys(), store
        for call_id, record in expected.items():
            assert stored[call_id] == record, (store, call_id)


@pytest.fixture
def stored_robot(make_robot: Callable[..., Path], stores: StoreEnv) -> Callable[..., Path]:
    def make(**overrides: object) -> Path:
        robot = make_robot(**{**QUICK_ROBOT, **overrides})
        (robot / ".env").write_text(stores.env_file())
        return robot

    return make


async def test_calls_land_in_all_four_sinks_alike(stored_robot, stores: StoreEnv) -> None:
    robot = stored_robot(
        llm={
            "provider": "fake",
            "reply": "Первое предложение ответа. Второе предложение ответа. Третье предложение.",
        },
        tts={"provider": "fake", "ms_per_char": 60},
    )
    import redis.asyncio as aioredis

    events = aioredis.from_url(stores.env["REDIS_URL"], decode_responses=True)
    pubsub = events.pubsub()
    await pubsub.subscribe(CHANNEL)
    async with serving(robot) as served:
        barge = run_call(
            served.url, [Say(HELLO), BargeIn(STOP)], barge_in_after_s=1.0, keep_audio=False
        )
        plain = run_calls(served.url, [Say(QUESTION)], 3)
        barge_result, plain_result = await asyncio.gather(barge, plain)
    assert barge_result.ok and not plain_result.errors

    await assert_everywhere_once(stores, robot, 4)
    records = read_call_records(robot)
    (cut,) = [t for r in records for t in r["turns"] if t["interrupted"]]
    assert cut["heard_text"]  # and, per assert_everywhere_once, the same in every store

    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(60):  # only a hang: the messages are published as calls end
        while sum(m["type"] == "call_ended" for m in messages) < 4:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                messages.append(json.loads(message["data"]))
    await pubsub.aclose()
    await events.aclose()
    by_type: dict[str, set[str]] = {}
    for message in messages:
        by_type.setdefault(message["type"], set()).add(message["call_id"])
    call_ids = {r["call"]["call_id"] for r in records}
    assert by_type["call_started"] == by_type["call_ended"] == by_type["turn"] == call_ids
    assert by_type["barge_in"] == {cut["call_id"]}
    assert not any(m.get("replayed") for m in messages)


@pytest.mark.parametrize("store", ["postgres", "mongo", "redis"])
async def test_a_store_killed_in_the_middle_of_calls_loses_and_duplicates_nothing(
    store: str, stored_robot, stores: StoreEnv
) -> None:
    robot = stored_robot()
    server = getattr(stores.servers, store)
    n = 20
    async with serving(robot) as served:
        sink = served.sinks[store]
        calls = asyncio.create_task(run_calls(served.url, [Say(QUESTION), Say(QUESTION)], n))
        await until(lambda: sink.written >= n, "the first writes")
        server.kill()
        await until(lambda: not sink.available, f"the {store} sink to notice")
        assert not calls.done()  # the kill hit the middle of the calls
        await until(lambda: sink.spool.pending > 0, "items to pile up in the spool")
        server.start()
        result = await calls
        assert not result.errors, result.errors  # every caller was served meanwhile
    assert sink.outages >= 1 and sink.spool.pending == 0
    await assert_everywhere_once(stores, robot, n)


async def test_a_robot_restart_writes_the_spool_left_by_the_last_run(
    stored_robot, stores: StoreEnv
) -> None:
    robot = stored_robot()
    servers = stores.servers
    try:
        for server in (servers.postgres, servers.mongo, servers.redis):
            server.kill()
        async with serving(robot) as served:
            assert not any(sink.available for sink in served.sinks.values())
            result = await run_calls(served.url, [Say(QUESTION)], 5)
            assert not result.errors  # calls are answered with every store down
        for name in ("postgres", "mongo", "redis"):
            assert (robot / "spool" / f"{name}.jsonl").stat().st_size > 0
    finally:
        for server in (servers.postgres, servers.mongo, servers.redis):
            server.start()

    async with serving(robot) as served:  # the next start writes what the last one left
        async with asyncio.timeout(30):
            for sink in served.sinks.values():
                await sink.drained()
    await assert_everywhere_once(stores, robot, 5)
    for name in ("postgres", "mongo", "redis"):
        assert (robot / "spool" / f"{name}.jsonl").stat().st_size == 0


async def test_sigterm_with_a_store_down_keeps_the_records_in_the_spool(make_robot) -> None:
    """`voiceplat serve` stopped by SIGTERM while PostgreSQL is unreachable: it exits 0, and the
    call's records wait in the spool for the next start."""
    robot = make_robot(**QUICK_ROBOT)
    (robot / ".env").write_text(f"POSTGRES_DSN=postgresql://nobody@127.0.0.1:{free_port()}/x\n")
    port = free_port()
    log_path = robot / "serve.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "voiceplat.cli", "serve", str(robot), "--host", "127.0.0.1"],
            *["--port", str(port), "--grace", "5"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        await wait_listening(process, port, log_path)  # a child that died fails with its output
        result = await run_call(f"ws://127.0.0.1:{port}/", [Say(QUESTION)], keep_audio=False)
        assert result.ok, (result.errors, output_of(log_path))
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):  # --grace 5: only a hang takes this long
                returncode = await process.wait()
        except TimeoutError:
            raise AssertionError(f"no exit after SIGTERM:\n{output_of(log_path)}") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = log_path.read_text()
    assert returncode == 0, output
    assert "postgres: store unavailable" in output
    kinds = [json.loads(line)["k"] for line in (robot / "spool" / "postgres.jsonl").open()]
    finished = kinds.index("finished")
    assert kinds[0] == "opened" and "turn" in kinds[:finished]
    assert set(kinds[finished + 1 :]) <= {"amended"}  # the summary written after the call
    (record,) = read_call_records(robot)  # the JSON file was written as usual
    assert record["call"]["status"] == "completed"
