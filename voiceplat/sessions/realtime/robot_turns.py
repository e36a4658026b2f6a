"""Realtime mode's robot-side bookkeeping: a model response as the call plays it, the robot turn
it becomes, and the scripted phrases the model is asked to say."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voiceplat.audio.resample import StreamResampler
from voiceplat.providers.realtime.timelines import ItemAudio
from voiceplat.sessions.turn import RobotTurn


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
