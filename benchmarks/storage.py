"""Storage benchmark: how fast call records go into the stores, and whether live calls notice a
store going down or a spool being replayed.

    .venv/bin/python benchmarks/storage.py               # about 3 minutes
    .venv/bin/python benchmarks/storage.py --quick       # a smoke run
    .venv/bin/python benchmarks/storage.py --json /tmp/storage.json

It starts its own PostgreSQL 15, Redis and SecantusDB (MongoDB protocol) on free ports in a
temporary folder, as the tests do (tests/storage_servers.py; `scripts/setup.sh test` installs them).

1. Throughput: the recorder driven directly with synthetic calls (open, N turns with latencies,
   two pipeline events per turn and a barge-in, finish), as fast as the producer can, into one
   store at a time and then into all of them (plus the JSON file). Figures: calls/s and turns/s
   until everything is written; the recorder's queue depth (what waits in memory) and the spool
   backlog (what waits on disk) at their highest.
2. Live calls: a `voiceplat serve` robot with fake providers and all stores configured, N
   simultaneous simulated calls (two utterances each) per row; the jitter of the robot audio at
   the caller (simulator/report.py) with the stores up, with every store SIGKILLed, and after a
   restart while the robot replays a large spool (left by the outage plus a synthetic backlog).

Prints Markdown tables; asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file: the repository root goes first on sys.path, for `benchmarks` and
# `tests.storage_servers`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from benchmarks.common import FIXTURES, RobotProcess, echo_robot, markdown
from tests.storage_servers import StorageServers, start_servers, stop_servers
from voiceplat.simulator import MultiResult, Say, Step, run_calls
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import CallRecord, RecordItem, TurnRecord, utcnow
from voiceplat.storage.sinks import sinks_from_env
from voiceplat.storage.spooled_sink import RetryPolicy, SpooledSink

QUESTION = FIXTURES / "ru_question.wav"
BENCH = RetryPolicy(first_delay_s=0.1, max_delay_s=1.0, close_timeout_s=600)


# --- 1. throughput ----------------------------------------------------------------------------


def synthetic_call(recorder: Any, n: int, turns: int) -> None:
    """One call's records, as a session makes them (the recorder or a collector takes them)."""
    call_id = f"bench-{n:07d}"
    start = utcnow()
    log = recorder.open_call(
        CallRecord(
            call_id=call_id,
            robot="bench",
            mode="pipeline",
            caller=f"+7999{n:07d}",
            started_at=start,
            answered_at=start,
            metadata={"campaign": "bench", "n": n},
        )
    )
    for idx in range(turns):
        user = idx % 2 == 1
        log.event("speech_start" if user else "tts_first_audio", turn=idx)
        log.add_turn(
            TurnRecord(
                call_id=call_id,
                idx=idx,
                role="user" if user else "robot",
                text="Хочу записаться на завтра" if user else "Конечно, на какое время?",
                started_at=start + timedelta(seconds=idx),
                asr_ms=120.0 if user else None,
                llm_ttft_ms=None if user else 250.0,
                tts_ttfb_ms=None if user else 90.0,
                v2v_ms=None if user else 800.0,
            )
        )
        log.event("asr_done" if user else "llm_first_token", turn=idx)
    log.event("barge_in", turn=turns - 1, heard_ms=500)
    log.finish("completed", "caller_hangup", ended_at=start + timedelta(seconds=turns + 1))


@dataclass
class Throughput:
    stores: str
    calls: int
    turns: int
    seconds: float
    queue_max: int
    spool_max: int
    rejected: int

    def row(self) -> list[Any]:
        return [
            self.stores,
            self.calls,
            round(self.calls / self.seconds, 1),
            round(self.turns / self.seconds, 1),
            round(self.seconds, 2),
            self.queue_max,
            self.spool_max,
            self.rejected,
        ]


