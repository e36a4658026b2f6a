"""benchmarks/soak_report.py: growth after warm-up, records lost per store, the goals' verdict."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.soak_calls import parse_mix
from benchmarks.soak_report import (
    Idle,
    Sample,
    growth,
    objects_growth,
    record_check,
    samples_table,
    slope_per_10min,
    turns_differ,
    verdict,
)


def sample(t_s: float, rss_mb: float, *, fds: int = 60, tasks: int = 300, steady: bool = True):
    return Sample(
        t_s=t_s,
        rss_mb=rss_mb,
        fds=fds,
        threads=9,
        tasks=tasks,
        calls_done=int(t_s),
        in_flight=50,
        records={"json": 10, "postgres": None},
        spool_kb=1.5,
        errors=0,
        steady=steady,
    )


def test_growth_is_measured_from_the_first_sample_after_warm_up() -> None:
    samples = [
        sample(0, 80),
        sample(60, 100),
        sample(120, 101, fds=61),
        sample(180, 104, tasks=310),
    ]
    samples.append(sample(200, 150, steady=False))  # draining: not part of the steady growth
    g = growth(samples, warmup_s=60)
    assert (g["from_s"], g["to_s"], g["samples_after_warmup"]) == (60, 180, 3)
    assert g["rss_mb"] == 4.0
    assert g["fds"] == 0 and g["tasks"] == 10
    assert g["rss_mb_per_10min"] == pytest.approx(20.0, abs=0.5)


def test_no_sample_after_warm_up_says_so() -> None:
    assert growth([sample(0, 80)], warmup_s=60) == {"samples_after_warmup": 0}


def test_slope_needs_three_points() -> None:
    assert slope_per_10min([(0, 1), (60, 2)]) is None
    assert slope_per_10min([(0, 0), (300, 5), (600, 10)]) == 10.0


def test_record_check_counts_lost_and_unfinished_calls_by_kind() -> None:
    expected = {"a": "normal", "b": "abrupt", "c": "abrupt", "d": "hangup"}
    found = {
        "a": ("completed", 4),
        "c": ("in_progress", 1),
        "d": ("failed", 0),
        "x": ("completed", 1),
    }
    check = record_check(expected, found)
    assert check["found"] == 3
    assert (check["lost"], check["lost_ids"], check["lost_kinds"]) == (1, ["b"], {"abrupt": 1})
    assert (check["unfinished"], check["unfinished_ids"]) == (1, ["c"])
    assert check["extra"] == 1
    assert record_check(expected, None) == {"expected": 4, "reachable": False}


def test_turns_differ_finds_a_call_with_a_lost_or_doubled_turn() -> None:
    reference = {"a": ("completed", 4), "b": ("completed", 2)}
    assert turns_differ(reference, {"a": ("completed", 4), "b": ("completed", 2)}) == 0
    assert turns_differ(reference, {"a": ("completed", 5), "b": ("completed", 2)}) == 1
    assert turns_differ(reference, None) is None


def report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "growth": {"rss_mb": 5.0},
        "idle_before": {"fds": 13, "tasks": 9},
        "idle_after": {"fds": 13, "tasks": 9},
        "records": {"json": {"reachable": True, "lost": 0, "unfinished": 0}},
        "turns_differ": {"postgres": 0},
        "process_errors": 0,
        "exit_code": 0,
        "calls": {"failed": 0},
    }
    base.update(changes)
    return base


def test_verdict_meets_every_goal_on_a_clean_soak() -> None:
    assert all(verdict(report()).values())


@pytest.mark.parametrize(
    ("changes", "goal"),
    [
        ({"growth": {"rss_mb": 20.5}}, "rss growth <= 20 MB"),
        ({"idle_after": {"fds": 14, "tasks": 9}}, "no fd growth (idle after vs before)"),
        ({"idle_after": {"fds": 13, "tasks": 10}}, "no task growth (idle after vs before)"),
        ({"records": {"pg": {"reachable": True, "lost": 1, "unfinished": 0}}}, "0 records lost"),
        ({"records": {"pg": {"reachable": True, "lost": 0, "unfinished": 2}}}, "0 records lost"),
        ({"records": {"pg": {"reachable": False}}}, "0 records lost"),
        ({"turns_differ": {"redis": 3}}, "0 turns differing"),
        ({"process_errors": 1}, "0 process errors"),
        ({"exit_code": 1}, "0 process errors"),
        ({"calls": {"failed": 2}}, "0 failed calls"),
    ],
)
def test_verdict_fails_the_goal_that_was_missed(changes: dict[str, Any], goal: str) -> None:
    result = verdict(report(**changes))
    assert [name for name, met in result.items() if not met] == [goal]


def test_samples_table_marks_a_store_that_is_down() -> None:
    table = samples_table([sample(30, 90.5)], ["json", "postgres"])
    header, _, row = table.splitlines()
    assert "postgres records" in header and "tasks" in header
    assert row.split(" | ")[-4:] == ["10", "down", "1.5", "0 |"]


def test_mix_parsing_names_an_unknown_kind() -> None:
    assert parse_mix("normal=3,abrupt=1") == {"normal": 3.0, "abrupt": 1.0}
    with pytest.raises(ValueError, match="unknown call kind 'reset'"):
        parse_mix("normal=1,reset=2")
    with pytest.raises(ValueError, match="no call kind a weight"):
        parse_mix("normal=0")


def test_objects_growth_names_the_types_that_piled_up_most_first() -> None:
    before = Idle(80, 13, 6, 9, objects={"dict": 1000, "Task": 9, "CallLog": 0, "list": 500})
    after = Idle(90, 13, 6, 9, objects={"dict": 1010, "Task": 9, "CallLog": 4000, "list": 400})
    assert objects_growth(before, after) == [("CallLog", 0, 4000), ("dict", 1000, 1010)]
