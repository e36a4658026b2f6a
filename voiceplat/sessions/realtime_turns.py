"""Realtime mode's turn bookkeeping: the robot's replies as the call plays them, and caller turns
between the service's `speech_started` and their transcript."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from voiceplat.audio.resample import StreamResampler
from voiceplat.providers.realtime.protocol import ItemAudio
from voiceplat.sessions.turn import RobotTurn
from voiceplat.storage.records import TurnRecord

if TYPE_CHECKING:
    from voiceplat.sessions.base import Session


@dataclass(slots=True)
class Scripted:
    """A phrase the robot must say (greeting, reprompt, goodbye), and when it has been heard."""

    text: str
    interruptible: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class RealtimeTurn(RobotTurn):
    """A robot turn whose words arrive as transcript deltas alongside the audio.

    Each delta is pinned to the stream position of the audio queued when it arrived, so the text
    the caller heard before a barge-in is the deltas up to the heard position, not a guess by
    proportion (a proportion of a two-word partial transcript is nothing).
    """

    spoken: str = ""
    pieces: list[tuple[float, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.spoken.strip()

    def heard_text(self) -> str:
        if self.interrupted_at_ms is None:
            return self.text
        if not self.pieces:
            return super().heard_text()
        heard = [piece for position, piece in self.pieces if position <= self.interrupted_at_ms]
        text = "".join(heard).strip()
        return text + "…" if text and len(heard) < len(self.pieces) else text


@dataclass(slots=True)
class Reply:
    """One model response as the call plays it."""

    response_id: str | None
    scripted: Scripted | None = None
    speech_ended: float | None = None
    """Session clock time the caller stopped speaking, for v2v (None for scripted replies)."""
    turn: RealtimeTurn | None = None
    """Created at the first audio, so a response cut before it spoke leaves no turn."""
    item: ItemAudio | None = None
    resampler: StreamResampler | None = None
    start_ms: float | None = None
    end_ms: float = 0.0
    text: str = ""
    pieces: list[tuple[float, str]] = field(default_factory=list)
    """Transcript deltas, each with the stream position of the audio queued when it came."""
    text_source: str | None = None
    active: bool = True
    """The server is still generating it (no response.done yet)."""
    cancelled: bool = False
    """Barge-in, or its speaker ended: further audio is dropped."""
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


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

    def __init__(self, session: Session) -> None:
        self._session = session
        self._pending: dict[str, PendingUser] = {}
        self._unnamed = itertools.count()

    def started(self, item_id: str | None, started: float) -> None:
        key = item_id or f"unnamed-{next(self._unnamed)}"
        if key not in self._pending:
            self._pending[key] = PendingUser(self._session.next_idx(), started)

    def stopped(self, item_id: str | None, ended: float, now: float) -> None:
        key = self._key(item_id, still_speaking=True)
        pending = self._pending.get(key) if key is not None else None
        if pending is not None:
            pending.ended, pending.stopped_at = ended, now
            self._session.call.event("speech_end", ms=round((ended - pending.started) * 1000))
        else:
            self._session.call.event("speech_end")

    def transcribed(self, item_id: str | None, text: str, error: str | None) -> None:
        session = self._session
        key = self._key(item_id, still_speaking=False)
        pending = self._pending.pop(key, None) if key is not None else None
        now = session.clock()
        if pending is None:  # no speech_started seen for it (e.g. just after a reconnect)
            pending = PendingUser(session.next_idx(), now, now)
        asr_ms = None if pending.stopped_at is None else (now - pending.stopped_at) * 1000
        session.call.event("asr_done", text=text, ms=None if asr_ms is None else round(asr_ms))
        self._record(pending, text, asr_ms, error)

    def _key(self, item_id: str | None, *, still_speaking: bool) -> str | None:
        """The pending turn an event is about: by its item, else the oldest that fits."""
        if item_id:
            return item_id
        for key, pending in self._pending.items():
            if not still_speaking or pending.ended is None:
                return key
        return None

    def drop(self, error: str) -> bool:
        """Caller turns whose transcript will never come: recorded without text.

        True if the caller finished one of them: those words are lost. (Speech still going on is
        in the backlog, which the next session hears.)"""
        lost = any(pending.ended is not None for pending in self._pending.values())
        for pending in self._pending.values():
            self._record(pending, "", None, error)
        self._pending.clear()
        return lost

    def _record(
        self, pending: PendingUser, text: str, asr_ms: float | None, error: str | None
    ) -> None:
        session = self._session
        session.call.add_turn(
            TurnRecord(
                call_id=session.call.record.call_id,
                idx=pending.idx,
                role="user",
                text=text,
                started_at=session.wall(pending.started),
                ended_at=session.wall(
                    pending.ended if pending.ended is not None else session.clock()
                ),
                asr_ms=asr_ms,
                error=error,
            )
        )
