"""Old call records are deleted by age (`privacy.retention_days`): at the robot's start, then hourly.

The robot's own calls only (its name, in every store; its logs folder), by when they started. The
recordings have their own age limit (`recording.retention_days`, recording/retention.py); the
records of a call may outlive its recording or the other way round, as each setting says.
A sweep that fails somewhere (a store that is down) logs it and tries again an hour later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from voiceplat.privacy.stores import Deleted, Selection, delete_in_stores, delete_json_records
from voiceplat.recording.retention import SWEEP_INTERVAL_S

if TYPE_CHECKING:
    from voiceplat.robot import Robot

log = logging.getLogger(__name__)


async def sweep_records(
    robot_name: str,
    logs_dir: Path,
    env: Mapping[str, str],
    retention_days: int,
    now: datetime,
) -> list[Deleted]:
    """Deletes the robot's records of calls started more than `retention_days` before `now`."""
    selection = Selection(robot=robot_name, started_before=now - timedelta(days=retention_days))
    places = [await asyncio.to_thread(delete_json_records, logs_dir, selection)]
    places += await delete_in_stores(dict(env), selection)
    for place in places:
        if place.error is not None:
            log.warning("records retention: %s", place.line())
        elif place.calls:
            log.info("records retention (%d days): %s", retention_days, place.line())
    return places


async def keep_records(
    robot_name: str,
    logs_dir: Path,
    env: Mapping[str, str],
    retention_days: int,
    *,
    interval_s: float = SWEEP_INTERVAL_S,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Runs until cancelled: a sweep now, then one every `interval_s`."""
    while True:
        now = datetime.fromtimestamp(clock(), UTC)
        try:
            await sweep_records(robot_name, logs_dir, env, retention_days, now)
        except Exception:  # a bug in one sweep must not end the robot's retention for good
            log.exception("records retention sweep failed")
        await sleep(interval_s)


def start_record_retention(
    robot: Robot, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> asyncio.Task[None] | None:
    """The robot's hourly sweep of old records (first one now), when `privacy.retention_days`
    is set; cancel the task when the robot stops."""
    days = robot.config.privacy.retention_days
    if days is None:
        return None
    return asyncio.create_task(
        keep_records(robot.name, robot.logs_dir, robot.env, days, sleep=sleep),
        name=f"records-{robot.name}",
    )
