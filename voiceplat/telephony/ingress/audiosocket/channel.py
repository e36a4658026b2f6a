"""One Asterisk AudioSocket call as a `CallChannel` (the protocol: `codec.py`).

Outbound it is the browser ingress's channel (`ingress/web.py`, which it extends): robot audio
paced in real time by the shared `Pacer`, here in 20 ms frames (320 bytes, what Asterisk sends
and expects) a small lead ahead (`AudioSocketSettings.lead_ms`); Asterisk answers no marks, so
what the caller heard is the playout clock alone (`PlayoutModel`). Barge-in drops what is queued
here: Asterisk has no buffer to flush, audio it got has already gone to the caller.

The robot hangs up with a hangup frame (Asterisk's AudioSocket() returns and the dialplan goes on,
so the dialplan decides what happens next: Hangup(), a queue, an agent). There is no transfer
in the protocol: `transfer()` is refused with a reason (a dialplan after AudioSocket() can route
the call). Bad input ends the call as `protocol_error` and closes the socket.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol

from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, TransferResult
from voiceplat.telephony.ingress.audiosocket.codec import AudioSocketDecoder
from voiceplat.telephony.ingress.web import WebChannel
from voiceplat.telephony.pacer import Pacer

FRAME_MS = 20

Lookup = Callable[[str], CallMetadata]
"""The call's metadata for a UUID (caller/callee registered by the dialplan, if any)."""


class StreamTransport(Protocol):
    """A TCP connection as `WebChannel` uses it; `send_now(bytes)` sends one audio frame."""

    def attach(self, receiver: AudioSocketChannel) -> None: ...
    def send_now(self, message: str | bytes) -> bool: ...
    def send_hangup(self) -> None: ...
    def write_ready(self) -> bool: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class AudioSocketChannel(WebChannel):
    source = "asterisk"
    """The call record's source when the call fails before its metadata."""

    def __init__(
        self,
        transport: StreamTransport,
        lookup: Lookup,
        *,
        lead_ms: int = 100,
        max_audio_ahead_s: float = 3.0,
        pacer: Pacer | None = None,
    ) -> None:
        super().__init__(
            transport,  # type: ignore[arg-type]  # attach() takes this channel, not a Receiver
            lead_ms=lead_ms,
            chunk_ms=FRAME_MS,
            max_audio_ahead_s=max_audio_ahead_s,
            pacer=pacer,
        )
        self._stream = transport
        self._codec = AudioSocketDecoder()
        self._lookup = lookup

    # -- inbound: called by the connection ---------------------------------------------------
    def on_data(self, data: bytes) -> None:
        if self._inbound.failure is not None:
            return  # the stream is already broken; the call is ending
        try:
            for event in self._codec.feed(data):
                if isinstance(event, AudioIn):
                    self._check_rate(event)
                    self._inbound.push(event)
                elif isinstance(event, uuid.UUID):
                    self._metadata = self._lookup(str(event))
                    self._metadata_ready.set()
                elif isinstance(event, Hangup):
                    self._fail(event)
                else:
                    self._on_key(event)
        except CallProtocolError as exc:
            self._fail(exc)

    def on_eof(self) -> None:
        """Asterisk closed the socket: the caller hung up."""
        try:
            self._fail(self._codec.end_of_stream())
        except CallProtocolError as exc:
            self._fail(exc)
        self._set_closed()

    def on_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._fail(Hangup("caller_hangup"))  # a reset: the PBX or its host went away
        self._set_closed()

    # -- outbound ----------------------------------------------------------------------------
    async def clear(self) -> float:
        """Barge-in: drops what is queued; Asterisk holds nothing to flush."""
        return self._drop_pending()

    async def transfer(self, target: str) -> TransferResult:
        return TransferResult(
            accepted=False,
            reason="AudioSocket has no transfer; route the call in the dialplan after AudioSocket()",
        )

    async def disconnect(self) -> None:
        """The robot hangs up: a hangup frame, then the socket closes."""
        if not self.closed:
            self._stream.send_hangup()
        await self.close()

    async def close(self) -> None:
        self._set_closed()
        await self._stream.close()
