"""Runs `voiceplat serve` with a probe that reports what only the robot's own process can see: how
many asyncio tasks its event loop holds (and of which coroutines), threads, and GC counts.

    python benchmarks/soak_probe.py <probe.jsonl> <period_s> <objects_period_s> serve <robot> ...

A daemon thread asks the loop every `period_s` (through `call_soon_threadsafe`, so the count is
taken on the loop's own thread, never while it changes) and appends one JSON line to
`probe.jsonl`; every `objects_period_s` the line also counts the live objects by type, so a leak
shows as the type that grows (and at once when the file `probe.objects` appears: the soak asks
for a count when the robot is idle: a full collection first, so only what is kept counts). The
soak reads the file's last line; RSS and file descriptors it reads itself from
/proc (psutil). The probe must not change what it measures: one small callback per period.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

_loops: list[asyncio.AbstractEventLoop] = []


class _RecordingPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, remembering each loop it makes (asyncio.run makes the robot's)."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        _loops.append(loop)
        return loop


def task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or type(coro).__name__


def snapshot(objects: bool, collect: bool = False) -> dict[str, Any]:
    """Taken on the loop's thread. `objects`: also count the live objects the garbage collector
    tracks, by type (a few tens of ms on a big heap: only every `objects_period_s`)."""
    tasks = asyncio.all_tasks()
    kinds = Counter(task_name(t) for t in tasks)
    sample = {
        "t": time.time(),
        "tasks": len(tasks),
        "top_tasks": kinds.most_common(8),
        "threads": threading.active_count(),
        "gc_counts": gc.get_count(),
    }
    if collect:  # at idle: garbage cycles not yet collected must not count as kept
        gc.collect()
    if objects:
        by_type = Counter(type(o).__qualname__ for o in gc.get_objects())
        sample["objects"] = dict(by_type.most_common(200))
    return sample


def _sample_forever(path: Path, period_s: float, objects_period_s: float) -> None:
    while not _loops:
        time.sleep(0.05)
    loop = _loops[-1]
    objects_due = 0.0
    while not loop.is_closed():
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        request = path.with_suffix(".objects")  # the soak asks for a count now (at idle)
        asked = request.exists()
        objects = time.monotonic() >= objects_due or asked
        if objects:
            objects_due = time.monotonic() + objects_period_s
            request.unlink(missing_ok=True)

        def take(
            future: concurrent.futures.Future[dict[str, Any]] = future,
            objects: bool = objects,
            asked: bool = asked,
        ) -> None:
            try:
                future.set_result(snapshot(objects, collect=asked))
            except Exception as exc:  # a probe failure must not become the robot's
                future.set_exception(exc)

        try:
            loop.call_soon_threadsafe(take)
            sample = future.result(timeout=60)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return  # the loop closed (or hangs: the soak's own checks report that)
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(sample) + "\n")
        time.sleep(period_s)


def main(argv: list[str]) -> int:
    path, period_s, objects_period_s = Path(argv[0]), float(argv[1]), float(argv[2])
    serve = argv[3:]
    asyncio.set_event_loop_policy(_RecordingPolicy())
    sampler = threading.Thread(
        target=_sample_forever, args=(path, period_s, objects_period_s), daemon=True
    )
    sampler.start()
    from voiceplat.cli import main as voiceplat_main

    return voiceplat_main(serve)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
