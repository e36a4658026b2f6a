"""The Asterisk chan_websocket ingress: one call's WebSocket as a `CallChannel`.

Asterisk connects (websocket_client.conf), says MEDIA_START, then streams the caller's audio;
events and commands are in `codec.py`. Asterisk queues what we send (up to 1000 frames) and
plays it at its own 20 ms timer, so the robot may send ahead; we still pace at real time with a
small lead, as for mod_audio_fork, so that FLUSH_MEDIA (barge-in) has little to drop and the
playout clock (`PlayoutModel`) stays a true lower bound. Asterisk answers MARK_MEDIA when its
dequeue reaches the mark, i.e. once the audio before it has played: `PeerMarks` (marks.py) waits
for that at a turn's end. FLUSH_MEDIA drops queued marks unanswered, so they count as cleared.
Audio goes out in whole `optimal_frame_size` frames (Asterisk drops a shorter remainder), a turn's
last frame padded with silence. MEDIA_XOFF stops our audio until MEDIA_XON. The pacing, the playout clock and the marks'
bookkeeping are `paced.MarkedChannel`'s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Unpack

from voiceplat.audio.pcm import frame_bytes
from voiceplat.telephony.events import (
    CallMetadata,
    CallProtocolError,
    TransferResult,
)
from voiceplat.telephony.ingress.asterisk_ws import codec
from voiceplat.telephony.ingress.paced import MarkedChannel, Pacing, Transport
from voiceplat.telephony.marks import Mark

log = logging.getLogger(__name__)

SILENCE = {"slin": b"\x00", "slin16": b"\x00", "ulaw": b"\xff", "alaw": b"\xd5"}


class AsteriskWsChannel(MarkedChannel):
    source = "asterisk"
    """The call record's source, also of a call refused before MEDIA_START."""
    peer = "Asterisk"

    def __init__(
        self,
        transport: Transport,
        *,
        params: dict[str, str] | None = None,
        refused: str | None = None,
        **pacing: Unpack[Pacing],
    ) -> None:
        """`params`: the request URI's query; `refused`: why the connection is not let in (auth
        that no handshake check refused first: the handshake's 401 normally comes before)."""
        super().__init__(transport, **pacing)
        self._decoder = codec.AsteriskWsDecoder(params)
        self._encoder = codec.AsteriskWsEncoder(json_format=False)
        self._wire = bytearray()  # encoded audio short of a whole frame
        self._frame = 0  # optimal_frame_size, from MEDIA_START
        self._xoff = False
        if refused is not None:
            self._fail(CallProtocolError(refused))
        transport.attach(self)

    # -- inbound: called by the transport's reader -----------------------------------------
    def _decode(self, message: str | bytes) -> list[codec.Event]:
        if isinstance(message, str):
            return self._decoder.text(message)
        return self._decoder.binary(message)

    def _on_event(self, event: codec.Event) -> None:
        if isinstance(event, codec.FlowControl):
            self._xoff = event.paused
            if not event.paused:
                self._pacer.wake(self)
        elif isinstance(event, codec.MediaStart):
            self._encoder = codec.AsteriskWsEncoder(event.json_format)
            self._frame = event.optimal_frame_size
            # Chunks of whole frames: Asterisk drops what is short of one.
            frames = max(1, round(self._chunk_ms / max(1, event.ptime)))
            self._chunk_bytes = frame_bytes(frames * event.ptime)
        elif isinstance(event, CallMetadata):
            self._metadata = event
            self._metadata_ready.set()
        elif isinstance(event, codec.AsteriskError):
            log.warning("Asterisk refused a command: %s", event.text[:200])
        else:
            super()._on_event(event)  # caller audio, a key, a mark's answer

    # -- outbound --------------------------------------------------------------------------
    def mark(self, name: str) -> asyncio.Future[str]:
        """A mark after the audio queued so far: "playout" once Asterisk has played up to it,
        "cleared" if a barge-in dropped it, "unsent" if marks are not trusted any more."""
        return self._queue_mark(codec.mark_id(name)).reply

    async def clear(self) -> float:
        """Barge-in: drops queued audio here and Asterisk's queue (FLUSH_MEDIA, which drops the
        marks it holds, unanswered)."""
        heard = self._drop_queued(self._clock())
        self._wire.clear()
        self._send(self._encoder.flush())
        return heard

    async def transfer(self, target: str) -> TransferResult:
        return TransferResult(
            accepted=False,
            reason="chan_websocket has no transfer command: transfer in the dialplan after the call",
        )

    async def disconnect(self) -> None:
        """HANGUP, then the close (either alone hangs the channel up)."""
        self._send(self._encoder.hangup())
        await self.close()

    def _audio_paused(self) -> bool:
        return self._xoff  # MEDIA_XON wakes us

    def pace(self, now: float, horizon: float) -> float | None:
        next_due = super().pace(now, horizon)
        if not self._queue:
            self._flush_wire(now)
        return next_due

    def _mark_message(self, name: str) -> str:
        return self._encoder.mark(name)

    def _send_mark(self, mark: Mark, now: float) -> None:
        self._flush_wire(now)  # the mark goes after all the audio before it
        super()._send_mark(mark, now)

    def _send_audio(self, chunk: bytes, now: float) -> None:
        transcoder = self._decoder.transcoder
        if transcoder is None or not self._frame:
            return  # no MEDIA_START yet: there is no call to play to
        self._wire += transcoder.encode(chunk)
        whole = len(self._wire) - len(self._wire) % self._frame
        if whole:
            self._send_wire(bytes(self._wire[:whole]), now)
            del self._wire[:whole]

    def _flush_wire(self, now: float) -> None:
        """Sends what is short of a frame, padded with silence to a whole one."""
        if self._wire and self._decoder.start is not None:
            fmt = self._decoder.start.format
            pad = self._frame - len(self._wire)
            self._wire += SILENCE[fmt.name] * pad
            self._send_wire(bytes(self._wire), now)
            self._wire.clear()

    def _send_wire(self, wire: bytes, now: float) -> None:
        fmt = self._decoder.start.format if self._decoder.start else None
        if fmt is None:
            return
        self.playout.on_send(len(wire) / fmt.sample_bytes * 1000.0 / fmt.rate, now)
        self._send(wire)
