"""The call records the page tests find: written by the real JsonFileSink into each fixture robot's
logs_dir, one with a stereo WAV recording (caller left, robot right, 8 kHz) made here.

The tests assert on the names below (what a user would read on the pages), so they live in one place.
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from voiceplat.storage.jsonfile import JsonFileSink, file_name
from voiceplat.storage.records import CallRecord, CallSnapshot, LogEvent, TurnRecord

if TYPE_CHECKING:
    from voiceplat.robot import Robot

RATE = 8000
RECORDING_S = 6.0

RECEPTION = "call-reception"
"""echo: 4 turns, the first robot turn cut by a barge-in, a TTS error in its log, a recording."""
BOOKING = "call-booking"
FAILED = "call-failed"
FILLERS = [f"call-old-{n:02d}" for n in range(9)]
"""echo: finished calls on an older day (2026-01-15), no_input: for the date filter and paging."""
ALL_CALLS = [RECEPTION, BOOKING, FAILED, *FILLERS]

QUESTION = "Здравствуйте, когда работает регистратура?"
ANSWER = "Регистратура работает с восьми утра до восьми вечера, а в субботу до трёх."
HEARD = "Регистратура работает с восьми утра"
SECOND_QUESTION = "А в воскресенье?"
SECOND_ANSWER = "В воскресенье регистратура закрыта."
TTS_ERROR = "tts: connection reset by peer"
BOOKING_QUESTION = "Хочу записаться к терапевту на пятницу"
LLM_ERROR = "llm: no answer within 10 s"
OLD_DAY = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)

# (role, text, start s, end s) of the reception call, on the recording's clock (0 = answered).
RECEPTION_TURNS = [
    ("user", QUESTION, 0.3, 2.0),
    ("robot", ANSWER, 2.3, 3.1),
    ("user", SECOND_QUESTION, 3.2, 3.8),
    ("robot", SECOND_ANSWER, 4.5, 5.8),
]

RECEPTION_V2V = {1: 820.0, 3: 700.0}
"""v2v of the reception call's answers (by turn idx)."""


@dataclass
class Seeded:
    calls: list[str]
    recording: Path
    """The reception call's WAV (RECORDING_S long)."""
    recording_in_record: bool
    """False while CallRecord has no `recording` field (the page then has nothing to play)."""


def write_stereo_wav(path: Path) -> None:
    """Tones where each side speaks: the caller (left, 440 Hz), the robot (right, 660 Hz)."""
    frames = int(RECORDING_S * RATE)
    left = [0] * frames
    right = [0] * frames
    for role, _text, start, end in RECEPTION_TURNS:
        channel, freq = (left, 440.0) if role == "user" else (right, 660.0)
        for i in range(int(start * RATE), int(end * RATE)):
            channel[i] = int(8000 * math.sin(2 * math.pi * freq * i / RATE))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(
            b"".join(struct.pack("<hh", lt, rt) for lt, rt in zip(left, right, strict=True))
        )


def _reception(robot_dir: Path, started: datetime) -> tuple[CallSnapshot, Path]:
    at = lambda s: started + timedelta(seconds=s)  # noqa: E731 - a clock for this call only
    turns = []
    for idx, (role, text, start, end) in enumerate(RECEPTION_TURNS):
        turn = TurnRecord(
            call_id=RECEPTION, idx=idx, role=role, text=text, started_at=at(start), ended_at=at(end)
        )
        if role == "user":
            turn.asr_ms = 180.0
        else:
            turn.llm_ttft_ms, turn.tts_ttfb_ms, turn.v2v_ms = 310.0, 140.0, RECEPTION_V2V[idx]
        turns.append(turn)
    turns[1].interrupted, turns[1].heard_text = True, HEARD
    log = [
        LogEvent(at=at(0.3), event="speech_start"),
        LogEvent(at=at(2.0), event="speech_end"),
        LogEvent(at=at(2.25), event="asr_done", data={"text": QUESTION, "ms": 180.0}),
        LogEvent(at=at(2.28), event="llm_first_token"),
        LogEvent(at=at(2.3), event="first_sentence", data={"turn": 1, "ms": 420.0}),
        LogEvent(at=at(2.3), event="tts_first_audio"),
        LogEvent(at=at(3.1), event="barge_in", data={"heard_text": HEARD}),
        LogEvent(at=at(4.2), event="error", data={"provider": "tts", "message": TTS_ERROR}),
        LogEvent(at=at(4.5), event="tts_first_audio"),
    ]
    call = CallRecord(
        call_id=RECEPTION,
        robot=robot_dir.name,
        mode="pipeline",
        source="simulator",
        caller="+79161234567",
        callee="100",
        started_at=started,
        answered_at=started,
        ended_at=at(RECORDING_S),
        duration_sec=RECORDING_S,
        status="completed",
        end_reason="caller_hangup",
        turns=len(turns),
        outcome="answered",
    )
    wav = robot_dir / "recordings" / file_name(call).replace(".json", ".wav")
    write_stereo_wav(wav)
    if "recording" in CallRecord.model_fields:
        call = call.model_copy(update={"recording": str(wav)})
    return CallSnapshot(call=call, turns=turns, pipeline_log=log), wav