async def throughput(env: dict[str, str], label: str, calls: int, turns: int) -> Throughput:
    folder = Path(tempfile.mkdtemp(prefix="voiceplat-bench-"))
    sinks = sinks_from_env(env, folder / "logs", folder / "spool", retry=BENCH)
    stores = [s for s in sinks if isinstance(s, SpooledSink)]
    if "jsonfile" not in label:
        sinks = [*stores]
    recorder = Recorder(sinks, queue_size=100_000)
    await recorder.start()
    queue_max = 0

    async def watch() -> None:
        nonlocal queue_max
        while True:  # the recorder's queues are private; a benchmark may peek
            queue_max = max(queue_max, *(w.queue.qsize() for w in recorder._workers))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    for n in range(calls):
        synthetic_call(recorder, n, turns)
        await asyncio.sleep(0)  # a loop turn per call, as live sessions would give
    await recorder.aclose()  # returns once every sink has written everything
    seconds = time.perf_counter() - started
    watcher.cancel()
    shutil.rmtree(folder, ignore_errors=True)
    return Throughput(
        label,
        calls,
        calls * turns,
        seconds,
        queue_max,
        max((s.max_pending for s in stores), default=0),
        sum(s.rejected for s in stores),
    )


async def throughput_rows(servers: StorageServers, calls: int, turns: int) -> list[Throughput]:
    rows = []
    labels = ["jsonfile", "postgres", "mongo", "redis", "jsonfile+postgres+mongo+redis"]
    for i, label in enumerate(labels):
        database = f"bench_{i}"
        servers.postgres.psql(f"CREATE DATABASE {database}")
        full = {
            "POSTGRES_DSN": servers.postgres.dsn(database),
            "MONGO_URI": servers.mongo.uri(database),
            "REDIS_URL": servers.redis.url(i),
        }
        keys = {"postgres": "POSTGRES_DSN", "mongo": "MONGO_URI", "redis": "REDIS_URL"}
        env = {
            k: v
            for k, v in full.items()
            if any(keys[s] == k for s in label.split("+") if s in keys)
        }
        rows.append(await throughput(env, label, calls, turns))
        print(f"  {label}: {rows[-1].calls / rows[-1].seconds:.1f} calls/s", flush=True)
    return rows


# --- 2. live calls ----------------------------------------------------------------------------


def serve(robot: Path) -> RobotProcess:
    """The robot in its own process, run from its parent folder (so no .env of the checkout adds to
    its env), with the time to write what is spooled when it stops."""
    return RobotProcess(robot, grace_s=5, cwd=robot.parent, stop_timeout_s=120)


def spool_backlog(robot: Path) -> int:
    """Bytes not yet written, over the robot's spool files (a running robot's, read from disk)."""
    total = 0
    for path in (robot / "spool").glob("*.jsonl"):
        offset_path = path.with_suffix(".offset")
        raw = offset_path.read_bytes().strip() if offset_path.exists() else b""
        total += max(0, path.stat().st_size - (int(raw) if raw.isdigit() else 0))
    return total


async def add_backlog(robot: Path, env: dict[str, str], calls: int, turns: int) -> None:
    """Appends synthetic calls to a stopped robot's spools, as a long outage would leave them."""

    class Collector:
        def __init__(self) -> None:
            self.items: list[RecordItem] = []

        def publish(self, item: RecordItem) -> None:
            self.items.append(item)

        def open_call(self, call: CallRecord) -> Any:
            from voiceplat.storage.recorder import CallLog
            from voiceplat.storage.records import CallOpened

            self.publish(CallOpened(call))
            return CallLog(self, call, utcnow)  # type: ignore[arg-type]

    collector = Collector()
    for n in range(calls):
        synthetic_call(collector, 1_000_000 + n, turns)
    for sink in sinks_from_env(env, robot / "logs", robot / "spool"):
        if isinstance(sink, SpooledSink):
            sink.spool.open()
            for item in collector.items:
                await sink.handle(item)
            sink.spool.close()


