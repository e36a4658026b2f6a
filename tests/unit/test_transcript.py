"""CallTranscript: ignored user turns are recorded but not in the dialog; robot turns carry their
starvation and resume counts into the record; old spooled turns still make PostgreSQL rows."""

from __future__ import annotations

from datetime import UTC, datetime

from voiceplat.sessions.transcript import CallTranscript
from voiceplat.sessions.turn import RobotTurn, SpokenSentence
from voiceplat.storage.postgres import turn_row
from voiceplat.storage.recorder import CallLog, Recorder
from voiceplat.storage.records import CallRecord, TurnRecord

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def transcript() -> tuple[CallTranscript, CallLog]:
    call = Recorder([]).open_call(CallRecord(call_id="c1", robot="r", mode="pipeline"))
    return (
        CallTranscript(
            call,
            started_clock=100.0,
            started_wall=START,
            prompt="Ты регистратор.",
            history_turns=20,
            goodbye_words=["до свидания"],
        ),
        call,
    )


def test_an_ignored_utterance_is_recorded_with_its_reason_but_not_shown_to_the_models() -> None:
    calls, log = transcript()
    first = calls.record_user_turn("Хочу записаться", 101.0, 102.5, 120.0)
    noise = calls.record_user_turn(
        "Продолжение следует...", 105.0, 105.4, 90.0, ignored="hallucination"
    )
    assert (first, noise) == (0, 1)
    records = {turn.idx: turn for turn in log.turns}
    assert records[1].text == "Продолжение следует..."
    assert records[1].ignored == "hallucination"
    assert records[1].started_at == datetime(2026, 12, 2, 9, 0, 5, tzinfo=UTC)
    assert records[0].ignored is None
    assert [m.content for m in calls.dialog()] == ["Ты регистратор.", "Хочу записаться"]


def test_an_ignored_goodbye_is_not_the_callers_last_words() -> None:
    calls, _ = transcript()
    calls.record_user_turn("Спасибо", 101.0, 102.0, None)
    calls.record_user_turn("До свидания", 103.0, 104.0, None, ignored="low_confidence")
    assert not calls.caller_said_goodbye()
    calls.record_user_turn("До свидания", 105.0, 106.0, None)
    assert calls.caller_said_goodbye()


def test_a_robot_turn_records_its_dead_air_and_resumes() -> None:
    calls, log = transcript()
    turn = RobotTurn(idx=calls.next_idx(), sentences=[SpokenSentence("Здравствуйте!", 0, 900)])
    turn.starved_ms = 420.0
    turn.starved_max_ms = 310.0
    turn.resumed = 2
    calls.record_robot_turn(turn)
    quiet = RobotTurn(idx=calls.next_idx(), sentences=[SpokenSentence("Да.", 0, 300)])
    calls.record_robot_turn(quiet)
    first, second = log.turns
    assert (first.starved_ms, first.starved_max_ms, first.resumed) == (420.0, 310.0, 2)
    assert (second.starved_ms, second.starved_max_ms, second.resumed) == (None, None, 0)


def test_a_turn_spooled_before_the_new_fields_still_makes_a_row() -> None:
    new = TurnRecord(call_id="c1", idx=3, role="robot", starved_ms=12.5, resumed=1)
    old = new.model_dump(mode="json")
    for name in ("ignored", "starved_ms", "starved_max_ms", "resumed"):
        del old[name]
    assert turn_row(new.model_dump(mode="json"))[-4:] == (None, 12.5, None, 1)
    assert turn_row(old)[-4:] == (None, None, None, 0)