def _booking(robot: str, started: datetime) -> CallSnapshot:
    call = CallRecord(
        call_id=BOOKING,
        robot=robot,
        mode="pipeline",
        source="freeswitch",
        caller="+74951112233",
        started_at=started,
        answered_at=started,
        ended_at=started + timedelta(seconds=42),
        duration_sec=42.0,
        status="completed",
        end_reason="robot_goodbye",
        turns=2,
        outcome="booked",
    )
    turns = [
        TurnRecord(call_id=BOOKING, idx=0, role="user", text=BOOKING_QUESTION, started_at=started),
        TurnRecord(
            call_id=BOOKING,
            idx=1,
            role="robot",
            text="Записала вас к терапевту на пятницу, до свидания!",
            started_at=started + timedelta(seconds=3),
            v2v_ms=910.0,
        ),
    ]
    return CallSnapshot(call=call, turns=turns)


def _failed(robot: str, started: datetime) -> CallSnapshot:
    call = CallRecord(
        call_id=FAILED,
        robot=robot,
        mode="pipeline",
        source="freeswitch",
        caller="+78120000000",
        started_at=started,
        ended_at=started + timedelta(seconds=12),
        duration_sec=12.0,
        status="failed",
        end_reason="error",
        turns=2,
        outcome="failed",
    )
    turns = [
        TurnRecord(
            call_id=FAILED,
            idx=0,
            role="user",
            text="Алло, вы меня слышите?",
            started_at=started + timedelta(seconds=1),
        ),
        TurnRecord(
            call_id=FAILED,
            idx=1,
            role="robot",
            text="",
            error=LLM_ERROR,
            started_at=started + timedelta(seconds=3),
        ),
    ]
    log = [
        LogEvent(
            at=started + timedelta(seconds=12),
            event="error",
            data={"provider": "llm", "message": LLM_ERROR},
        )
    ]
    return CallSnapshot(call=call, turns=turns, pipeline_log=log)


def _filler(robot: str, call_id: str, n: int) -> CallSnapshot:
    started = OLD_DAY + timedelta(minutes=n)
    call = CallRecord(
        call_id=call_id,
        robot=robot,
        mode="pipeline",
        source="freeswitch",
        caller=f"+7900000000{n}",
        started_at=started,
        ended_at=started + timedelta(seconds=20),
        duration_sec=20.0,
        status="completed",
        end_reason="no_input",
        turns=1,
    )
    turn = TurnRecord(
        call_id=call_id,
        idx=0,
        role="robot",
        text="Вас не слышно, до свидания.",
        started_at=started + timedelta(seconds=19),
    )
    return CallSnapshot(call=call, turns=[turn])


async def seed_calls(echo: Robot, clinic: Robot, now: datetime) -> Seeded:
    """Writes every seeded call with JsonFileSink into the robots' logs_dir."""
    echo_sink = JsonFileSink(echo.logs_dir)
    clinic_sink = JsonFileSink(clinic.logs_dir)
    # Today's calls between 00:00 UTC and now, however soon after midnight: "calls today" counts them.
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = lambda part: midnight + (now - midnight) * part  # noqa: E731
    reception, wav = _reception(echo.directory, today(0.9))
    await echo_sink.write(reception)
    await clinic_sink.write(_booking(clinic.name, today(0.6)))
    await clinic_sink.write(_failed(clinic.name, today(0.3)))
    for n, call_id in enumerate(FILLERS):
        await echo_sink.write(_filler(echo.name, call_id, n))
    return Seeded(ALL_CALLS, wav, "recording" in CallRecord.model_fields)
