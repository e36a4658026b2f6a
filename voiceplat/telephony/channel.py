"""The call channel: the one interface a session talks to, whatever ingress carries the call.

Sessions never know which ingress (mod_audio_fork over WebSocket, SIP, ...) a call came through;
they see only `CallChannel`. Each ingress is an adapter under `telephony/ingress/` that implements
it. What an adapter must do:

An adapter's class also names its `source` (the call record's: "freeswitch", "asterisk",
"twilio", "web", ...), used when a call fails before its metadata arrives.

Inbound (caller to robot):
- `metadata()`: the call's `CallMetadata` first (call id, caller, callee, `source`, extra keys);
- caller audio as `AudioIn`, mono int16 LE at 8 kHz, through `audio()` or `receive_audio(handler)`;
  it resamples or decodes whatever the wire carries;
- DTMF keys as `DtmfIn` to the `on_dtmf` handler (keys pressed before the handler was set are
  delivered at once when it is, in order); an ingress without DTMF stores the handler only;
- the caller's hangup: `audio()` / `receive_audio()` raise `Hangup` (a broken peer:
  `CallProtocolError`), and `wait_heard` raises it for a turn the call's end cut short.

Outbound (robot to caller):
- `play(pcm8k)` queues robot audio, paced at real time by the ingress (`run_pacer` lives as long as
  the call's media); `clear()` drops what is queued and flushes the peer's buffer (barge-in);
- what the caller has heard: `heard_ms()` / `wait_heard()` from marks the peer answers, or, for an
  ingress without marks, from the playout clock alone (`playout_model.PlayoutModel`); `mark(name)`
  answers "unsent" there;
- `transfer(target)`: a blind transfer; the answer is a `TransferResult`, never an exception for a
  refusal;
- `disconnect()`: the robot hangs up (SIP: BYE), then closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from voiceplat.telephony.events import AudioIn, CallMetadata, DtmfIn, TransferResult

CLOSE_REASON_WAIT_S = 10.0
"""How long a robot turn cut by the end of the call waits for the transport to say why it ended."""


class Hangup(Exception):
    """The peer closed the connection (or the ingress saw the call die: `end_reason` says how)."""

    def __init__(self, end_reason: str = "caller_hangup") -> None:
        super().__init__(end_reason)
        self.end_reason = end_reason


AudioHandler = Callable[[AudioIn], Coroutine[Any, Any, None] | None]
"""Handles one piece of caller audio at once; returns work the next audio must wait for, if any."""

DtmfHandler = Callable[[DtmfIn], None]
"""Handles one key the caller pressed; called in the ingress's reader, so it must not block."""


class CallChannel(Protocol):
    """One call as a session sees it (see the module docstring for what each ingress provides)."""

    closed: bool

    async def metadata(self) -> CallMetadata:
        """The call's metadata: the first thing a session awaits."""
        ...

    async def audio(self) -> AudioIn:
        """Next caller audio. Raises Hangup, CallProtocolError."""
        ...

    async def receive_audio(self, handler: AudioHandler) -> None:
        """Hands every caller audio to `handler` as it arrives; raises when the call ends."""
        ...

    def on_dtmf(self, handler: DtmfHandler) -> None:
        """Sets the DTMF handler; digits that came earlier are delivered at once, in order."""
        ...

    @property
    def queued_ms(self) -> float:
        """Stream position at the end of everything queued so far."""
        ...

    def heard_ms(self) -> float: ...

    def speaking(self) -> bool:
        """Robot audio is queued or still playing at the caller's end."""
        ...

    def play(self, data: bytes) -> tuple[float, float]:
        """Queues 8 kHz s16le mono audio; returns its (start, end) stream positions in ms."""
        ...

    def mark(self, name: str) -> asyncio.Future[str]:
        """Queues a mark after the audio queued so far; the future gives the peer's answer."""
        ...

    async def clear(self) -> float:
        """Barge-in: drops queued audio, flushes the peer's buffer. Returns the heard position."""
        ...

    async def wait_heard(self, timeout_s: float) -> None:
        """Waits until the caller has heard everything queued so far (at most `timeout_s`)."""
        ...

    async def transfer(self, target: str) -> TransferResult:
        """Blind transfer to `target`; never raises for a refusal."""
        ...

    async def disconnect(self) -> None:
        """The robot hangs up (SIP: BYE), then closes."""
        ...

    async def close(self) -> None: ...

    async def run_pacer(self) -> None:
        """Lives as long as the call's media; raises if pacing failed."""
        ...
