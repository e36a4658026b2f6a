"""The soak's figures without I/O: samples over time, growth after warm-up, records lost, the
verdict against the issue's goals, and the Markdown tables.

Goals (issue 15): after warm-up RSS grows by at most 20 MB; open file descriptors and asyncio
tasks do not grow (compared idle before the soak and idle after it, where no call is in flight to
blur the count); no record lost in any store; no process error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import markdown

RSS_GROWTH_GOAL_MB = 20.0
FINAL = ("completed", "failed")
"""Call states of a finished call (PostgreSQL's `status`, Redis's `state`, the JSON `status`)."""


@dataclass(frozen=True)
class Sample:
    t_s: float
    rss_mb: float
    fds: int
    threads: int
    tasks: int | None
    calls_done: int
    in_flight: int
    records: dict[str, int | None]
    """Records per store now (`json` and each store; None: the store is down)."""
    spool_kb: float
    errors: int
    cpu_pct: float = 0.0
    """The robot's CPU since the previous sample (100 = one core)."""
    load: float = 0.0
    """The machine's 1-minute load average."""
    steady: bool = True
    """Taken while the callers ran (False: before the soak or while draining)."""


@dataclass(frozen=True)
class Idle:
    """The robot with no call in flight."""

    rss_mb: float
    fds: int
    threads: int
    tasks: int | None
    top_tasks: list[tuple[str, int]] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)
    """Live objects the garbage collector tracks, by type (the 200 most common)."""


def objects_growth(before: Idle, after: Idle, top: int = 12) -> list[tuple[str, int, int]]:
    """The types whose live objects grew most from idle before to idle after: (type, before,
    after); a leak shows here as the type that piles up."""
    grown = [
        (name, before.objects.get(name, 0), count)
        for name, count in after.objects.items()
        if count > before.objects.get(name, 0)
    ]
    grown.sort(key=lambda row: row[2] - row[1], reverse=True)
    return grown[:top]


def slope_per_10min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t_s, value), per 10 minutes; None with fewer than 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var * 600.0, 2)


def growth(samples: Sequence[Sample], warmup_s: float) -> dict[str, Any]:
    """RSS, fds, tasks and threads from the first steady sample after warm-up to the last one."""
    steady = [s for s in samples if s.steady and s.t_s >= warmup_s]
    if not steady:
        return {"samples_after_warmup": 0}
    first, last = steady[0], steady[-1]
    out: dict[str, Any] = {
        "samples_after_warmup": len(steady),
        "from_s": first.t_s,
        "to_s": last.t_s,
        "rss_mb": round(last.rss_mb - first.rss_mb, 1),
        "rss_max_over_start_mb": round(max(s.rss_mb for s in steady) - first.rss_mb, 1),
        "rss_mb_per_10min": slope_per_10min([(s.t_s, s.rss_mb) for s in steady]),
        "fds": last.fds - first.fds,
        "threads": last.threads - first.threads,
    }
    tasks = [s for s in steady if s.tasks is not None]
    out["tasks"] = tasks[-1].tasks - tasks[0].tasks if tasks else None  # type: ignore[operator]
    return out


def record_check(
    expected: Mapping[str, str], found: Mapping[str, tuple[str, int]] | None
) -> dict[str, Any]:
    """The callIds of `expected` (callId -> kind) against one store's (state, turns) by callId."""
    if found is None:
        return {"expected": len(expected), "reachable": False}
    missing = sorted(c for c in expected if c not in found)
    unfinished = sorted(c for c in expected if c in found and found[c][0] not in FINAL)
    return {
        "expected": len(expected),
        "reachable": True,
        "found": sum(1 for c in expected if c in found),
        "lost": len(missing),
        "lost_ids": missing[:5],
        "lost_kinds": _kinds(missing, expected),
        "unfinished": len(unfinished),
        "unfinished_ids": unfinished[:5],
        "extra": sum(1 for c in found if c not in expected),
    }


def turns_differ(
    reference: Mapping[str, tuple[str, int]], other: Mapping[str, tuple[str, int]] | None
) -> int | None:
    """Calls whose turn count in `other` is not the reference's (a lost or duplicated turn)."""
    if other is None:
        return None
    return sum(1 for c, (_, turns) in reference.items() if c in other and other[c][1] != turns)


