"""What the message-socket ingress channels share: paced robot audio and the call's inbound side.

`PacedChannel` is the glue every such channel had written out: the caller's audio bounded to near
real time (`InboundAudio`), the metadata once known, DTMF held until a handler is set, the playout
clock (`PlayoutModel`) for what the caller heard, robot audio sent by the process's shared `Pacer`
(a first burst of whole chunks up to `lead_ms`, then one chunk each time one chunk of room has
opened at the peer), and the close with 1008 and the reason after bad input. `MarkedChannel` adds
the queue of audio and marks for a peer that answers marks (`PeerMarks`: mod_audio_fork, Twilio,
chan_websocket). A channel keeps what its protocol does differently: decoding, what it sends for
audio, a mark or a barge-in, transfer and hangup.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import Any, Protocol, TypedDict, Unpack

from websockets.exceptions import ConnectionClosed

from voiceplat.audio.pcm import duration_ms, frame_bytes
from voiceplat.telephony.channel import CLOSE_REASON_WAIT_S, AudioHandler, DtmfHandler, Hangup
from voiceplat.telephony.connection import Receiver
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn, MarkReply
from voiceplat.telephony.inbound import InboundAudio
from voiceplat.telephony.marks import Mark, PeerMarks
from voiceplat.telephony.pacer import Pacer, shared_pacer
from voiceplat.telephony.playout_model import PlayoutModel

WRITE_BLOCKED_RETRY_S = 0.02
POLICY_VIOLATION = 1008


class Transport(Protocol):
    """A message socket that pushes what it receives: `connection.CallConnection` is one."""

    def attach(self, receiver: Receiver) -> None: ...
    def send_now(self, message: str | bytes) -> bool: ...
    def write_ready(self) -> bool: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Pacing(TypedDict, total=False):
    """The pacing keywords every channel takes (defaults: `PacedChannel.__init__`)."""

    lead_ms: int
    chunk_ms: int
    max_audio_ahead_s: float
    pacer: Pacer | None


class PacedChannel:
    """The shared part of a `CallChannel` over a message socket. A subclass decodes, fills the
    outbound queue (`_unsent_bytes` says how much of it is audio) and implements `pace`; it
    calls `transport.attach(self)` last in its `__init__` (attach delivers early messages)."""

    peer = "the peer"
    """Who broke the WebSocket protocol, in the error text."""

    def __init__(
        self,
        transport: Transport,
        *,
        lead_ms: int = 200,
        chunk_ms: int = 60,
        max_audio_ahead_s: float = 3.0,
        pacer: Pacer | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._transport = transport
        self._clock = loop.time  # the pacer's clock too
        self._chunk_ms = chunk_ms
        self._chunk_bytes = frame_bytes(chunk_ms)
        # The first burst fills the peer's buffer with whole chunks up to lead_ms (rounded up);
        # after it, a chunk goes out each time exactly one chunk of room has opened, so audio
        # arrives at a steady real-time pace with the lead between refill_s and refill_s + chunk.
        self._refill_s = (max(1, math.ceil(lead_ms / chunk_ms)) - 1) * chunk_ms / 1000.0
        self._max_ahead_s = max_audio_ahead_s
        self._pacer = pacer or shared_pacer()
        self._ended: asyncio.Future[None] = loop.create_future()
        self.playout = PlayoutModel()
        self._audio_in_ms = 0.0
        self._audio_in_started: float | None = None
        self.closed = False
        # Inbound: the metadata, then caller audio until the stream fails (Hangup,
        # CallProtocolError) once what arrived is consumed.
        self._inbound = InboundAudio()
        self._metadata: CallMetadata | None = None
        self._metadata_ready = asyncio.Event()
        """Set once the metadata is known or the call failed."""
        self._failed = asyncio.Event()
        self._dtmf_handler: DtmfHandler | None = None
        self._dtmf_pending: list[DtmfIn] = []

    # -- inbound: called by the transport's reader -----------------------------------------
    def on_message(self, message: str | bytes) -> None:
        if self._inbound.failure is not None:
            return  # the stream is already broken (or refused); the call is ending
        try:
            for event in self._decode(message):
                self._on_event(event)
        except CallProtocolError as exc:
            self._fail(exc)

    def _decode(self, message: str | bytes) -> list[Any]:
        """The protocol's events in a message; raises CallProtocolError on a broken stream."""
        raise NotImplementedError

    def _on_event(self, event: Any) -> None:
        """What every protocol means the same by: caller audio, a key (a subclass handles the
        rest first)."""
        if isinstance(event, AudioIn):
            self._check_rate(event)
            self._inbound.push(event)
        elif isinstance(event, DtmfIn):
            self._on_key(event)

    def on_closed(self, exc: ConnectionClosed) -> None:
        self._set_closed()
        codes = {frame.code for frame in (exc.rcvd, exc.sent) if frame is not None}
        if 1009 in codes:  # we refused a message over the size limit
            self._fail(CallProtocolError("a message larger than the frame limit arrived"))
        elif exc.sent is not None and exc.sent.code in (1002, 1007) and not exc.rcvd_then_sent:
            # We failed the connection: the peer broke the protocol (e.g. invalid UTF-8).
            self._fail(
                CallProtocolError(f"{self.peer} broke the WebSocket protocol: {exc.sent.reason}")
            )
        else:
            self._fail(Hangup())  # the peer hangs up by closing the socket

    def _fail(self, exc: Exception) -> None:
        self._inbound.fail(exc)
        self._failed.set()
        self._metadata_ready.set()

    def _on_key(self, key: DtmfIn) -> None:
        if self._dtmf_handler is None:
            self._dtmf_pending.append(key)
        else:
            self._dtmf_handler(key)

    def _check_rate(self, audio: AudioIn) -> None:
        """Audio far ahead of real time is a broken or hostile peer; bound the work it can cause."""
        now = self._clock()
        if self._audio_in_started is None:
            self._audio_in_started = now
        self._audio_in_ms += duration_ms(len(audio.data))
        ahead = self._audio_in_ms / 1000.0 - (now - self._audio_in_started)
        if ahead > self._max_ahead_s:
            raise CallProtocolError(
                f"caller audio arrives faster than real time ({ahead:.1f} s ahead)"
            )

    # -- inbound: what a session calls -----------------------------------------------------
    async def metadata(self) -> CallMetadata:
        await self._metadata_ready.wait()
        if self._metadata is not None:
            return self._metadata
        assert self._inbound.failure is not None
        raise self._inbound.failure

    async def audio(self) -> AudioIn:
        """Next caller audio. Raises Hangup, CallProtocolError."""
        return await self._inbound.audio()

    async def receive_audio(self, handler: AudioHandler) -> None:
        """Hands every caller audio to `handler` as it arrives, in the transport's reader.

        No task wakes up per message. When the handler returns a coroutine, this task runs it
        and later audio waits until it is done (order is kept). Returns never: raises Hangup,
        CallProtocolError, or what the handler raised.
        """
        await self._inbound.receive(handler)

    def on_dtmf(self, handler: DtmfHandler) -> None:
        self._dtmf_handler = handler
        pending, self._dtmf_pending = self._dtmf_pending, []
        for key in pending:
            handler(key)

    # -- outbound --------------------------------------------------------------------------
    def _unsent_bytes(self) -> int:
        """Robot audio queued here, not yet sent."""
        raise NotImplementedError

    @property
    def queued_ms(self) -> float:
        """Stream position at the end of everything queued so far."""
        return self.playout.sent_ms + duration_ms(self._unsent_bytes())

    def heard_ms(self) -> float:
        return self.playout.heard_ms(self._clock())

    def speaking(self) -> bool:
        """Robot audio is queued or still playing at the caller's end."""
        return self._unsent_bytes() > 0 or self.playout.playing(self._clock())

    async def _raise_why_ended(self) -> None:
        """The call ended before all of it was sent: the caller did not hear it all. Raises why
        it ended (a hangup, a protocol error), as the reader does, once it is known: a failed
        send can close the channel before the transport reports the reason."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_REASON_WAIT_S):
                await self._failed.wait()
        raise self._inbound.failure or Hangup()

    async def disconnect(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the socket; 1008 with the reason when the peer was refused or broke the
        protocol."""
        failure = self._inbound.failure
        self._set_closed()
        await self._close_transport(failure)

    async def _close_transport(self, failure: BaseException | None) -> None:
        code, why = 1000, ""
        if isinstance(failure, CallProtocolError):
            code, why = POLICY_VIOLATION, str(failure).encode()[:120].decode(errors="ignore")
        with contextlib.suppress(Exception):
            await self._transport.close(code, why)

    def _set_closed(self) -> None:
        self.closed = True
        self._pacer.remove(self)
        if not self._ended.done():
            self._ended.set_result(None)

    def _send(self, message: str | bytes) -> None:
        """Writes at once, in order with the audio the pacer sends (nothing is buffered here)."""
        if not self.closed and not self._transport.send_now(message):
            self._set_closed()

    async def run_pacer(self) -> None:
        """Lives as long as the call's pacing: ends when the channel closes, raises if pacing
        failed. The sending itself is done by the process's shared pacer (`pace`)."""
        self._pacer.wake(self)
        await asyncio.shield(self._ended)

    def pacing_failed(self, exc: Exception) -> None:
        if not self._ended.done():
            self._ended.set_exception(exc)

    def pace(self, now: float, horizon: float) -> float | None:
        """Called by the pacer: sends what is due by `horizon`; returns when the next chunk is
        due, or None when nothing is queued."""
        raise NotImplementedError

    def _not_due(self, now: float, horizon: float) -> float | None:
        """When to send the next chunk if not now: it is not due by `horizon`, or the peer does
        not read (wait, keep order). None: send it now."""
        due = self.playout.playout_end - self._refill_s
        if due > horizon + 1e-6:  # (float sums of chunk lengths)
            return due
        if not self._transport.write_ready():
            return now + WRITE_BLOCKED_RETRY_S
        return None


