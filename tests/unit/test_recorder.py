"""The call recorder and its JSON-file sink."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from voiceplat.storage.jsonfile import JsonFileSink, safe_call_id
from voiceplat.storage.recorder import Recorder, Sink
from voiceplat.storage.records import (
    CallFinished,
    CallOpened,
    CallRecord,
    EventLogged,
    RecordItem,
    TurnRecord,
    TurnWritten,
)

START = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


class StepClock:
    """Each reading is one second after the previous one."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class ListSink(Sink):
    name = "list"

    def __init__(self) -> None:
        self.items: list[RecordItem] = []
        self.closed = False

    async def handle(self, item: RecordItem) -> None:
        self.items.append(item)

    async def aclose(self) -> None:
        self.closed = True


class BrokenSink(Sink):
    name = "broken"

    async def handle(self, item: RecordItem) -> None:
        raise OSError("disk on fire")

    async def aclose(self) -> None:
        raise OSError("still on fire")


class GatedSink(Sink):
    """Handles nothing until `gate` is set."""

    name = "gated"

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.items: list[RecordItem] = []

    async def handle(self, item: RecordItem) -> None:
        self.entered.set()
        await self.gate.wait()
        self.items.append(item)


def call(call_id: str = "abc-123", **fields) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        robot="demo",
        mode="pipeline",
        caller="+79990001122",
        callee="88000",
        started_at=START,
        **fields,
    )


def only_file(directory: Path) -> Path:
    files = list(directory.iterdir())
    assert len(files) == 1, files
    return files[0]


async def test_json_file_has_all_turns_and_events_after_finish(tmp_path):
    recorder = Recorder([JsonFileSink(tmp_path)], clock=StepClock())
    await recorder.start()
    log = recorder.open_call(call(metadata={"campaign": "spring"}))
    log.update(answered_at=START + timedelta(seconds=1))
    log.event("speech_start")
    log.add_turn(TurnRecord(call_id="abc-123", idx=0, role="user", text="Привет", asr_ms=120.5))
    robot_turn = TurnRecord(
        call_id="abc-123", idx=1, role="robot", text="Здравствуйте! Чем помочь?"
    )
    log.add_turn(robot_turn)
    log.event("barge_in", heard_ms=640, error=ValueError("odd"))
    log.update_turn(robot_turn.model_copy(update={"interrupted": True, "heard_text": "Здравст"}))
    log.finish("completed", "caller_hangup", ended_at=START + timedelta(seconds=42.5))
    await recorder.aclose()

    path = only_file(tmp_path)
    assert path.name == "20250304_050607_freeswitch_abc-123.json"
    text = path.read_text(encoding="utf-8")
    assert "Привет" in text  # readable, not \u escapes
    data = json.loads(text)
    assert set(data) == {"call", "turns", "pipeline_log"}
    assert data["call"]["status"] == "completed"
    assert data["call"]["end_reason"] == "caller_hangup"
    assert data["call"]["duration_sec"] == 42.5
    assert data["call"]["turns"] == 2
    assert data["call"]["answered_at"].startswith("2025-03-04T05:06:08")
    assert data["call"]["metadata"] == {"campaign": "spring"}
    assert [turn["idx"] for turn in data["turns"]] == [0, 1]
    assert data["turns"][0]["asr_ms"] == 120.5
    assert data["turns"][1]["interrupted"] is True
    assert data["turns"][1]["heard_text"] == "Здравст"
    assert [event["event"] for event in data["pipeline_log"]] == ["speech_start", "barge_in"]
    assert data["pipeline_log"][1]["data"] == {"heard_ms": 640, "error": "ValueError: odd"}


async def test_file_written_when_call_opens(tmp_path):
    sink = JsonFileSink(tmp_path)
    recorder = Recorder([sink])
    await recorder.start()
    log = recorder.open_call(call())
    await recorder.aclose()  # the call never finished: the process stopped mid-call
    data = json.loads(sink.path_for(log.record).read_text(encoding="utf-8"))
    assert data["call"]["status"] == "in_progress"
    assert data["turns"] == [] and data["pipeline_log"] == []


async def test_call_that_fails_abruptly_still_produces_file(tmp_path):
    recorder = Recorder([JsonFileSink(tmp_path)], clock=StepClock())
    await recorder.start()
    log = recorder.open_call(call())
    log.add_turn(TurnRecord(call_id="abc-123", idx=0, role="robot", text="Здравствуйте"))
    log.event("error", where="tts", message="boom")
    log.finish("failed", "error")
    log.finish("completed", "caller_hangup")  # a cleanup path finishing again is ignored
    log.event("late")  # after finish: not recorded
    await recorder.aclose()

    data = json.loads(only_file(tmp_path).read_text(encoding="utf-8"))
    assert data["call"]["status"] == "failed"
    assert data["call"]["end_reason"] == "error"
    assert data["call"]["ended_at"] is not None
    assert data["call"]["duration_sec"] >= 0
    assert [event["event"] for event in data["pipeline_log"]] == ["error"]
    assert len(data["turns"]) == 1


