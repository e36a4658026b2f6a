"""A finished call's record amended afterwards (its summary), the outcome decided at finish, and
the tools a robot turn called: through the recorder, the spool's encoding and the JSON file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from voiceplat.storage.clean import encode_item
from voiceplat.storage.jsonfile import JsonFileSink
from voiceplat.storage.recorder import CallLog, Recorder, Sink
from voiceplat.storage.records import (
    CallAmended,
    CallFinished,
    CallOpened,
    CallRecord,
    CallSnapshot,
    RecordItem,
    ToolCallRecord,
    TurnRecord,
    TurnWritten,
)

START = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
BOOKING = ToolCallRecord(
    name="book_visit",
    arguments={"doctor": "терапевт", "date": "2025-03-05"},
    ok=True,
    result={"visit_id": 17},
    ms=230.5,
)


class ListSink(Sink):
    name = "list"

    def __init__(self) -> None:
        self.items: list[RecordItem] = []

    async def handle(self, item: RecordItem) -> None:
        self.items.append(item)


def finished_call(recorder: Recorder, call_id: str = "c-1") -> CallLog:
    log = recorder.open_call(
        CallRecord(call_id=call_id, robot="clinic", mode="pipeline", started_at=START)
    )
    log.add_turn(TurnRecord(call_id=call_id, idx=0, role="user", text="Запишите к терапевту"))
    log.add_turn(
        TurnRecord(call_id=call_id, idx=1, role="robot", text="Записала.", tool_calls=[BOOKING])
    )
    log.event("barge_in", turn=1)
    log.finish("completed", "caller_hangup", ended_at=START + timedelta(seconds=20))
    return log


def read_file(folder: Path) -> dict:
    (path,) = folder.glob("*.json")
    return json.loads(path.read_text(encoding="utf-8"))


async def test_an_amendment_reaches_the_sinks_after_the_finished_record(tmp_path: Path) -> None:
    sink = ListSink()
    files = JsonFileSink(tmp_path)
    recorder = Recorder([sink, files])
    await recorder.start()
    log = finished_call(recorder)
    final = log.record
    recorder.amend(final, outcome="booked")
    # A second amendment made from the same (older) snapshot keeps the first one's change.
    amended = recorder.amend(final, summary="Клиентка записалась к терапевту на завтра.")
    await recorder.aclose()

    assert [type(item) for item in sink.items][-2:] == [CallAmended, CallAmended]
    assert sink.items[-1] == CallAmended(
        amended, {"summary": "Клиентка записалась к терапевту на завтра."}
    )
    record = read_file(tmp_path)
    assert record["call"]["summary"] == "Клиентка записалась к терапевту на завтра."
    assert record["call"]["outcome"] == "booked"
    # the rest of the finished record is untouched
    assert record["call"]["status"] == "completed" and record["call"]["duration_sec"] == 20.0
    assert [t["text"] for t in record["turns"]] == ["Запишите к терапевту", "Записала."]
    assert record["turns"][1]["tool_calls"] == [BOOKING.model_dump(mode="json")]
    assert [e["event"] for e in record["pipeline_log"]] == ["barge_in"]
    CallSnapshot.model_validate(record)  # still a valid record


async def test_call_log_amend_keeps_its_own_record_current(tmp_path: Path) -> None:
    recorder = Recorder([JsonFileSink(tmp_path)])
    await recorder.start()
    log = finished_call(recorder)
    log.amend(summary="Записалась.")
    log.amend(outcome="booked")
    await recorder.aclose()
    assert (log.record.summary, log.record.outcome) == ("Записалась.", "booked")
    call = read_file(tmp_path)["call"]
    assert (call["summary"], call["outcome"]) == ("Записалась.", "booked")


async def test_only_a_finished_calls_summary_and_outcome_can_be_amended() -> None:
    recorder = Recorder([])
    log = recorder.open_call(CallRecord(call_id="c", robot="r", mode="pipeline"))
    with pytest.raises(ValueError, match="not finished"):
        log.amend(summary="рано")
    with pytest.raises(ValueError, match="not finished"):
        recorder.amend(log.record, summary="рано")
    log.finish("completed", "caller_hangup")
    with pytest.raises(ValueError, match="not status"):
        log.amend(status="failed")
    with pytest.raises(ValueError, match="not caller, turns"):
        recorder.amend(log.record, caller="+7", turns=3)
    await recorder.aclose()


async def test_a_missing_file_is_written_from_the_amended_record(tmp_path: Path) -> None:
    """The finished write was lost (a full queue, a failed disk): the amendment still leaves one."""
    files = JsonFileSink(tmp_path)
    call = CallRecord(
        call_id="lost", robot="r", mode="pipeline", status="completed", ended_at=START
    )
    await files.handle(
        CallAmended(call.model_copy(update={"summary": "Итог."}), {"summary": "Итог."})
    )
    record = read_file(tmp_path)
    assert record["call"]["call_id"] == "lost" and record["call"]["summary"] == "Итог."
    assert record["turns"] == []


async def test_a_summary_json_cannot_hold_is_stored_cleaned(tmp_path: Path) -> None:
    files = JsonFileSink(tmp_path)
    recorder = Recorder([files])
    await recorder.start()
    log = finished_call(recorder)
    log.amend(summary="Итог \ud800 звонка\x00.")
    await recorder.aclose()
    assert read_file(tmp_path)["call"]["summary"] == "Итог \ufffd звонка."


async def test_the_outcome_is_decided_from_the_finished_snapshot() -> None:
    sink = ListSink()
    recorder = Recorder([sink])
    await recorder.start()
    seen: list[CallSnapshot] = []

    def decide(snapshot: CallSnapshot) -> str:
        seen.append(snapshot)
        return "answered" if snapshot.call.end_reason == "caller_hangup" else "other"

    log = recorder.open_call(CallRecord(call_id="d", robot="r", mode="pipeline"))
    log.add_turn(TurnRecord(call_id="d", idx=0, role="user", text="Алло"))
    log.finish("completed", "caller_hangup", outcome=decide)

    def broken(snapshot: CallSnapshot) -> str:
        raise RuntimeError("bug")

    other = recorder.open_call(CallRecord(call_id="e", robot="r", mode="pipeline"))
    other.finish("failed", "error", outcome=broken)  # a bug there never loses the record
    plain = recorder.open_call(CallRecord(call_id="f", robot="r", mode="pipeline"))
    plain.finish("completed", "robot_goodbye", outcome="answered")
    await recorder.aclose()

    assert seen[0].call.status == "completed" and len(seen[0].turns) == 1
    finished = {i.call.call_id: i for i in sink.items if isinstance(i, CallFinished)}
    assert finished["d"].call.outcome == "answered"
    assert finished["e"].call.outcome is None and finished["e"].call.status == "failed"
    assert finished["f"].call.outcome == "answered"
    # the outcome rides on the one finished item: no extra write per call
    assert [type(i) for i in sink.items if i.call.call_id == "d"] == [
        CallOpened,
        TurnWritten,
        CallFinished,
    ]


def test_an_amendment_is_spooled_as_one_line_with_its_changes() -> None:
    call = CallRecord(call_id="s", robot="r", mode="pipeline", status="completed", summary="Итог")
    entry = json.loads(encode_item(CallAmended(call, {"summary": "Итог"})).line)
    assert entry["k"] == "amended" and entry["changes"] == {"summary": "Итог"}
    assert entry["call"]["summary"] == "Итог" and entry["call"]["status"] == "completed"