class MarkedChannel(PacedChannel):
    """A `PacedChannel` to a peer that answers marks: robot audio and marks in one queue; a
    turn's end waits for the playout clock and the peer's answer (`PeerMarks.wait_heard`)."""

    def __init__(self, transport: Transport, **pacing: Unpack[Pacing]) -> None:
        super().__init__(transport, **pacing)
        self._queue: deque[bytes | Mark] = deque()
        self._queued_bytes = 0
        self._marks = PeerMarks(self._clock)
        self._drains = 0

    def _unsent_bytes(self) -> int:
        return self._queued_bytes

    def _on_event(self, event: Any) -> None:
        if isinstance(event, MarkReply):
            self._marks.on_reply(event)
        else:
            super()._on_event(event)

    # -- what a subclass sends ---------------------------------------------------------------
    def _mark_message(self, name: str) -> str:
        raise NotImplementedError

    def _send_audio(self, chunk: bytes, now: float) -> None:
        raise NotImplementedError

    def _audio_paused(self) -> bool:
        """True while the peer asked for no audio (it wakes the pacer when it wants more)."""
        return False

    # -- outbound --------------------------------------------------------------------------
    def play(self, data: bytes) -> tuple[float, float]:
        """Queues 8 kHz audio; returns its (start, end) stream positions in ms."""
        start = self.queued_ms
        data = data[: len(data) - len(data) % 2]
        if data and not self.closed:
            self._enqueue(data)
        return start, self.queued_ms

    def _enqueue(self, data: bytes) -> None:
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._pacer.wake(self)

    def mark(self, name: str) -> asyncio.Future[str]:
        """Queues a mark after the audio queued so far. The future gives the peer's answer,
        "playout" or "cleared", or "unsent" when the mark was not sent (see `PeerMarks`)."""
        return self._queue_mark(name).reply

    def _queue_mark(self, name: str, *, ends_turn: bool = False) -> Mark:
        mark = self._marks.new(name, ends_turn=ends_turn)
        self._queue.append(mark)
        self._pacer.wake(self)
        return mark

    def _drop_queued(self, now: float) -> float:
        """Barge-in, here: drops queued audio and marks. Returns the heard position."""
        for item in self._queue:
            if isinstance(item, Mark):
                item.drop(now)
        self._queue.clear()
        self._queued_bytes = 0
        heard = self.playout.flush(now)
        self._marks.on_kill_audio()
        return heard

    async def wait_heard(self, timeout_s: float) -> None:
        """Waits until the caller has heard everything queued so far.

        Returns when the playout clock says it was played and the peer has answered the mark
        queued here, or `MARK_SLACK_S` after the clock if it has not: never later, whatever the
        peer does with marks (`PeerMarks.wait_heard`). `timeout_s` bounds the whole wait (a peer
        that stopped reading).
        """
        self._drains += 1
        mark = self._queue_mark(f"drain-{self._drains}", ends_turn=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._marks.wait_heard(mark, self._ended)
        if self._ended.done() and mark.reached is not None and not mark.reached.done():
            await self._raise_why_ended()

    def pace(self, now: float, horizon: float) -> float | None:
        """Called by the pacer: sends the marks at the head of the queue and the audio due by
        `horizon`; returns when the next chunk is due, or None when nothing is queued."""
        queue = self._queue
        while queue and not self.closed:
            item = queue[0]
            if isinstance(item, Mark):
                queue.popleft()
                self._send_mark(item, now)
                continue
            if self._audio_paused():
                return None
            wait = self._not_due(now, horizon)
            if wait is not None:
                return wait
            self._send_audio(self._take_audio(), now)
        return None

    def _send_mark(self, mark: Mark, now: float) -> None:
        if self._marks.on_reached(mark, now, self.playout.playout_end):
            self._send(self._mark_message(mark.name))

    def _take_audio(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while self._queue and size < self._chunk_bytes and isinstance(self._queue[0], bytes):
            data = self._queue.popleft()
            assert isinstance(data, bytes)
            room = self._chunk_bytes - size
            if len(data) > room:
                self._queue.appendleft(data[room:])
                data = data[:room]
            parts.append(data)
            size += len(data)
        self._queued_bytes -= size
        return b"".join(parts)
