"""Soak: one robot process under a steady load of calls for a long time, watched for leaks.

    .venv/bin/python benchmarks/soak.py                          # 20 minutes, 50 calls at once
    .venv/bin/python benchmarks/soak.py --duration-s 120 --concurrency 10 --outage-every-s 40

The robot is the `echo` test robot (fake ASR, LLM and TTS that answer at once) served by
`voiceplat serve` in its own process (under benchmarks/soak_probe.py, which counts its asyncio
tasks), recording into a real PostgreSQL and Redis that this script starts itself
(tests/storage_servers.py) besides the JSON records. The callers (benchmarks/soak_calls.py) keep
`--concurrency` calls in flight: normal calls, barge-ins, hang-ups in the greeting and TCP
resets mid-call, in the `--mix` proportions. Every `--outage-every-s` one store (in turn) is
SIGKILLed, stays down `--outage-s` and is restarted: the robot spools and replays.

Every `--sample-s` a row: RSS, open fds, asyncio tasks and threads of the robot, calls done,
records in each store, spool backlog, error lines in the robot's log. At the end: growth after
`--warmup-s`, idle before vs after, every call that reached the robot looked up in every store
(lost, unfinished, turn counts against the JSON record), process errors, and the goals met.

Prints Markdown; `--json PATH` writes everything. Asserts nothing (exit code 0 either way).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file: the repository root goes first on sys.path, for `benchmarks` and `tests`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict
from typing import Any

from benchmarks.common import echo_robot
from benchmarks.soak_calls import KINDS, Tally, callers, parse_mix
from benchmarks.soak_report import (
    Idle,
    Sample,
    growth,
    objects_growth,
    record_check,
    sample_row,
    samples_table,
    summary_text,
    to_json,
    turns_differ,
    verdict,
)
from benchmarks.soak_robot import ProbedRobot
from benchmarks.soak_stores import STORES, StoreName, Stores

PROBE_PERIOD_S = 1.0
QUICK_ROBOT = {"tts": {"ms_per_char": 30}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration-s", type=float, default=1200.0, help="how long callers call")
    p.add_argument("--concurrency", type=int, default=50, help="calls in flight")
    p.add_argument("--ramp-s", type=float, default=10.0, help="seconds over which callers start")
    p.add_argument("--mix", default="normal=60,barge_in=20,abrupt=15,hangup=5")
    p.add_argument("--stores", default="postgres,redis", help="postgres,redis or none")
    p.add_argument("--outage-every-s", type=float, default=240.0, help="0: no outages")
    p.add_argument("--outage-s", type=float, default=30.0, help="how long a store stays down")
    p.add_argument("--sample-s", type=float, default=30.0)
    p.add_argument("--warmup-s", type=float, default=180.0, help="growth is measured after it")
    p.add_argument("--drain-timeout-s", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=15)
    p.add_argument(
        "--quick",
        action="store_true",
        help="short calls (a 0.7 s utterance, the fake TTS at 30 ms per character) and a "
        "fast probe: the test's mini soak",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the script, the robot and the stores (negative: ahead of "
        "other work on a shared machine, so what is measured is the robot, not the neighbours; "
        "needs root)",
    )
    p.add_argument("--json", type=Path, help="also write the report to this file")
    p.add_argument("--keep", action="store_true", help="keep the robot's folder and the stores'")
    args = p.parse_args(argv)
    names = [] if args.stores == "none" else [s.strip() for s in args.stores.split(",")]
    unknown = [n for n in names if n not in STORES]
    if unknown:
        p.error(f"unknown store(s) {unknown} (known: {', '.join(STORES)}, or none)")
    args.store_names = tuple(names)
    try:
        args.mix_weights = parse_mix(args.mix)
    except ValueError as exc:
        p.error(str(exc))
    return args


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.stores = Stores(args.store_names, root=work / "stores")
        self.robot_dir = work / "robots" / "soak"
        self.robot: ProbedRobot | None = None
        self.tally = Tally()
        self.samples: list[Sample] = []
        self.robot_died = asyncio.Event()
        self.zero = time.monotonic()
        self.probe_period_s = PROBE_PERIOD_S / 4 if args.quick else PROBE_PERIOD_S

    # --- what is read while it runs -------------------------------------------------------

    def json_records(self) -> dict[str, tuple[str, int]]:
        records = {}
        for path in (self.robot_dir / "logs").glob("*.json"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # being replaced right now (written to a temp file, renamed)
            call = record["call"]
            records[call["call_id"]] = (call["status"], len(record["turns"]))
        return records

    def spool_kb(self) -> float:
        total = 0
        for path in (self.robot_dir / "spool").glob("*.jsonl"):
            offset = path.with_suffix(".offset")
            raw = offset.read_bytes().strip() if offset.exists() else b""
            total += max(0, path.stat().st_size - (int(raw) if raw.isdigit() else 0))
        return total / 1024

    def take_sample(self, steady: bool) -> Sample:
        assert self.robot is not None
        process = self.robot.sample()
        # Files only: parsing thousands of records every sample would take the callers' CPU.
        records: dict[str, int | None] = {"json": len(list(self.robot_dir.glob("logs/*.json")))}
        records.update(self.stores.counts())
        return Sample(
            t_s=round(time.monotonic() - self.zero, 1),
            rss_mb=process.rss_mb,
            fds=process.fds,
            threads=process.threads,
            tasks=process.tasks,
            calls_done=self.tally.done,
            in_flight=self.tally.in_flight,
            records=records,
            spool_kb=self.spool_kb(),
            errors=len(self.robot.errors()),
            cpu_pct=process.cpu_pct,
            load=os.getloadavg()[0],
            steady=steady,
        )

    async def idle(self, reference: Idle | None = None, timeout_s: float = 30.0) -> Idle:
        """The robot with no call in flight, once a fresh probe came (after `reference`: the
        first at or below it in tasks and fds, within `timeout_s`; the last one else)."""
        assert self.robot is not None
        deadline = time.monotonic() + timeout_s
        while True:
            self.robot.ask_objects()
            seen = self.robot.probes()
            # A probe taken wholly after now; another process's file: nothing to await.
            while self.robot.probes() <= seen + 1 and self.robot.proc.poll() is None:  # noqa: ASYNC110
                await asyncio.sleep(self.probe_period_s / 4)
            s = self.robot.sample()
            idle = Idle(s.rss_mb, s.fds, s.threads, s.tasks, s.top_tasks, self.robot.last_objects())
            settled = reference is None or (
                s.fds <= reference.fds and (s.tasks or 0) <= (reference.tasks or 0)
            )
            if settled or time.monotonic() > deadline or self.robot.proc.poll() is not None:
                return idle

    # --- phases ---------------------------------------------------------------------------

    async def sampler(self, steady: bool) -> None:
        stores = ["json", *self.args.store_names]
        while True:
            sample = await asyncio.to_thread(self.take_sample, steady)
            self.samples.append(sample)
            cells = [str(c) for c in sample_row(sample, stores)]
            print("| " + " | ".join(cells) + " |", flush=True)
            if self.robot is not None and self.robot.proc.poll() is not None:
                print(
                    f"- the robot exited ({self.robot.proc.returncode}): callers stop", flush=True
                )
                self.robot_died.set()
                return
            await asyncio.sleep(self.args.sample_s)

    async def outages(self) -> None:
        args = self.args
        names: list[StoreName] = list(args.store_names)
        if not names or args.outage_every_s <= 0:
            return
        at, n = args.outage_every_s, 0
        while at + args.outage_s <= args.duration_s - min(60.0, args.duration_s / 4):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - self.zero)))
            name = names[n % len(names)]
            print(f"- {time.monotonic() - self.zero:.0f} s: {name} SIGKILLed", flush=True)
            await self.stores.outage(name, args.outage_s, self.zero)
            print(f"- {time.monotonic() - self.zero:.0f} s: {name} restarted", flush=True)
            at, n = at + args.outage_every_s, n + 1

    def all_written(self) -> bool:
        expected = self.tally.connected
        if self.spool_kb() > 0:
            return False
        found = [self.json_records()]
        if "postgres" in self.args.store_names:
            found.append(self.stores.postgres_calls())  # type: ignore[arg-type]
        if "redis" in self.args.store_names:
            found.append(self.stores.redis_calls())  # type: ignore[arg-type]
        return all(f is not None and all(c in f for c in expected) for f in found)

    async def drain(self) -> float:
        """Waits until every record is written everywhere (bounded); seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < self.args.drain_timeout_s:
            if self.robot_died.is_set() or await asyncio.to_thread(self.all_written):
                break
            await asyncio.sleep(2.0)
        return round(time.monotonic() - started, 1)

    async def run(self) -> dict[str, Any]:
        args, loop = self.args, asyncio.get_running_loop()
        await asyncio.to_thread(self.stores.start)
        echo_robot(self.robot_dir, QUICK_ROBOT if args.quick else {})
        env = self.stores.env()
        (self.robot_dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.robot = ProbedRobot(
            self.robot_dir,
            probe_period_s=self.probe_period_s,
            objects_period_s=self.probe_period_s * 4 if args.quick else 60.0,
        )
        await asyncio.to_thread(self.robot.wait_listening)
        # One call of each kind first, so that lazily made things (connection pools, caches)
        # exist before the idle baseline.
        first = [kind for kind in KINDS if args.mix_weights.get(kind, 0) > 0]
        await callers(
            self.robot.url,
            len(first),
            loop.time(),
            args.mix_weights,
            self.tally,
            ramp_s=0,
            seed=args.seed,
            quick=args.quick,
            first=first,
        )
        await self.drain()
        before = await self.idle()
        print(
            f"idle before: {before.rss_mb} MB, {before.fds} fds, {before.tasks} tasks "
            f"({before.top_tasks}), {before.threads} threads\n",
            flush=True,
        )
        stores = ["json", *args.store_names]
        header = samples_table([], stores)
        print(header, flush=True)
        self.zero = time.monotonic()
        sampling = asyncio.create_task(self.sampler(steady=True))
        outages = asyncio.create_task(self.outages())
        until = loop.time() + args.duration_s
        await callers(
            self.robot.url,
            args.concurrency,
            until,
            args.mix_weights,
            self.tally,
            ramp_s=args.ramp_s,
            seed=args.seed,
            quick=args.quick,
            stop=self.robot_died,
        )
        await outages
        sampling.cancel()
        sampling = asyncio.create_task(self.sampler(steady=False))
        drain_s = await self.drain()
        sampling.cancel()
        after = await self.idle(before)
        final = await asyncio.to_thread(self.final_records)
        exit_code = await asyncio.to_thread(self.robot.stop)
        errors = self.robot.errors()
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
            "args": {k: v for k, v in vars(args).items() if k not in ("json", "mix_weights")},
            "samples": [asdict(s) for s in self.samples],
            "idle_before": asdict(before),
            "idle_after": asdict(after),
            "growth": growth(self.samples, args.warmup_s),
            "objects_growth": objects_growth(before, after),
            "drain_s": drain_s,
            "calls": {
                "placed": dict(self.tally.placed),
                "placed_total": sum(self.tally.placed.values()),
                "connected": len(self.tally.connected),
                "failed": self.tally.failed,
                "end_reasons": dict(self.tally.end_reasons),
            },
            "outages": [asdict(o) for o in self.stores.outages],
            **final,
            "process_errors": len(errors),
            "error_lines": errors[:50],
            "warnings": self.robot.warnings().most_common(15),
            "caller_errors": self.tally.errors,
            "exit_code": exit_code,
        }
        report["verdict"] = verdict(report)
        return report

    def final_records(self) -> dict[str, Any]:
        expected = self.tally.connected
        reference = self.json_records()
        found = {"json": reference}
        if "postgres" in self.args.store_names:
            found["postgres"] = self.stores.postgres_calls()  # type: ignore[assignment]
        if "redis" in self.args.store_names:
            found["redis"] = self.stores.redis_calls()  # type: ignore[assignment]
        return {
            "records": {name: record_check(expected, rows) for name, rows in found.items()},
            "turns_differ": {
                name: turns_differ(reference, rows)
                for name, rows in found.items()
                if name != "json"
            },
        }