async def test_failing_sink_does_not_stop_the_others(tmp_path, caplog):
    good = ListSink()
    recorder = Recorder([BrokenSink(), good, JsonFileSink(tmp_path)])
    await recorder.start()
    log = recorder.open_call(call())
    log.add_turn(TurnRecord(call_id="abc-123", idx=0, role="user", text="да"))
    log.event("asr_done", ms=80)
    log.finish("completed", "robot_goodbye")
    await recorder.aclose()

    assert [type(item) for item in good.items] == [
        CallOpened,
        TurnWritten,
        EventLogged,
        CallFinished,
    ]
    assert good.closed
    assert recorder.failed == 4
    assert json.loads(only_file(tmp_path).read_text(encoding="utf-8"))["call"]["turns"] == 1
    assert "sink broken failed on CallOpened of call abc-123" in caplog.text


async def test_full_queue_drops_and_counts_without_blocking():
    sink = GatedSink()
    recorder = Recorder([sink], queue_size=3)
    await recorder.start()
    log = recorder.open_call(call())
    await sink.entered.wait()  # the worker took CallOpened and waits at the gate
    for n in range(10):  # synchronous calls: they cannot block; 3 fit in the queue
        log.event("tick", n=n)
    assert recorder.dropped == 7
    sink.gate.set()
    await recorder.aclose()
    events = sink.items[1:]
    assert all(isinstance(item, EventLogged) for item in events)
    assert [item.event.data["n"] for item in events if isinstance(item, EventLogged)] == [0, 1, 2]


async def test_queue_fills_before_start_and_drains_after():
    sink = ListSink()
    recorder = Recorder([sink], queue_size=2)
    log = recorder.open_call(call())
    log.event("a")
    log.event("b")
    assert recorder.dropped == 1
    await recorder.start()
    await recorder.aclose()
    assert len(sink.items) == 2 and sink.closed


async def test_records_after_close_are_dropped():
    sink = ListSink()
    recorder = Recorder([sink])
    await recorder.start()
    log = recorder.open_call(call())
    await recorder.aclose()
    log.finish("completed", "shutdown")
    assert recorder.dropped == 1
    assert [type(item) for item in sink.items] == [CallOpened]


async def test_call_id_from_network_is_sanitised(tmp_path):
    logs = tmp_path / "robot" / "logs"
    recorder = Recorder([JsonFileSink(logs)])
    await recorder.start()
    recorder.open_call(call("../../etc/passwd")).finish("completed", "caller_hangup")
    recorder.open_call(call("x" * 200, source="simulator")).finish("completed", "caller_hangup")
    await recorder.aclose()

    names = sorted(path.name for path in logs.iterdir())
    assert names == [
        "20250304_050607_freeswitch_etcpasswd.json",
        f"20250304_050607_simulator_{'x' * 64}.json",
    ]
    assert sorted(path.name for path in tmp_path.rglob("*.json")) == names
    assert safe_call_id("../..") == "unknown"


async def test_call_log_tracks_state_and_rejects_misuse():
    recorder = Recorder([], clock=StepClock())
    log = recorder.open_call(call())
    turn = TurnRecord(call_id="abc-123", idx=0, role="user", text="раз")
    log.add_turn(turn)
    turn.text = "changed later by the session"  # the recorded copy does not change
    assert log.turns[0].text == "раз"
    assert log.record.turns == 1
    with pytest.raises(ValueError, match="update_turn"):
        log.add_turn(turn)
    with pytest.raises(KeyError):
        log.update_turn(TurnRecord(call_id="abc-123", idx=5, role="user"))
    with pytest.raises(ValueError):
        log.add_turn(TurnRecord(call_id="other", idx=1, role="user"))
    with pytest.raises(ValueError, match="answerd_at"):
        log.update(answerd_at=START)
    log.finish("completed", "no_input")
    assert log.record.ended_at == START + timedelta(seconds=1)
    assert log.record.duration_sec == 1.0
    assert log.finished


def test_naive_datetimes_are_taken_as_utc():
    record = call(answered_at=datetime(2025, 1, 1, 12, 0))
    assert record.answered_at == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


async def test_close_gives_up_on_a_stuck_sink_after_timeout(caplog):
    stuck, good = GatedSink(), ListSink()
    recorder = Recorder([stuck, good])
    await recorder.start()
    recorder.open_call(call()).finish("completed", "shutdown")
    await recorder.aclose(timeout_s=0.05)  # never released: aclose must still return
    assert stuck.items == []
    assert "sink gated did not finish" in caplog.text
    assert [type(item) for item in good.items] == [CallOpened, CallFinished]
    assert good.closed
