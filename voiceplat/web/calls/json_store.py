"""Calls from the JSON files the robots write (storage/jsonfile.py), the embedded default.

A list of thousands of calls must stay fast, so what the list needs of each file (the call record,
its turns' text for the search, its v2v figures) is kept in memory, keyed by the file's path and
(mtime, size): a scan stats every file but parses only new or rewritten ones. `get_call` reads
the one file it needs. A file that is not a call record (half written by another tool, edited by
hand) is skipped with one log line per version of it, never an error page.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from pydantic import ValidationError

from voiceplat.storage.records import CallRecord, CallSnapshot
from voiceplat.web.calls.store import CallPage, CallQuery, RobotStats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    """What the list needs of one call file."""

    path: Path
    call: CallRecord
    text: str
    """Every turn's text (and heard text), lowercased, one per line: the text search."""
    v2v_ms: tuple[float, ...]
    """The robot turns' v2v, in turn order."""


def _entry(path: Path, snapshot: CallSnapshot) -> _Entry:
    texts: list[str] = []
    for turn in snapshot.turns:
        texts.append(turn.text)
        if turn.heard_text:
            texts.append(turn.heard_text)
    v2v = tuple(
        turn.v2v_ms for turn in snapshot.turns if turn.role == "robot" and turn.v2v_ms is not None
    )
    return _Entry(path, snapshot.call, "\n".join(texts).casefold(), v2v)


def read_snapshot(path: Path) -> CallSnapshot:
    return CallSnapshot.model_validate_json(path.read_bytes())


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def matches(entry: _Entry, query: CallQuery) -> bool:
    call = entry.call
    if query.robot is not None and call.robot != query.robot:
        return False
    day = call.started_at.date()
    if query.date_from is not None and day < query.date_from:
        return False
    if query.date_to is not None and day > query.date_to:
        return False
    if query.status is not None and call.status != query.status:
        return False
    if query.end_reason is not None and call.end_reason != query.end_reason:
        return False
    if query.caller is not None and query.caller.casefold() not in (call.caller or "").casefold():
        return False
    duration = call.duration_sec
    if query.min_duration_s is not None and (duration is None or duration < query.min_duration_s):
        return False
    if query.max_duration_s is not None and (duration is None or duration > query.max_duration_s):
        return False
    return query.text is None or query.text.casefold() in entry.text


class JsonCallStore:
    def __init__(self, logs_dirs: Mapping[str, Path]) -> None:
        # Two robots may share a folder: each folder is read once.
        self.logs_dirs = list(dict.fromkeys(Path(path) for path in logs_dirs.values()))
        self._cache: dict[Path, tuple[tuple[int, int], _Entry | None]] = {}
        # Scans run in threads; two at once (two browser tabs) must not tear the cache.
        self._lock = threading.Lock()

    def _scan(self) -> list[_Entry]:
        with self._lock:
            seen: dict[Path, tuple[tuple[int, int], _Entry | None]] = {}
            for folder in self.logs_dirs:
                for path, version in self._files(folder):
                    cached = self._cache.get(path)
                    if cached is not None and cached[0] == version:
                        seen[path] = cached
                    else:
                        seen[path] = (version, self._parse(path))
            # Files that are gone leave the cache too.
            self._cache = seen
            return [entry for _, entry in seen.values() if entry is not None]

    @staticmethod
    def _files(folder: Path) -> Iterable[tuple[Path, tuple[int, int]]]:
        try:
            with os.scandir(folder) as listing:
                for item in listing:
                    # ".name.json.xxx.tmp": a write in progress (write_atomically).
                    if item.name.startswith(".") or not item.name.endswith(".json"):
                        continue
                    try:
                        if not item.is_file():
                            continue
                        stat = item.stat()
                    except OSError:
                        continue  # removed while listing
                    yield Path(item.path), (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            return  # a robot that has had no call yet

    @staticmethod
    def _parse(path: Path) -> _Entry | None:
        try:
            return _entry(path, read_snapshot(path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("calls: skipping %s: not a call record (%s)", path, reason)
            return None

    @staticmethod
    def _newest_first(entries: list[_Entry]) -> list[_Entry]:
        return sorted(
            entries, key=lambda entry: (entry.call.started_at, entry.path.name), reverse=True
        )

    async def list_calls(self, query: CallQuery) -> CallPage:
        entries = await asyncio.to_thread(self._scan)
        found = self._newest_first([entry for entry in entries if matches(entry, query)])
        items = [entry.call for entry in found[query.offset : query.offset + query.per_page]]
        return CallPage(items=items, total=len(found), page=query.page, per_page=query.per_page)

    async def get_call(self, call_id: str) -> CallSnapshot | None:
        entries = await asyncio.to_thread(self._scan)
        # Matched on the record's own id, never on a path made from the caller's input.
        found = self._newest_first([entry for entry in entries if entry.call.call_id == call_id])
        for entry in found:
            try:
                return await asyncio.to_thread(read_snapshot, entry.path)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, ValidationError) as exc:
                log.warning("calls: %s cannot be read: %s", entry.path, exc)
        return None

    async def robot_stats(self, robot: str, last_calls: int = 100) -> RobotStats:
        entries = await asyncio.to_thread(self._scan)
        own = self._newest_first([entry for entry in entries if entry.call.robot == robot])
        today = datetime.combine(datetime.now(UTC).date(), time(), UTC)
        calls_today = sum(
            1 for entry in own if today <= entry.call.started_at < today + timedelta(days=1)
        )
        recent = own[:last_calls]
        v2v = [value for entry in reversed(recent) for value in entry.v2v_ms]
        reasons = Counter(entry.call.end_reason for entry in recent if entry.call.end_reason)
        return RobotStats(
            calls_today=calls_today,
            v2v_p50_ms=percentile(v2v, 0.5),
            v2v_p95_ms=percentile(v2v, 0.95),
            v2v_ms=v2v,
            end_reasons=dict(reasons.most_common()),
        )

    async def aclose(self) -> None:
        self._cache.clear()


__all__ = ["JsonCallStore", "percentile", "read_snapshot"]
