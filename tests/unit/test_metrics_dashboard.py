"""docs/grafana/voiceplat.json: valid JSON, a Prometheus datasource variable, and every metric it
queries is one a robot process shows."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from voiceplat.observability.metrics import MetricsSink, render
from voiceplat.providers.worker import SingleWorker
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import (
    CallFinished,
    CallRecord,
    CallSnapshot,
    EventLogged,
    LogEvent,
    TurnRecord,
)
from voiceplat.storage.spooled_sink import SpooledSink

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "voiceplat.json"


class _Store(SpooledSink):
    name = "dashstore"


def _exposed_sample_names(tmp_path: Path) -> set[str]:
    """Every sample name /metrics shows once each kind of item has been seen."""
    sink = MetricsSink("dashboard-robot", {"asr": "fake"})
    recorder = Recorder([_Store(tmp_path), sink])
    sink.watch(recorder)
    call = CallRecord(call_id="d1", robot="dashboard-robot", mode="pipeline")
    sink.apply(EventLogged(call, LogEvent(event="barge_in")))
    sink.apply(EventLogged(call, LogEvent(event="error", data={"turn": 1, "detail": "ASR x"})))
    turn = TurnRecord(
        call_id="d1", idx=0, role="robot", v2v_ms=1, asr_ms=1, llm_ttft_ms=1, tts_ttfb_ms=1
    )
    starved = turn.model_copy(update={"starved_ms": 5.0})
    ended = call.model_copy(update={"status": "completed", "ended_at": datetime.now(UTC)})
    sink.apply(CallFinished(CallSnapshot(call=ended, turns=[starved])))
    model = SingleWorker("dashboard-model", "busy")
    model.submit(lambda: None, max_queue=2).result(timeout=60)
    text = render()[0].decode()
    model.executor.shutdown()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_dashboard_is_json_with_a_prometheus_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]


def test_every_metric_the_dashboard_queries_exists(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"voiceplat_[a-z0-9_]+", target["expr"])
    }
    assert "voiceplat_v2v_seconds_bucket" in queried
    assert queried - _exposed_sample_names(tmp_path) == set()
