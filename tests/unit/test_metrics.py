"""MetricsSink: the Prometheus metrics a robot process shows, after feeding it record items."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from voiceplat.observability.metrics import MetricsSink, error_kind, render
from voiceplat.providers.worker import SingleWorker
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import (
    CallFinished,
    CallOpened,
    CallRecord,
    CallSnapshot,
    EventLogged,
    LogEvent,
    TurnRecord,
    TurnWritten,
)
from voiceplat.storage.spooled_sink import SpooledSink

T0 = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)


def _robot() -> str:
    # Metrics are process-wide: each test counts under a robot name of its own.
    return f"bot-{uuid.uuid4().hex[:8]}"


def _call(robot: str, call_id: str, **fields: object) -> CallRecord:
    return CallRecord.model_validate(
        {"call_id": call_id, "robot": robot, "mode": "pipeline", "started_at": T0, **fields}
    )


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_call_counts_its_turns_latencies_barge_ins_and_end_reason() -> None:
    robot = _robot()
    sink = MetricsSink(robot, {"asr": "fake", "llm": "fake", "tts": "festival"})
    call = _call(robot, "c1", source="sip")
    sink.apply(CallOpened(call))
    assert _value("voiceplat_calls_active", robot=robot, source="sip") == 1
    user = TurnRecord(call_id="c1", idx=0, role="user", text="да", asr_ms=250)
    answer = TurnRecord(
        call_id="c1", idx=1, role="robot", v2v_ms=800, llm_ttft_ms=300, tts_ttfb_ms=120
    )
    sink.apply(TurnWritten(call, user))
    sink.apply(TurnWritten(call, answer))
    # The same turn rewritten after a barge-in is not observed twice.
    cut = answer.model_copy(update={"interrupted": True, "starved_ms": 40.0})
    sink.apply(TurnWritten(call, cut))
    sink.apply(TurnWritten(call, cut.model_copy(update={"starved_ms": 100.0})))
    sink.apply(EventLogged(call, LogEvent(at=T0, event="barge_in", data={"turn": 1})))
    ended = call.model_copy(update={"status": "completed", "end_reason": "caller_hangup"})
    sink.apply(CallFinished(CallSnapshot(call=ended, turns=[user, cut])))

    assert _value("voiceplat_calls_active", robot=robot, source="sip") == 0
    assert (
        _value("voiceplat_calls_total", robot=robot, source="sip", end_reason="caller_hangup") == 1
    )
    assert _value("voiceplat_turns_total", robot=robot, role="user") == 1
    assert _value("voiceplat_turns_total", robot=robot, role="robot") == 1
    assert _value("voiceplat_v2v_seconds_count", robot=robot) == 1
    assert _value("voiceplat_v2v_seconds_sum", robot=robot) == 0.8
    assert _value("voiceplat_v2v_seconds_bucket", robot=robot, le="0.75") == 0
    assert _value("voiceplat_v2v_seconds_bucket", robot=robot, le="1.0") == 1
    assert _value("voiceplat_asr_seconds_sum", robot=robot) == 0.25
    assert _value("voiceplat_llm_first_token_seconds_sum", robot=robot) == 0.3
    assert _value("voiceplat_tts_first_audio_seconds_sum", robot=robot) == 0.12
    assert _value("voiceplat_barge_ins_total", robot=robot) == 1
    assert _value("voiceplat_audio_starved_seconds_total", robot=robot) == 0.1
    assert _value("voiceplat_starved_turns_total", robot=robot) == 1


def test_turns_missed_on_the_way_are_counted_from_the_finished_snapshot() -> None:
    robot = _robot()
    sink = MetricsSink(robot)
    turn = TurnRecord(call_id="c2", idx=0, role="robot", v2v_ms=500)
    ended = _call(robot, "c2", status="failed", end_reason="error")
    sink.apply(CallFinished(CallSnapshot(call=ended, turns=[turn])))
    assert _value("voiceplat_v2v_seconds_count", robot=robot) == 1
    assert (
        _value("voiceplat_calls_total", robot=robot, source="freeswitch", end_reason="error") == 1
    )


def test_provider_errors_are_labelled_with_the_provider_that_failed() -> None:
    robot = _robot()
    providers = {"asr": "faster_whisper", "llm": "llama_cpp", "tts": "festival"}
    sink = MetricsSink(robot, providers)
    call = _call(robot, "c3")
    sink.apply(CallOpened(call))
    for data in (
        {"turn": 1, "detail": "ProviderError: llama.cpp generation failed: boom"},
        {"turn": 2, "detail": "ProviderError: festival server unreachable: refused"},
        {"turn": 3, "detail": "ProviderError: fake ASR failed on purpose"},
        {"reason": "protocol_error", "detail": "bad metadata"},  # the call's end, no provider
    ):
        sink.apply(EventLogged(call, LogEvent(at=T0, event="error", data=data)))

    def errors(kind: str, provider: str) -> float | None:
        return _value("voiceplat_provider_errors_total", robot=robot, kind=kind, provider=provider)

    assert errors("llm", "llama_cpp") == 1
    assert errors("tts", "festival") == 1
    assert errors("asr", "faster_whisper") == 1
    assert error_kind({"source": "realtime", "detail": "x"}, {}) == "realtime"
    assert error_kind({"detail": "end-of-turn model: OSError: x"}, {}) == "end_of_turn"
    assert error_kind({"turn": 1, "detail": "RuntimeError: ?"}, {}) == "unknown"


class _DownStore(SpooledSink):
    name = "teststore"

    async def connect(self) -> None:
        raise ConnectionError("refused")


async def test_gauges_read_model_queues_spools_and_recorder_losses(tmp_path: Path) -> None:
    robot = _robot()
    store = _DownStore(tmp_path)
    sink = MetricsSink(robot)
    recorder = Recorder([store, sink], queue_size=1)
    sink.watch(recorder)
    await recorder.start()
    model = SingleWorker(f"model-{robot}", "busy ({pending})")
    model.submit(lambda: None, max_queue=3).result(timeout=60)
    model.pending = 2  # as if two jobs were queued now
    recorder.open_call(_call(robot, "c4"))
    recorder.open_call(_call(robot, "c5"))  # queue_size 1: dropped (nothing has run yet)
    await store.handle(CallOpened(_call(robot, "c6")))  # spooled: the store is down

    assert _value("voiceplat_model_queue_depth", model=f"model-{robot}") == 2
    assert _value("voiceplat_model_queue_limit", model=f"model-{robot}") == 3
    assert _value("voiceplat_spool_items", robot=robot, sink="teststore") == 1
    assert _value("voiceplat_store_up", robot=robot, sink="teststore") == 0
    assert _value("voiceplat_recorder_dropped_total", robot=robot) == 2
    model.pending = 0
    await recorder.aclose()
    model.executor.shutdown()


def test_the_text_format_parses_and_a_second_sink_does_not_clash() -> None:
    robot = _robot()
    first = MetricsSink(robot)
    first.apply(CallOpened(_call(robot, "c7")))
    other = MetricsSink(robot)  # a second robot server in the same process
    other.apply(CallOpened(_call(robot, "c8")))
    body, content_type = render()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {"voiceplat_calls_active", "voiceplat_v2v_seconds", "voiceplat_calls"} <= set(families)
    active = [
        s.value
        for s in families["voiceplat_calls_active"].samples
        if s.labels["robot"] == robot and s.labels["source"] == "freeswitch"
    ]
    assert active == [2]
    assert first.active() == {"freeswitch": 1}
