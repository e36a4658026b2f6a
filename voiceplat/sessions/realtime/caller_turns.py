"""Realtime mode's caller turns, between the service's `speech_started` and their transcript."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from voiceplat.storage.recorder import CallLog
from voiceplat.storage.records import TurnRecord


@dataclass(slots=True)
class PendingUser:
    idx: int
    started: float
    ended: float | None = None
    stopped_at: float | None = None


class CallerTurns:
    """Caller turns the service has heard but not transcribed yet, keyed by conversation item.

    A turn takes its index when the caller starts speaking, so the call's turns stay in spoken
    order although the transcript comes after the robot has begun to answer. Servers that leave
    `item_id` out are answered in order: an event without one belongs to the oldest turn that
    can take it (the service reports turns in the order they were spoken).
    """

    def __init__(
        self,
        call: CallLog,
        *,
        next_idx: Callable[[], int],
        clock: Callable[[], float],
        wall: Callable[[float], datetime],
    ) -> None:
        """`next_idx`: the call's turn numbering; `wall`: session clock → wall-clock time."""
        self._call = call
        self._next_idx = next_idx
        self._clock = clock
        self._wall = wall
        self._pending: dict[str, PendingUser] = {}
        self._unnamed = itertools.count()
        self.speaking = False
        """Between the service's speech_started and speech_stopped."""

    def started(self, item_id: str | None, started: float) -> None:
        self.speaking = True
        key = item_id or f"unnamed-{next(self._unnamed)}"
        if key not in self._pending:
            self._pending[key] = PendingUser(self._next_idx(), started)

    def stopped(self, item_id: str | None, ended: float, now: float) -> None:
        self.speaking = False
        key = self._key(item_id, still_speaking=True)
        pending = self._pending.get(key) if key is not None else None
        if pending is not None:
            pending.ended, pending.stopped_at = ended, now
            self._call.event("speech_end", ms=round((ended - pending.started) * 1000))
        else:
            self._call.event("speech_end")

    def transcribed(self, item_id: str | None, text: str, error: str | None) -> None:
        key = self._key(item_id, still_speaking=False)
        pending = self._pending.pop(key, None) if key is not None else None
        now = self._clock()
        if pending is None:  # no speech_started seen for it (e.g. just after a reconnect)
            pending = PendingUser(self._next_idx(), now, now)
        asr_ms = None if pending.stopped_at is None else (now - pending.stopped_at) * 1000
        self._call.event("asr_done", text=text, ms=None if asr_ms is None else round(asr_ms))
        self._record(pending, text, asr_ms, error)

    def drop(self, error: str) -> bool:
        """Caller turns whose transcript will never come: recorded without text.

        True if the caller finished one of them: those words are lost. (Speech still going on is
        in the backlog, which the next session hears.)"""
        self.speaking = False
        lost = any(pending.ended is not None for pending in self._pending.values())
        for pending in self._pending.values():
            self._record(pending, "", None, error)
        self._pending.clear()
        return lost

    def _key(self, item_id: str | None, *, still_speaking: bool) -> str | None:
        """The pending turn an event is about: by its item, else the oldest that fits."""
        if item_id:
            return item_id
        for key, pending in self._pending.items():
            if not still_speaking or pending.ended is None:
                return key
        return None

    def _record(
        self, pending: PendingUser, text: str, asr_ms: float | None, error: str | None
    ) -> None:
        ended = pending.ended if pending.ended is not None else self._clock()
        self._call.add_turn(
            TurnRecord(
                call_id=self._call.record.call_id,
                idx=pending.idx,
                role="user",
                text=text,
                started_at=self._wall(pending.started),
                ended_at=self._wall(ended),
                asr_ms=asr_ms,
                error=error,
            )
        )
