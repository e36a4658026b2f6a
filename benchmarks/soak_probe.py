"""Runs `voiceplat serve` with a probe that reports what only the robot's own process can see: how
many asyncio tasks its event loop holds (and of which coroutines), threads, and GC counts.

    python benchmarks/soak_probe.py <probe.jsonl> <period_s> serve <robot> --port ...

A daemon thread asks the loop every `period_s` (through `call_soon_threadsafe`, so the count is
taken on the loop's own thread, never while it changes) and appends one JSON line to
`probe.jsonl`. The soak reads the file's last line; RSS and file descriptors it reads itself from
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


def snapshot() -> dict[str, Any]:
    """Taken on the loop's thread."""
    tasks = asyncio.all_tasks()
    kinds = Counter(task_name(t) for t in tasks)
    return {
        "t": time.time(),
        "tasks": len(tasks),
        "top_tasks": kinds.most_common(8),
        "threads": threading.active_count(),
        "gc_counts": gc.get_count(),
    }


def _sample_forever(path: Path, period_s: float) -> None:
    while not _loops:
        time.sleep(0.05)
    loop = _loops[-1]
    while not loop.is_closed():
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

        def take(future: concurrent.futures.Future[dict[str, Any]] = future) -> None:
            try:
                future.set_result(snapshot())
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
    path, period_s, serve = Path(argv[0]), float(argv[1]), argv[2:]
    asyncio.set_event_loop_policy(_RecordingPolicy())
    threading.Thread(target=_sample_forever, args=(path, period_s), daemon=True).start()
    from voiceplat.cli import main as voiceplat_main

    return voiceplat_main(serve)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
