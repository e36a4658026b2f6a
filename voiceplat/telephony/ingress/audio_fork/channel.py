"""The mod_audio_fork ingress: one call's WebSocket connection as a `CallChannel`.

Protocol events in (decoded by `codec.py`); paced audio, marks and commands out. Sessions see only
the neutral `telephony.channel.CallChannel`; `telephony/server.py` builds this adapter per connection.

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

import asyncio
import contextlib
import math
from collections import deque
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from voiceplat.audio.pcm import CALL_RATE, duration_ms, frame_bytes
from voiceplat.telephony.channel import (
    CLOSE_REASON_WAIT_S,
    AudioHandler,
    DtmfHandler,
    Hangup,
)
from voiceplat.telephony.connection import Receiver
from voiceplat.telephony.events import (
    AudioIn,
    CallMetadata,
    CallProtocolError,
    MarkReply,
    TransferResult,
)
from voiceplat.telephony.inbound import InboundAudio
from voiceplat.telephony.ingress.audio_fork import codec as audio_fork
from voiceplat.telephony.marks import Mark, PeerMarks
from voiceplat.telephony.pacer import Pacer, shared_pacer
from voiceplat.telephony.playout_model import PlayoutModel

WRITE_BLOCKED_RETRY_S = 0.02
KILL_SETTLE_S = 0.04
"""After killAudio nothing is sent for this long: mod_audio_fork empties its buffer at its next
20 ms write frame, and audio (or a mark) arriving before that would be emptied with it."""


class Transport(Protocol):
    """A message socket that pushes what it receives: `connection.CallConnection` is one."""

    def attach(self, receiver: Receiver) -> None: ...
    def send_now(self, message: str | bytes) -> bool: ...
    def write_ready(self) -> bool: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class AudioForkChannel:
    source = "freeswitch"
    """The call record's source when the call fails before its metadata."""

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
        self._decoder = audio_fork.AudioForkDecoder()
        self._clock = loop.time  # the pacer's clock too
        self._chunk_bytes = frame_bytes(chunk_ms)
        # The first burst fills the peer's buffer with whole chunks up to lead_ms (rounded up);
        # after it, a chunk goes out each time exactly one chunk of room has opened, so audio
        # arrives at a steady real-time pace with the lead between refill_s and refill_s + chunk.
        self._refill_s = (max(1, math.ceil(lead_ms / chunk_ms)) - 1) * chunk_ms / 1000.0
        self._max_ahead_s = max_audio_ahead_s
        self._queue: deque[bytes | Mark] = deque()
        self._queued_bytes = 0
        self._pacer = pacer or shared_pacer()
        self._ended: asyncio.Future[None] = loop.create_future()
        self._marks = PeerMarks(self._clock)
        self._hold_until = -math.inf
        self.playout = PlayoutModel()
        self._audio_in_ms = 0.0
        self._audio_in_started: float | None = None
        self.closed = False
        self._drains = 0
        # Inbound: the metadata (the first message), then caller audio until the stream fails
        # (Hangup, CallProtocolError) once what arrived is consumed.
        self._inbound = InboundAudio()
        self._metadata: CallMetadata | None = None
        self._audio_before_metadata = False
        self._inbound_changed = asyncio.Event()
        self._failed = asyncio.Event()
        self._dtmf_handler: DtmfHandler | None = None
        transport.attach(self)

    # -- inbound: called by the transport's reader -----------------------------------------
    def on_message(self, message: str | bytes) -> None:
        if self._inbound.failure is not None:
            return  # the stream is already broken; the call is ending
        try:
            for event in self._decode(message):
                if isinstance(event, MarkReply):
                    self._marks.on_reply(event)
                elif isinstance(event, AudioIn):
                    self._check_rate(event)
                    if self._metadata is None and not self._audio_before_metadata:
                        self._audio_before_metadata = True
                        self._inbound_changed.set()
                    self._inbound.push(event)
                elif self._metadata is None and not self._audio_before_metadata:
                    self._metadata = event  # a later metadata message changes nothing
                    self._inbound_changed.set()
        except CallProtocolError as exc:
            self._fail(exc)

    def on_closed(self, exc: ConnectionClosed) -> None:
        self._set_closed()
        codes = {frame.code for frame in (exc.rcvd, exc.sent) if frame is not None}
        if 1009 in codes:  # we refused a message over the size limit
            self._fail(CallProtocolError("a message larger than the frame limit arrived"))
        elif exc.sent is not None and exc.sent.code in (1002, 1007) and not exc.rcvd_then_sent:
            # We failed the connection: the peer broke the protocol (e.g. invalid UTF-8).
            self._fail(
                CallProtocolError(f"the peer broke the WebSocket protocol: {exc.sent.reason}")
            )
        else:
            self._fail(Hangup())

    def _fail(self, exc: Exception) -> None:
        self._inbound.fail(exc)
        self._failed.set()
        self._inbound_changed.set()

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
            self._inbound_changed.clear()
            await self._inbound_changed.wait()

    async def audio(self) -> AudioIn:
        """Next caller audio; mark replies are consumed on the way. Raises Hangup, CallProtocolError."""
        return await self._inbound.audio()

    async def receive_audio(self, handler: AudioHandler) -> None:
        """Hands every caller audio to `handler` as it arrives, in the transport's reader.

        No task wakes up per message. When the handler returns a coroutine, this task runs it
        and later audio waits until it is done (order is kept). Returns never: raises Hangup,
        CallProtocolError, or what the handler raised.
        """
        await self._inbound.receive(handler)

    def on_dtmf(self, handler: DtmfHandler) -> None:
        """Kept for the interface: mod_audio_fork sends no DTMF, so the handler is never called."""
        self._dtmf_handler = handler

    def _decode(self, message: str | bytes) -> list[audio_fork.Event]:
        if isinstance(message, str):
            return self._decoder.text(message)
        return self._decoder.binary(message)

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

    # -- outbound --------------------------------------------------------------------------
    @property
    def queued_ms(self) -> float:
        """Stream position at the end of everything queued so far."""
        return self.playout.sent_ms + duration_ms(self._queued_bytes)

    def heard_ms(self) -> float:
        return self.playout.heard_ms(self._clock())

    def speaking(self) -> bool:
        """Robot audio is queued or still playing at the caller's end."""
        return self._queued_bytes > 0 or self.playout.playing(self._clock())

    def play(self, data: bytes) -> tuple[float, float]:
        """Queues 8 kHz audio; returns its (start, end) stream positions in ms."""
        start = self.queued_ms
        if data:
            data = audio_fork.without_markers(data)
            self._queue.append(data)
            self._queued_bytes += len(data)
            self._pacer.wake(self)
        return start, self.queued_ms

    def mark(self, name: str) -> asyncio.Future[str]:
        """Queues a mark after the audio queued so far. The future gives the peer's answer,
        "playout" or "cleared", or "unsent" when the mark was not sent (the peer does not answer
        marks truly, or holds as many as it takes)."""
        return self._queue_mark(name).reply

    def _queue_mark(self, name: str, *, ends_turn: bool = False) -> Mark:
        mark = self._marks.new(name, ends_turn=ends_turn)
        self._queue.append(mark)
        self._pacer.wake(self)
        return mark

    async def clear(self) -> float:
        """Barge-in: drops queued audio, flushes the peer's buffer. Returns the heard position."""
        now = self._clock()
        for item in self._queue:
            if isinstance(item, Mark):
                item.drop(now)
        self._queue.clear()
        self._queued_bytes = 0
        heard = self.playout.flush(now)
        self._marks.on_kill_audio()
        self._send(audio_fork.kill_audio())
        self._hold_until = now + KILL_SETTLE_S
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
            # The call ended before all of it was sent: the caller did not hear it all. Raise
            # why it ended (a hangup, a protocol error), as the reader does, once it is known:
            # a failed send can close the channel before the transport reports the reason.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_REASON_WAIT_S):
                    await self._failed.wait()
            raise self._inbound.failure or Hangup()

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
        """Lives as long as the call's pacing: ends when the channel closes, raises if pacing failed.

        The sending itself is done by the process's shared pacer (`pace`), not by this task.
        """
        self._pacer.wake(self)
        await asyncio.shield(self._ended)

    def pacing_failed(self, exc: Exception) -> None:
        if not self._ended.done():
            self._ended.set_exception(exc)

    def pace(self, now: float, horizon: float) -> float | None:
        """Called by the pacer: sends the marks at the head of the queue and the audio due by
        `horizon`; returns when the next chunk is due, or None when nothing is queued."""
        if self._queue and self._hold_until > horizon:
            return self._hold_until
        queue = self._queue
        while queue and not self.closed:
            item = queue[0]
            if isinstance(item, Mark):
                queue.popleft()
                self._send_mark(item, now)
                continue
            due = self.playout.playout_end - self._refill_s
            if due > horizon + 1e-6:  # (float sums of chunk lengths)
                return due
            if not self._transport.write_ready():
                return now + WRITE_BLOCKED_RETRY_S  # the peer does not read: wait, keep order
            self._send_audio(self._take_audio(), now)
        return None

    def _send_mark(self, mark: Mark, now: float) -> None:
        if self._marks.on_reached(mark, now, self.playout.playout_end):
            self._send(audio_fork.mark(mark.name))
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
