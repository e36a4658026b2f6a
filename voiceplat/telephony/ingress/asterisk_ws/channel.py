"""The Asterisk chan_websocket ingress: one call's WebSocket as a `CallChannel`.

Asterisk connects (websocket_client.conf), says MEDIA_START, then streams the caller's audio;
events and commands are in `codec.py`. Asterisk queues what we send (up to 1000 frames) and
plays it at its own 20 ms timer, so the robot may send ahead; we still pace at real time with a
small lead, as for mod_audio_fork, so that FLUSH_MEDIA (barge-in) has little to drop and the
playout clock (`PlayoutModel`) stays a true lower bound. Asterisk answers MARK_MEDIA when its
dequeue reaches the mark, i.e. once the audio before it has played: `PeerMarks` (marks.py) waits
for that at a turn's end. FLUSH_MEDIA drops queued marks unanswered, so they count as cleared.
Audio goes out in whole `optimal_frame_size` frames (Asterisk drops a shorter remainder), a turn's
last frame padded with silence. MEDIA_XOFF stops our audio until MEDIA_XON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque

from websockets.exceptions import ConnectionClosed

from voiceplat.audio.pcm import duration_ms, frame_bytes
from voiceplat.telephony.channel import CLOSE_REASON_WAIT_S, AudioHandler, DtmfHandler, Hangup
from voiceplat.telephony.events import (
    AudioIn,
    CallMetadata,
    CallProtocolError,
    DtmfIn,
    MarkReply,
    TransferResult,
)
from voiceplat.telephony.inbound import InboundAudio
from voiceplat.telephony.ingress.asterisk_ws import codec
from voiceplat.telephony.ingress.audio_fork.channel import WRITE_BLOCKED_RETRY_S, Transport
from voiceplat.telephony.marks import Mark, PeerMarks
from voiceplat.telephony.pacer import Pacer, shared_pacer
from voiceplat.telephony.playout_model import PlayoutModel

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
SILENCE = {"slin": b"\x00", "slin16": b"\x00", "ulaw": b"\xff", "alaw": b"\xd5"}


class AsteriskWsChannel:
    source = "asterisk"
    """The call record's source, also of a call refused before MEDIA_START."""

    def __init__(
        self,
        transport: Transport,
        *,
        params: dict[str, str] | None = None,
        refused: str | None = None,
        lead_ms: int = 200,
        chunk_ms: int = 60,
        max_audio_ahead_s: float = 3.0,
        pacer: Pacer | None = None,
    ) -> None:
        """`params`: the request URI's query; `refused`: why the connection is not let in (auth)."""
        loop = asyncio.get_running_loop()
        self._transport = transport
        self._decoder = codec.AsteriskWsDecoder(params)
        self._encoder = codec.AsteriskWsEncoder(json_format=False)
        self._clock = loop.time
        self._chunk_ms = chunk_ms
        self._chunk_bytes = frame_bytes(chunk_ms)
        self._refill_s = (max(1, math.ceil(lead_ms / chunk_ms)) - 1) * chunk_ms / 1000.0
        self._max_ahead_s = max_audio_ahead_s
        self._queue: deque[bytes | Mark] = deque()
        self._queued_bytes = 0
        self._wire = bytearray()  # encoded audio short of a whole frame
        self._frame = 0  # optimal_frame_size, from MEDIA_START
        self._pacer = pacer or shared_pacer()
        self._ended: asyncio.Future[None] = loop.create_future()
        self._marks = PeerMarks(self._clock)
        self._xoff = False
        self.playout = PlayoutModel()
        self._audio_in_ms = 0.0
        self._audio_in_started: float | None = None
        self.closed = False
        self._drains = 0
        self._inbound = InboundAudio()
        self._metadata: CallMetadata | None = None
        self._metadata_ready = asyncio.Event()
        self._failed = asyncio.Event()
        self._dtmf_handler: DtmfHandler | None = None
        self._dtmf_pending: list[DtmfIn] = []
        if refused is not None:
            self._fail(CallProtocolError(refused))
        transport.attach(self)

    # -- inbound: called by the transport's reader -----------------------------------------
    def on_message(self, message: str | bytes) -> None:
        if self._inbound.failure is not None:
            return
        try:
            if isinstance(message, str):
                events = self._decoder.text(message)
            else:
                events = self._decoder.binary(message)
            for event in events:
                self._on_event(event)
        except CallProtocolError as exc:
            self._fail(exc)

    def _on_event(self, event: codec.Event) -> None:
        if isinstance(event, AudioIn):
            self._check_rate(event)
            self._inbound.push(event)
        elif isinstance(event, MarkReply):
            self._marks.on_reply(event)
        elif isinstance(event, DtmfIn):
            if self._dtmf_handler is None:
                self._dtmf_pending.append(event)
            else:
                self._dtmf_handler(event)
        elif isinstance(event, codec.FlowControl):
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

    def on_closed(self, exc: ConnectionClosed) -> None:
        self._set_closed()
        codes = {frame.code for frame in (exc.rcvd, exc.sent) if frame is not None}
        if 1009 in codes:
            self._fail(CallProtocolError("a message larger than the frame limit arrived"))
        elif exc.sent is not None and exc.sent.code in (1002, 1007) and not exc.rcvd_then_sent:
            self._fail(
                CallProtocolError(f"Asterisk broke the WebSocket protocol: {exc.sent.reason}")
            )
        else:
            self._fail(Hangup())  # Asterisk hangs up by closing the socket

    def _fail(self, exc: Exception) -> None:
        self._inbound.fail(exc)
        self._failed.set()
        self._metadata_ready.set()

    def _check_rate(self, audio: AudioIn) -> None:
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
        return await self._inbound.audio()

    async def receive_audio(self, handler: AudioHandler) -> None:
        await self._inbound.receive(handler)

    def on_dtmf(self, handler: DtmfHandler) -> None:
        self._dtmf_handler = handler
        pending, self._dtmf_pending = self._dtmf_pending, []
        for key in pending:
            handler(key)

    # -- outbound --------------------------------------------------------------------------
    @property
    def queued_ms(self) -> float:
        return self.playout.sent_ms + duration_ms(self._queued_bytes)

    def heard_ms(self) -> float:
        return self.playout.heard_ms(self._clock())

    def speaking(self) -> bool:
        return self._queued_bytes > 0 or self.playout.playing(self._clock())

    def play(self, data: bytes) -> tuple[float, float]:
        start = self.queued_ms
        data = data[: len(data) - len(data) % 2]
        if data and not self.closed:
            self._queue.append(data)
            self._queued_bytes += len(data)
            self._pacer.wake(self)
        return start, self.queued_ms

    def mark(self, name: str) -> asyncio.Future[str]:
        """A mark after the audio queued so far: "playout" once Asterisk has played up to it,
        "cleared" if a barge-in dropped it, "unsent" if marks are not trusted any more."""
        return self._queue_mark(codec.mark_id(name)).reply

    def _queue_mark(self, name: str, *, ends_turn: bool = False) -> Mark:
        mark = self._marks.new(name, ends_turn=ends_turn)
        self._queue.append(mark)
        self._pacer.wake(self)
        return mark

    async def clear(self) -> float:
        """Barge-in: drops queued audio here and Asterisk's queue (FLUSH_MEDIA)."""
        now = self._clock()
        for item in self._queue:
            if isinstance(item, Mark):
                item.drop(now)
        self._queue.clear()
        self._queued_bytes = 0
        self._wire.clear()
        heard = self.playout.flush(now)
        self._marks.on_kill_audio()  # FLUSH_MEDIA drops the marks it holds, unanswered
        self._send(self._encoder.flush())
        return heard

    async def wait_heard(self, timeout_s: float) -> None:
        """Until the caller has heard all queued so far: the playout clock, then Asterisk's
        MEDIA_MARK_PROCESSED for at most MARK_SLACK_S (see PeerMarks.wait_heard)."""
        self._drains += 1
        mark = self._queue_mark(f"drain-{self._drains}", ends_turn=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._marks.wait_heard(mark, self._ended)
        if self._ended.done() and mark.reached is not None and not mark.reached.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_REASON_WAIT_S):
                    await self._failed.wait()
            raise self._inbound.failure or Hangup()

    async def transfer(self, target: str) -> TransferResult:
        return TransferResult(
            accepted=False,
            reason="chan_websocket has no transfer command: transfer in the dialplan after the call",
        )

    async def disconnect(self) -> None:
        """HANGUP, then the close (either alone hangs the channel up)."""
        self._send(self._encoder.hangup())
        await self.close()

    async def close(self) -> None:
        failure = self._inbound.failure
        self._set_closed()
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
        if not self.closed and not self._transport.send_now(message):
            self._set_closed()

    async def run_pacer(self) -> None:
        self._pacer.wake(self)
        await asyncio.shield(self._ended)

    def pacing_failed(self, exc: Exception) -> None:
        if not self._ended.done():
            self._ended.set_exception(exc)

    def pace(self, now: float, horizon: float) -> float | None:
        """Called by the pacer: sends the marks at the head of the queue and the audio due by
        `horizon`; returns when the next chunk is due, or None when nothing is queued."""
        queue = self._queue
        while queue and not self.closed:
            item = queue[0]
            if isinstance(item, Mark):
                queue.popleft()
                self._flush_wire(now)  # the mark goes after all the audio before it
                if self._marks.on_reached(item, now, self.playout.playout_end):
                    self._send(self._encoder.mark(item.name))
                continue
            if self._xoff:
                return None  # MEDIA_XON wakes us
            due = self.playout.playout_end - self._refill_s
            if due > horizon + 1e-6:
                return due
            if not self._transport.write_ready():
                return now + WRITE_BLOCKED_RETRY_S
            self._send_audio(self._take_audio(), now)
        if not queue:
            self._flush_wire(now)
        return None

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