@dataclass
class LiveRow:
    phase: str
    result: MultiResult
    backlog_start: int = 0
    backlog_end: int = 0

    def row(self) -> list[Any]:
        jitter = self.result.jitter_ms
        return [
            self.phase,
            f"{self.result.completed}/{self.result.calls_total}",
            jitter.p50,
            jitter.p95,
            jitter.p99,
            jitter.max,
            self.result.underruns,
            self.result.v2v_ms.p50,
            self.result.sim_lag_ms.p99,
            f"{self.backlog_start / 1e6:.1f} → {self.backlog_end / 1e6:.1f}"
            if self.backlog_start
            else "-",
        ]


async def live_rows(
    servers: StorageServers, folder: Path, n: int, backlog_calls: int, turns: int
) -> list[LiveRow]:
    servers.postgres.psql("CREATE DATABASE bench_live")
    env = {
        "POSTGRES_DSN": servers.postgres.dsn("bench_live"),
        "MONGO_URI": servers.mongo.uri("bench_live"),
        "REDIS_URL": servers.redis.url(15),
    }
    robot = echo_robot(folder / "robots" / "bench")
    (robot / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    script: list[Step] = [Say(QUESTION), Say(QUESTION)]
    rows = []
    stores = (servers.postgres, servers.mongo, servers.redis)

    process = serve(robot)
    try:
        await run_calls(process.url, script, 2, keep_audio=False)  # warm-up
        rows.append(LiveRow("stores up", await run_calls(process.url, script, n, keep_audio=False)))
        print("  stores up: done", flush=True)
        for server in stores:
            server.kill()
        rows.append(
            LiveRow(
                "every store SIGKILLed", await run_calls(process.url, script, n, keep_audio=False)
            )
        )
        print("  stores down: done", flush=True)
    finally:
        process.stop()  # the stores are down: the spool stays for the next start

    await add_backlog(robot, env, backlog_calls, turns)
    for server in stores:
        server.start()
    backlog = spool_backlog(robot)
    process = serve(robot)  # replays the spool from its start
    try:
        result = await run_calls(process.url, script, n, keep_audio=False)
        rows.append(LiveRow("restarted, spool replaying", result, backlog, spool_backlog(robot)))
        print("  replay: done", flush=True)
        replay_started = time.monotonic()
        while True:  # another process's spool: only its files tell
            if not spool_backlog(robot):
                break
            await asyncio.sleep(0.2)
        print(
            f"  spool drained {time.monotonic() - replay_started:.1f} s after the calls", flush=True
        )
    finally:
        process.stop()
    return rows


# --- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="voiceplat-bench-stores-"))
    os.chmod(root, 0o755)
    servers = start_servers(root)
    try:
        print("throughput…", flush=True)
        rates = await throughput_rows(servers, args.calls, args.turns)
        print("live calls…", flush=True)
        live = await live_rows(servers, root, args.live_calls, args.backlog_calls, args.turns)
    finally:
        stop_servers(servers)
        shutil.rmtree(root, ignore_errors=True)

    print(f"\n### Throughput: {args.calls} synthetic calls of {args.turns} turns per row\n")
    print(
        markdown(
            ["stores", "calls", "calls/s", "turns/s", "s", "queue max", "spool max", "rejected"],
            [r.row() for r in rates],
        )
    )
    print(
        f"\n### Live calls: {args.live_calls} simultaneous calls per row; robot audio jitter (ms)"
        f" at the caller; synthetic backlog {args.backlog_calls} calls\n"
    )
    print(
        markdown(
            [
                "phase",
                "ok",
                "p50",
                "p95",
                "p99",
                "max",
                "underruns",
                "v2v p50",
                "sim lag p99",
                "spool MB start → end",
            ],
            [r.row() for r in live],
        )
    )
    return {
        "throughput": [r.__dict__ for r in rates],
        "live": [
            {"phase": r.phase, "backlog": [r.backlog_start, r.backlog_end], **r.result.model_dump()}
            for r in live
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=1000, help="synthetic calls per throughput row"
    )
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--live-calls", type=int, default=20)
    parser.add_argument("--backlog-calls", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.live_calls, args.backlog_calls = 100, 5, 200
    logging.basicConfig(level=logging.ERROR)
    figures = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
