"""LiveCalls: the calls in progress in a robot process, and their events for subscribers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from voiceplat.storage.live import LiveCalls
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import (
    CallAmended,
    CallFinished,
    CallOpened,
    CallRecord,
    CallSnapshot,
    CallUpdated,
    EventLogged,
    LogEvent,
    TurnRecord,
    TurnWritten,
)

T0 = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)


def _call(call_id: str = "c1", **fields: object) -> CallRecord:
    return CallRecord.model_validate(
        {"call_id": call_id, "robot": "bot", "mode": "pipeline", "started_at": T0, **fields}
    )


def _turn(call_id: str, idx: int, role: str = "user", text: str = "") -> TurnRecord:
    return TurnRecord.model_validate({"call_id": call_id, "idx": idx, "role": role, "text": text})


def test_calls_keeps_calls_in_progress_with_their_turns_oldest_first() -> None:
    live = LiveCalls()
    live.apply(CallOpened(_call("c1", caller="+7900")))
    live.apply(CallOpened(_call("c2")))
    c1 = _call("c1", caller="+7900", turns=2)
    live.apply(TurnWritten(c1, _turn("c1", 0, text="привет")))
    live.apply(TurnWritten(c1, _turn("c1", 1, "robot", "здравствуйте")))
    live.apply(TurnWritten(c1, _turn("c1", 1, "robot", "здравствуйте!")))

    calls = live.calls()
    assert [c.call.call_id for c in calls] == ["c1", "c2"]
    assert calls[0].call.caller == "+7900"
    assert calls[0].call.turns == 2
    assert [(t.idx, t.text) for t in calls[0].turns] == [(0, "привет"), (1, "здравствуйте!")]
    assert calls[1].turns == []


def test_a_finished_call_leaves_and_a_late_amendment_does_not_bring_it_back() -> None:
    live = LiveCalls()
    live.apply(CallOpened(_call("c1")))
    finished = _call("c1", status="completed", end_reason="caller_hangup", ended_at=T0)
    live.apply(CallFinished(CallSnapshot(call=finished)))
    live.apply(CallAmended(finished, {"summary": "s"}))
    assert live.calls() == []
    assert live.get("c1") is None


def test_a_call_first_seen_mid_call_is_picked_up() -> None:
    live = LiveCalls()
    live.apply(TurnWritten(_call("c9", turns=1), _turn("c9", 0, text="алло")))
    (call,) = live.calls()
    assert call.call.call_id == "c9"
    assert [t.text for t in call.turns] == ["алло"]


async def test_subscribers_get_the_events_of_their_call_in_order() -> None:
    live = LiveCalls()
    every = live.subscribe()
    only_c2 = live.subscribe("c2")
    live.apply(CallOpened(_call("c1")))
    live.apply(CallOpened(_call("c2")))
    live.apply(CallUpdated(_call("c2", answered_at=T0)))
    live.apply(TurnWritten(_call("c2", turns=1), _turn("c2", 0, text="да")))
    barge = LogEvent(at=T0, event="barge_in", data={"turn": 1})
    live.apply(EventLogged(_call("c2", turns=1), barge))
    live.apply(EventLogged(_call("c2", turns=1), LogEvent(at=T0, event="speech_start")))
    ended = _call("c2", status="completed", end_reason="robot_goodbye", ended_at=T0)
    live.apply(CallFinished(CallSnapshot(call=ended)))
    only_c2.close()
    every.close()

    got = [(e.type, e.call_id) async for e in only_c2]
    assert got == [
        ("call_started", "c2"),
        ("call_updated", "c2"),
        ("turn", "c2"),
        ("barge_in", "c2"),
        ("call_ended", "c2"),
    ]
    events = [e async for e in every]
    assert [e.type for e in events][:2] == ["call_started", "call_started"]
    assert len(events) == 6
    turn_event = events[3]
    assert turn_event.turn is not None and turn_event.turn.text == "да"
    assert events[4].data == {"turn": 1}
    assert events[5].call is not None and events[5].call.end_reason == "robot_goodbye"
    assert live.subscribers == 0


async def test_a_slow_subscriber_loses_its_oldest_events_not_the_newest() -> None:
    live = LiveCalls(max_queue=2)
    subscription = live.subscribe()
    for n in range(5):
        live.apply(CallOpened(_call(f"c{n}")))
    subscription.close()
    assert [e.call_id async for e in subscription] == ["c3", "c4"]
    assert subscription.dropped == 3


async def test_a_waiting_subscriber_wakes_on_the_next_event() -> None:
    live = LiveCalls()
    subscription = live.subscribe()
    waiting = asyncio.create_task(subscription.__anext__())
    await asyncio.sleep(0)  # the reader is now waiting on an empty queue
    assert not waiting.done()
    live.apply(CallOpened(_call("c1")))
    event = await asyncio.wait_for(waiting, 60)
    assert event.type == "call_started"
    await live.aclose()
    assert [e async for e in subscription] == []


async def test_fed_by_a_real_recorder() -> None:
    live = LiveCalls()
    recorder = Recorder([live])
    await recorder.start()
    subscription = live.subscribe()
    call_log = recorder.open_call(_call("r1"))
    call_log.add_turn(_turn("r1", 0, text="алло"))
    started = await asyncio.wait_for(anext(aiter(subscription)), 60)
    turn = await asyncio.wait_for(anext(aiter(subscription)), 60)
    assert (started.type, turn.type) == ("call_started", "turn")
    assert [t.text for t in live.calls()[0].turns] == ["алло"]
    call_log.finish("completed", "caller_hangup")
    ended = await asyncio.wait_for(anext(aiter(subscription)), 60)
    assert ended.type == "call_ended"
    assert live.calls() == []
    await recorder.aclose()
