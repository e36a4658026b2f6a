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


DtmfMethod = Literal["rfc4733", "sip_info", "inband", "other"]


@dataclass(frozen=True, slots=True)
class DtmfIn:
    """A key the caller pressed: one of 0-9 * # A-D."""

    digit: str
    method: DtmfMethod = "rfc4733"


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How the peer answered a blind transfer (REFER, or the ingress's own transfer command).

    `accepted` means the peer took the call over (for SIP: REFER 202 and a NOTIFY with a 2xx, or
    an ingress whose transfer command has no answer); otherwise `status`/`reason` say why not."""

    accepted: bool
    status: int | None = None
    reason: str = ""