def _kinds(ids: Sequence[str], expected: Mapping[str, str]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for call_id in ids:
        kinds[expected[call_id]] = kinds.get(expected[call_id], 0) + 1
    return kinds


def verdict(report: Mapping[str, Any]) -> dict[str, bool]:
    """Each goal: met or not."""
    g = report["growth"]
    before, after = report["idle_before"], report["idle_after"]
    lost = [
        check.get("lost", 0) + check.get("unfinished", 0) if check.get("reachable") else 1
        for check in report["records"].values()
    ]
    return {
        "rss growth <= 20 MB": g.get("rss_mb") is not None and g["rss_mb"] <= RSS_GROWTH_GOAL_MB,
        "no fd growth (idle after vs before)": after["fds"] <= before["fds"],
        "no task growth (idle after vs before)": after["tasks"] is not None
        and before["tasks"] is not None
        and after["tasks"] <= before["tasks"],
        "0 records lost": sum(lost) == 0,
        "0 turns differing": all(not n for n in report["turns_differ"].values()),
        "0 process errors": report["process_errors"] == 0 and report["exit_code"] == 0,
        "0 failed calls": report["calls"]["failed"] == 0,
    }


def samples_table(samples: Sequence[Sample], stores: Sequence[str]) -> str:
    header = [
        "t s",
        "calls done",
        "in flight",
        "RSS MB",
        "fds",
        "tasks",
        "threads",
        "CPU %",
        "load",
    ]
    header += [f"{name} records" for name in stores] + ["spool KB", "errors"]
    return markdown(header, [sample_row(s, stores) for s in samples])


def sample_row(s: Sample, stores: Sequence[str]) -> list[Any]:
    row: list[Any] = [round(s.t_s), s.calls_done, s.in_flight, s.rss_mb, s.fds, s.tasks]
    row += [s.threads, s.cpu_pct, round(s.load, 2)]
    row += ["down" if s.records.get(n) is None else s.records[n] for n in stores]
    return [*row, round(s.spool_kb, 1), s.errors]


def summary_text(report: Mapping[str, Any]) -> str:
    g, calls = report["growth"], report["calls"]
    before, after = report["idle_before"], report["idle_after"]
    lines = [
        f"calls: {calls['placed_total']} placed ({_pairs(calls['placed'])}), "
        f"{calls['connected']} reached the robot, {calls['failed']} failed on the caller's side",
        f"outages: {len(report['outages'])} ("
        + ", ".join(
            f"{o['store']} {o['started_s']:.0f}-{o['ended_s']:.0f} s" for o in report["outages"]
        )
        + ")",
        f"growth after warm-up ({g.get('from_s', '-')} -> {g.get('to_s', '-')} s): "
        f"RSS {g.get('rss_mb')} MB (max {g.get('rss_max_over_start_mb')} MB over the start, "
        f"trend {g.get('rss_mb_per_10min')} MB/10 min), fds {g.get('fds')}, tasks "
        f"{g.get('tasks')}, threads {g.get('threads')}",
        f"idle before -> after: RSS {before['rss_mb']} -> {after['rss_mb']} MB, fds "
        f"{before['fds']} -> {after['fds']}, tasks {before['tasks']} -> {after['tasks']}, "
        f"threads {before['threads']} -> {after['threads']}",
    ]
    grown = report.get("objects_growth") or []
    lines.append(
        "live objects grown, idle before -> after: "
        + (", ".join(f"{name} {a} -> {b}" for name, a, b in grown) or "none")
    )
    for store, check in report["records"].items():
        if not check.get("reachable"):
            lines.append(f"records {store}: unreachable at the end")
            continue
        lines.append(
            f"records {store}: {check['found']}/{check['expected']} found, lost "
            f"{check['lost']} {check['lost_ids'] or ''}, unfinished {check['unfinished']}"
        )
    lines.append(f"turns differing from the JSON records: {report['turns_differ']}")
    lines.append(
        f"process errors: {report['process_errors']}, robot exit code {report['exit_code']}"
    )
    for line in report["error_lines"][:10]:
        lines.append(f"  ERROR: {line}")
    for line in report["caller_errors"][:10]:
        lines.append(f"  CALLER: {line}")
    lines.append(
        "goals: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in report["verdict"].items())
    )
    return "\n".join(lines)


def _pairs(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def to_json(report: Mapping[str, Any], path: Path) -> None:
    def plain(value: Any) -> Any:
        if isinstance(value, Sample | Idle):
            return asdict(value)
        return str(value)

    path.write_text(json.dumps(report, indent=2, default=plain), encoding="utf-8")