def print_report(report: dict[str, Any]) -> None:
    stores = ["json", *report["args"]["store_names"]]
    samples = [Sample(**s) for s in report["samples"]]
    print(
        f"\n## Soak: {report['args']['concurrency']} calls at once for "
        f"{report['args']['duration_s']:g} s\n"
    )
    print(samples_table(samples, stores) + "\n")
    print(summary_text(report))
    for line, count in report["warnings"]:
        print(f"  WARNING x{count}: {line}")


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    """The whole soak, stores and robot stopped and their folders removed (unless --keep)."""
    work = Path(tempfile.mkdtemp(prefix="voiceplat-soak-"))
    os.chmod(work, 0o755)  # PostgreSQL runs as `postgres` when this runs as root
    soak = Soak(args, work)
    try:
        return asyncio.run(soak.run())
    finally:
        if soak.robot is not None and soak.robot.proc.poll() is None:
            soak.robot.stop()
        soak.stores.stop()
        if args.keep:
            print(f"kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Stopped by a TERM too (a background job ignores Ctrl-C's SIGINT): the robot and the
    # stores are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.ERROR)
    load = os.getloadavg()
    print(
        f"# voiceplat soak\n\nmachine: {os.cpu_count()} CPUs, load average at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; nice {args.nice}\n",
        flush=True,
    )
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # the robot and the stores inherit it
    report = run_soak(args)
    print_report(report)
    if args.json is not None:
        to_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
