"""Old recordings are deleted by age: at the robot's start, then hourly.

A recording older than `retention_days` (by its file's modification time, i.e. when the call
ended) is deleted, and so is a day folder left empty. Only recording files (.wav, .flac, and
temporary files a crash left behind) in `<dir>/<YYYY-MM-DD>/` are touched: anything else
someone keeps in the folder stays.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 3600.0
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SUFFIXES = (".wav", ".flac", ".tmp")


def delete_old_recordings(folder: Path, retention_days: int, now: float) -> list[Path]:
    """Deletes recordings in `folder` older than `retention_days` at `now` (epoch seconds);
    returns what it deleted. Errors are logged, never raised: the next sweep tries again."""
    oldest = now - retention_days * 86400
    deleted: list[Path] = []
    try:
        days = [p for p in folder.iterdir() if p.is_dir() and _DAY.match(p.name)]
    except FileNotFoundError:
        return deleted
    except OSError as exc:
        log.warning("recordings: cannot list %s: %s", folder, exc)
        return deleted
    for day in sorted(days):
        try:
            for path in day.iterdir():
                if path.suffix in _SUFFIXES and path.is_file() and path.stat().st_mtime < oldest:
                    path.unlink()
                    deleted.append(path)
            if not any(day.iterdir()):
                day.rmdir()
        except OSError as exc:
            log.warning("recordings: cleaning %s: %s", day, exc)
    if deleted:
        log.info("recordings: deleted %d older than %d days", len(deleted), retention_days)
    return deleted


async def keep_recordings(
    folder: Path,
    retention_days: int,
    *,
    interval_s: float = SWEEP_INTERVAL_S,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Runs until cancelled: a sweep now, then one every `interval_s` (in a thread)."""
    while True:
        await asyncio.to_thread(delete_old_recordings, folder, retention_days, clock())
        await sleep(interval_s)
