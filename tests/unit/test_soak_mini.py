"""A 2-second soak (benchmarks/soak.py) with every part working: the probed robot, the call kinds
(barge-in, hang-up in the greeting, TCP reset), a Redis outage and restart, the samples, and the
record check in every store."""

from __future__ import annotations

import pytest

from benchmarks.soak import parse_args, print_report, run_soak
from tests.storage_servers import missing_servers

MINI = [
    "--duration-s", "2", "--concurrency", "3", "--ramp-s", "0",
    "--mix", "barge_in=1,hangup=1,abrupt=1",
    "--stores", "redis", "--outage-every-s", "1", "--outage-s", "0.3",
    "--sample-s", "0.5", "--warmup-s", "0.5", "--drain-timeout-s", "60", "--quick",
]  # fmt: skip


@pytest.fixture(scope="module")
def report() -> dict:
    missing = [m for m in missing_servers() if m.startswith("redis")]
    if missing:
        pytest.skip(f"not installed: {missing[0]}; run scripts/setup.sh test")
    return run_soak(parse_args(MINI))


def test_every_call_kind_reached_the_robot_and_ended_as_its_caller_meant(report: dict) -> None:
    calls = report["calls"]
    assert set(calls["placed"]) == {"barge_in", "hangup", "abrupt"}
    assert calls["connected"] == calls["placed_total"]
    assert calls["failed"] == 0, report["caller_errors"]
    reasons = calls["end_reasons"]
    assert reasons["abrupt:reset"] == calls["placed"]["abrupt"]
    assert reasons["hangup:caller_hung_up"] == calls["placed"]["hangup"]


def test_the_store_went_down_and_came_back_without_losing_a_record(report: dict) -> None:
    [outage] = report["outages"]
    assert outage["store"] == "redis" and outage["ended_s"] > outage["started_s"]
    for store in ("json", "redis"):
        check = report["records"][store]
        assert check["reachable"] and check["found"] == check["expected"] > 0, check
        assert check["lost"] == 0 and check["unfinished"] == 0, check
    assert report["turns_differ"] == {"redis": 0}


def test_the_robot_was_sampled_and_stopped_cleanly(report: dict) -> None:
    assert report["samples"], "no sample taken"
    for sample in report["samples"]:
        assert sample["rss_mb"] > 0 and sample["fds"] > 0 and sample["threads"] > 0
        assert sample["tasks"] is not None and sample["tasks"] > 0
    before, after = report["idle_before"], report["idle_after"]
    assert before["tasks"] > 0 and after["tasks"] <= before["tasks"], (before, after)
    assert before["objects"]["dict"] > 0 and after["objects"]["dict"] > 0  # counted at idle
    assert isinstance(report["objects_growth"], list)
    assert report["process_errors"] == 0, report["error_lines"]
    assert report["exit_code"] == 0
    assert report["verdict"]["0 records lost"] and report["verdict"]["0 process errors"]


def test_the_report_prints_the_table_and_the_goals(
    report: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    print_report(report)
    out = capsys.readouterr().out
    assert "| t s | calls done | in flight | RSS MB | fds | tasks |" in out
    assert "redis records" in out
    assert "records redis: " in out and "goals: " in out
