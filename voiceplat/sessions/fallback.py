"""A provider failed inside a robot turn: record it, and say the fallback phrase if the caller has
heard nothing of the turn yet."""

from __future__ import annotations

import logging

from voiceplat.sessions.turn import RobotTurn
from voiceplat.sessions.turn_audio import TurnAudio
from voiceplat.storage.recorder import CallLog

log = logging.getLogger(__name__)


async def fall_back(
    audio: TurnAudio, call: CallLog, turn: RobotTurn, error: Exception, fallback_text: str | None
) -> None:
    """`fallback_text` None: say nothing (a goodbye: "please repeat" makes no sense there, and the
    TTS may be what just failed)."""
    turn.error = f"{type(error).__name__}: {error}"
    log.warning("call %s turn %d: %s", call.record.call_id, turn.idx, turn.error)
    call.event("error", turn=turn.idx, detail=turn.error)
    if turn.first_audio_at is not None or fallback_text is None:
        return
    try:
        await audio.synthesize(turn, fallback_text)
    except Exception as exc:  # the TTS itself may be what failed
        call.event("error", turn=turn.idx, detail=f"fallback phrase: {exc}")
