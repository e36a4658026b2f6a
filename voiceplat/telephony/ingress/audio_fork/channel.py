"""The mod_audio_fork ingress: one call's WebSocket connection as a `CallChannel`.

Protocol events in (decoded by `codec.py`); paced audio, marks and commands out (the pacing, the
playout clock and the marks' bookkeeping are `paced.MarkedChannel`'s). Sessions see only the
neutral `telephony.channel.CallChannel`; `telephony/server.py` builds this adapter per connection.

When has the caller heard a robot turn? The playout clock (`PlayoutModel`) gives the earliest
moment: audio is not heard before it was sent, nor faster than real time. A mark reply confirms it,
as far as the peer answers marks truly: `PeerMarks` (marks.py) keeps that bookkeeping and decides
when `wait_heard` returns. The channel also keeps what mod_audio_fork would mishandle out of the stream: it never sends a -1
sample (taken for a marker), never more than `MAX_MARKS` unanswered marks (more are discarded),
pads a turn's end with the silence that releases audio the pre-buffer would hold until the next
turn, and sends nothing for `KILL_SETTLE_S` after a killAudio (the module flushes at its next frame).
mod_audio_fork sends no DTMF, and its transfer command has no answer.
"""

from __future__ import annotations

import contextlib
import math
from typing import Unpack

from voiceplat.audio.pcm import CALL_RATE, duration_ms
from voiceplat.telephony.events import (
    AudioIn,
    CallMetadata,
    CallProtocolError,
    MarkReply,
    TransferResult,
)
from voiceplat.telephony.ingress.audio_fork import codec as audio_fork
from voiceplat.telephony.ingress.paced import MarkedChannel, Pacing, Transport
from voiceplat.telephony.marks import Mark

__all__ = ["KILL_SETTLE_S", "AudioForkChannel", "Transport"]

KILL_SETTLE_S = 0.04
"""After killAudio nothing is sent for this long: mod_audio_fork empties its buffer at its next
20 ms write frame, and audio (or a mark) arriving before that would be emptied with it."""


class AudioForkChannel(MarkedChannel):
    source = "freeswitch"
    """The call record's source when the call fails before its metadata."""

    def __init__(self, transport: Transport, **pacing: Unpack[Pacing]) -> None:
        super().__init__(transport, **pacing)
        self._decoder = audio_fork.AudioForkDecoder()
        self._hold_until = -math.inf
        # The first message must be the metadata: `_metadata_ready` is set on each change
        # (metadata, audio before it, a failure) and cleared by `metadata()` to wait again.
        self._audio_before_metadata = False
        transport.attach(self)

    # -- inbound: called by the transport's reader -----------------------------------------
    def _decode(self, message: str | bytes) -> list[audio_fork.Event]:
        if isinstance(message, str):
            return self._decoder.text(message)
        return self._decoder.binary(message)

    def _on_event(self, event: audio_fork.Event) -> None:
        if isinstance(event, MarkReply):
            self._marks.on_reply(event)
        elif isinstance(event, AudioIn):
            self._check_rate(event)
            if self._metadata is None and not self._audio_before_metadata:
                self._audio_before_metadata = True
                self._metadata_ready.set()
            self._inbound.push(event)
        elif self._metadata is None and not self._audio_before_metadata:
            self._metadata = event  # a later metadata message changes nothing
            self._metadata_ready.set()

    # -- inbound: what a session calls -----------------------------------------------------
    async def metadata(self) -> CallMetadata:
        """Waits for the first message, which must be the metadata."""
        while True:
            if self._metadata is not None:
                return self._metadata
            if self._audio_before_metadata:
                raise CallProtocolError("expected the metadata TEXT message first")
            if self._inbound.failure is not None:
                raise self._inbound.failure
            self._metadata_ready.clear()
            await self._metadata_ready.wait()

    # -- outbound --------------------------------------------------------------------------
    def play(self, data: bytes) -> tuple[float, float]:
        """Queues 8 kHz audio (never a -1 sample); returns its (start, end) positions in ms."""
        start = self.queued_ms
        if data:
            self._enqueue(audio_fork.without_markers(data))
        return start, self.queued_ms

    async def clear(self) -> float:
        """Barge-in: drops queued audio, flushes the peer's buffer. Returns the heard position."""
        now = self._clock()
        heard = self._drop_queued(now)
        self._send(audio_fork.kill_audio())
        self._hold_until = now + KILL_SETTLE_S
        return heard

    async def disconnect(self) -> None:
        self._send(audio_fork.disconnect())
        await self.close()

    async def transfer(self, target: str) -> TransferResult:
        """Sends the transfer command. The module only raises a FreeSWITCH event and never
        answers, so the transfer counts as accepted once sent (the dialplan carries it out)."""
        self._send(audio_fork.transfer(target))
        return TransferResult(accepted=True, reason="sent to mod_audio_fork")

    async def close(self) -> None:
        self._set_closed()
        with contextlib.suppress(Exception):
            await self._transport.close()

    def pace(self, now: float, horizon: float) -> float | None:
        if self._queue and self._hold_until > horizon:
            return self._hold_until  # after a killAudio: the module has not flushed yet
        return super().pace(now, horizon)

    def _mark_message(self, name: str) -> str:
        return audio_fork.mark(name)

    def _send_mark(self, mark: Mark, now: float) -> None:
        super()._send_mark(mark, now)
        if mark.reached is not None:
            # A turn ends here: release what the module's pre-buffer holds back (it would wait
            # for the next turn's audio), with the marks before it.
            pad = self._marks.pad_samples()
            if pad:
                self._send_audio(bytes(pad * 2), now)

    def _send_audio(self, chunk: bytes, now: float) -> None:
        self.playout.on_send(duration_ms(len(chunk), CALL_RATE), now)
        self._marks.on_binary(len(chunk) // 2)
        self._send(chunk)
