"""What a call channel delivers to a session, whatever protocol the call came through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class CallMetadata:
    call_id: str
    caller: str | None = None
    callee: str | None = None
    source: str = "freeswitch"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AudioIn:
    """Caller audio: mono int16 LE at 8 kHz, any whole number of samples."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MarkReply:
    name: str
    event: Literal["playout", "cleared"]


class CallProtocolError(ValueError):
    """The call's peer broke its media protocol (a bad frame, bad metadata, audio too fast); the
    call ends with this reason (`protocol_error`)."""
