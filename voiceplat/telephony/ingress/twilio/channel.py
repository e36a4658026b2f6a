"""The Twilio Media Streams ingress: one stream's WebSocket as a `CallChannel`.

Messages are decoded by `codec.py`. Outbound, robot audio goes as `media` messages (mu-law, base64)
paced at real time with a small lead by the shared `Pacer`, as to FreeSWITCH: Twilio plays what it
buffers, so pacing bounds what a barge-in must drop. A turn's end is a `mark`, which Twilio answers
when the audio before it has played: with the playout clock (`PlayoutModel`) that gives what the
caller heard, by the same rules as mod_audio_fork's marks (`marks.PeerMarks`: the clock first, the
answer at most `MARK_SLACK_S` later, the clock alone for a peer that never answers). Twilio has no
pre-buffer and no marker samples, so none of mod_audio_fork's padding applies. Barge-in sends
`clear`: every mark sent is "cleared" then (Twilio answers them too; those echoes change nothing).

Auth (`auth.py`) is decided on the handshake, or by the start message's token; a refused stream
ends as `protocol_error` with close code 1008 and the reason. Media Streams has no transfer
(that takes Twilio's REST API), and the robot hanging up closes the socket: Twilio then goes on
with the TwiML after <Connect> (none: the call ends).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from voiceplat.telephony.ingress.audio_fork.channel import WRITE_BLOCKED_RETRY_S, Transport
from voiceplat.telephony.ingress.twilio import codec
from voiceplat.telephony.ingress.twilio.auth import Verdict, start_token_valid
from voiceplat.telephony.marks import Mark, PeerMarks
from voiceplat.telephony.pacer import Pacer, shared_pacer
from voiceplat.telephony.playout_model import PlayoutModel

POLICY_VIOLATION = 1008


class TwilioChannel:
    source = "twilio"
    """The call record's source when the call fails before its metadata."""

    def __init__(
        self,
        transport: Transport,
        *,
        verdict: Verdict | None = None,
        lead_ms: int = 200,
        chunk_ms: int = 60,
        max_audio_ahead_s: float = 3.0,
        pacer: Pacer | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._transport = transport
        self._decoder = codec.TwilioDecoder()
        self._verdict = verdict or Verdict()
        self._clock = loop.time  # the pacer's clock too
        self._chunk_bytes = frame_bytes(chunk_ms)
        # As AudioForkChannel: a first burst of whole chunks up to lead_ms, then one chunk each
        # time one chunk of room has opened in Twilio's buffer.
        self._refill_s = (max(1, math.ceil(lead_ms / chunk_ms)) - 1) * chunk_ms / 1000.0
        self._max_ahead_s = max_audio_ahead_s
        self._queue: deque[bytes | Mark] = deque()
        self._queued_bytes = 0
        self._pacer = pacer or shared_pacer()
        self._ended: asyncio.Future[None] = loop.create_future()
        self._marks = PeerMarks(self._clock)
        self.playout = PlayoutModel()
        self._audio_in_ms = 0.0
        self._audio_in_started: float | None = None
        self.closed = False
        self._drains = 0
        self._inbound = InboundAudio()
        self._metadata: CallMetadata | None = None
        self._stream_sid = ""
        self._metadata_ready = asyncio.Event()
        self._failed = asyncio.Event()
        self._dtmf_handler: DtmfHandler | None = None
        self._dtmf_pending: list[DtmfIn] = []
        transport.attach(self)
        if self._verdict.refused is not None:
            self._fail(CallProtocolError(f"not authorised: {self._verdict.refused}"))

    # -- inbound: called by the transport's reader -----------------------------------------
    def on_message(self, message: str | bytes) -> None:
        if self._inbound.failure is not None:
            return  # the stream is already broken (or refused); the call is ending
        try:
            decoder = self._decoder
            events = decoder.text(message) if isinstance(message, str) else decoder.binary(message)
            for event in events:
                if isinstance(event, AudioIn):
                    self._check_rate(event)
                    self._inbound.push(event)
                elif isinstance(event, MarkReply):
                    self._marks.on_reply(event)
                elif isinstance(event, DtmfIn):
                    self._on_key(event)
                elif isinstance(event, CallMetadata):
                    self._started(event)
                else:
                    self._fail(event)  # stop: the caller hung up (or the stream was stopped)
        except CallProtocolError as exc:
            self._fail(exc)

    def on_closed(self, exc: ConnectionClosed) -> None:
        self._set_closed()
        codes = {frame.code for frame in (exc.rcvd, exc.sent) if frame is not None}
        if 1009 in codes:  # we refused a message over the size limit
            self._fail(CallProtocolError("a message larger than the frame limit arrived"))
        elif exc.sent is not None and exc.sent.code in (1002, 1007) and not exc.rcvd_then_sent:
            self._fail(
                CallProtocolError(f"the peer broke the WebSocket protocol: {exc.sent.reason}")
            )
        else:
            self._fail(Hangup())

    def _started(self, metadata: CallMetadata) -> None:
        expected = self._verdict.token_in_start
        if expected is not None and not start_token_valid(
            expected, self._decoder.custom_parameters
        ):
            why = [self._verdict.failed, "customParameters.token missing or wrong"]
            raise CallProtocolError("not authorised: " + "; ".join(filter(None, why)))
        self._metadata = metadata
        self._stream_sid = str(metadata.extra["stream_sid"])
        self._metadata_ready.set()

    def _on_key(self, key: DtmfIn) -> None:
        if self._dtmf_handler is None:
            self._dtmf_pending.append(key)
        else:
            self._dtmf_handler(key)

    def _fail(self, exc: Exception) -> None:
        self._inbound.fail(exc)
        self._failed.set()
        self._metadata_ready.set()

    def _check_rate(self, audio: AudioIn) -> None:
        """Audio far ahead of real time is a broken or hostile peer; bound the work it causes."""
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
        """Queues a mark after the audio queued so far: "playout", "cleared", or "unsent"."""
        return self._queue_mark(name).reply

    def _queue_mark(self, name: str, *, ends_turn: bool = False) -> Mark:
        mark = self._marks.new(name, ends_turn=ends_turn)
        self._queue.append(mark)
        self._pacer.wake(self)
        return mark

    async def clear(self) -> float:
        """Barge-in: drops queued audio and tells Twilio to drop what it buffers."""
        now = self._clock()
        for item in self._queue:
            if isinstance(item, Mark):
                item.drop(now)
        self._queue.clear()
        self._queued_bytes = 0
        heard = self.playout.flush(now)
        self._marks.on_kill_audio()
        if self._stream_sid:
            self._send(codec.clear(self._stream_sid))
        return heard

    async def wait_heard(self, timeout_s: float) -> None:
        """Waits until the caller has heard everything queued so far (see `PeerMarks`)."""
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
            accepted=False, reason="Media Streams cannot transfer (use Twilio's REST API)"
        )

    async def disconnect(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the socket; 1008 with the reason when the peer was refused or broke the
        protocol."""
        self._set_closed()
        failure = self._inbound.failure
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

    def _send(self, message: str) -> None:
        if not self.closed and not self._transport.send_now(message):
            self._set_closed()

    async def run_pacer(self) -> None:
        """Lives as long as the call's pacing (the shared pacer sends); raises if pacing failed."""
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
                if self._marks.on_reached(item, now, self.playout.playout_end):
                    self._send(codec.mark(self._stream_sid, item.name))
                continue
            due = self.playout.playout_end - self._refill_s
            if due > horizon + 1e-6:  # (float sums of chunk lengths)
                return due
            if not self._transport.write_ready():
                return now + WRITE_BLOCKED_RETRY_S  # the peer does not read: wait, keep order
            chunk = self._take_audio()
            self.playout.on_send(duration_ms(len(chunk)), now)
            self._send(codec.media(self._stream_sid, chunk))
        return None

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
