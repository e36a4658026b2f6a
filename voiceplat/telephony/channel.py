"""One call's connection: protocol events in; paced audio, marks and commands out.

Nothing above telephony/ knows which protocol a call came through; a session sees only this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from voiceplat.audio.pcm import CALL_RATE, duration_ms, frame_bytes
from voiceplat.telephony import audio_fork
from voiceplat.telephony.events import AudioIn, CallMetadata, MarkReply, ProtocolError
from voiceplat.telephony.playout import PlayoutModel

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Transport(Protocol):
    """A message socket: websockets' ServerConnection satisfies it."""

    async def recv(self) -> str | bytes: ...
    async def send(self, message: str | bytes) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Hangup(Exception):
    """The peer closed the connection."""


@dataclass(slots=True)
class _Mark:
    name: str


class CallChannel:
    def __init__(
        self,
        transport: Transport,
        *,
        lead_ms: int = 200,
        chunk_ms: int = 60,
        max_audio_ahead_s: float = 3.0,
        clock: Clock | None = None,
    ) -> None:
        self._transport = transport
        self._decoder = audio_fork.AudioForkDecoder()
        self._clock = clock or asyncio.get_running_loop().time
        self._lead_ms = lead_ms
        self._chunk_bytes = frame_bytes(chunk_ms)
        self._max_ahead_s = max_audio_ahead_s
        self._queue: deque[bytes | _Mark] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._marks: dict[str, asyncio.Future[str]] = {}
        self.playout = PlayoutModel()
        self._audio_in_ms = 0.0
        self._audio_in_started: float | None = None
        self.closed = False
        self._drains = 0

    # -- inbound ---------------------------------------------------------------------------
    async def metadata(self) -> CallMetadata:
        """Waits for the first message, which must be the metadata."""
        events = self._decode(await self._recv())
        if not events or not isinstance(events[0], CallMetadata):
            raise ProtocolError("expected the metadata TEXT message first")
        return events[0]

    async def audio(self) -> AudioIn:
        """Next caller audio; mark replies are consumed on the way. Raises Hangup, ProtocolError."""
        while True:
            for event in self._decode(await self._recv()):
                if isinstance(event, AudioIn):
                    self._check_rate(event)
                    return event
                if isinstance(event, MarkReply):
                    self._on_mark_reply(event)

    async def _recv(self) -> str | bytes:
        try:
            return await self._transport.recv()
        except ConnectionClosed as exc:
            self.closed = True
            codes = {frame.code for frame in (exc.rcvd, exc.sent) if frame is not None}
            if 1009 in codes:  # we refused a message over the size limit
                raise ProtocolError("a message larger than the frame limit arrived") from None
            raise Hangup() from None

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
            raise ProtocolError(f"caller audio arrives faster than real time ({ahead:.1f} s ahead)")

    def _on_mark_reply(self, reply: MarkReply) -> None:
        waiter = self._marks.pop(reply.name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply.event)

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
            self._queue.append(data)
            self._queued_bytes += len(data)
            self._wake.set()
        return start, self.queued_ms

    def mark(self, name: str) -> asyncio.Future[str]:
        """Queues a mark after the audio queued so far; the future gives 'playout' or 'cleared'."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._marks[name] = waiter
        self._queue.append(_Mark(name))
        self._wake.set()
        return waiter

    async def clear(self) -> float:
        """Barge-in: drops queued audio, flushes the peer's buffer. Returns the heard position."""
        self._queue.clear()
        self._queued_bytes = 0
        heard = self.playout.flush(self._clock())
        for name, waiter in list(self._marks.items()):
            if not waiter.done():
                waiter.set_result("cleared")
            del self._marks[name]
        await self._send(audio_fork.kill_audio())
        return heard

    async def wait_heard(self, timeout_s: float) -> None:
        """Waits until everything queued has been played at the caller's end (or timeout)."""
        self._drains += 1
        name = f"drain-{self._drains}"
        waiter = self.mark(name)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(waiter)
                return
        # No mark reply (a peer that does not answer marks): trust the playout clock.
        remaining = self.playout.ahead_ms(self._clock()) / 1000.0
        await asyncio.sleep(min(remaining, timeout_s))

    async def disconnect(self) -> None:
        await self._send(audio_fork.disconnect())
        await self.close()

    async def transfer(self, target: str) -> None:
        await self._send(audio_fork.transfer(target))

    async def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self._transport.close()

    async def _send(self, message: str | bytes) -> None:
        if self.closed:
            return
        try:
            await self._transport.send(message)
        except ConnectionClosed:
            self.closed = True

    async def run_pacer(self) -> None:
        """Sends queued audio so the peer's buffer holds about lead_ms; marks follow their audio."""
        lead_s = self._lead_ms / 1000.0
        while not self.closed:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue[0]
            if isinstance(item, _Mark):
                self._queue.popleft()
                await self._send(audio_fork.mark(item.name))
                continue
            now = self._clock()
            ahead_s = self.playout.ahead_ms(now) / 1000.0
            if ahead_s >= lead_s:
                # Wake when one chunk's room has opened up in the lead.
                await asyncio.sleep(ahead_s - lead_s + duration_ms(self._chunk_bytes) / 2000.0)
                continue
            chunk = self._take_audio()
            self.playout.on_send(duration_ms(len(chunk), CALL_RATE), now)
            await self._send(chunk)

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
