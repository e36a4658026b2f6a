"""A call's audio between PJSIP's media clock and asyncio.

Caller audio: the conference bridge hands our port a 20 ms frame each tick (`onFrameReceived`, in
the media clock's thread); it is posted to the event loop through `LoopInbox`, which wakes the loop
once for everything that arrived since it last ran, not once per frame and call.

Robot audio: `PlayoutBuffer` holds what the session queued; the clock pulls one frame a tick
(`onFrameRequested`), so robot audio is paced by PJSIP's clock, and a barge-in flush drops what is
queued at once. The buffer counts the robot audio it gave out: that count is the playout clock
(what the caller has heard, less the network and the phone's jitter buffer).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from voiceplat.telephony.ingress.sip.frames import FrameWriter, read_vector

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * 2
SILENCE = bytes(FRAME_BYTES)
BATCH_S = 0.005


class LoopInbox:
    """Runs callbacks from other threads in the event loop, in order, with one wake-up per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._items.append((callback, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            # A few ms later, not at once: with 100 calls a frame arrives every 0.2 ms, and
            # waking the loop for each (through its self-pipe) cost more than the frames'
            # work; 5 ms gathers ~25 frames per wake-up, for 5 ms more latency at most.
            self._loop.call_soon_threadsafe(self._loop.call_later, BATCH_S, self._drain)
        except RuntimeError:  # the loop is closed: the process is stopping
            pass

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, deque()
            self._scheduled = False
        for callback, args in items:
            callback(*args)


class PlayoutBuffer:
    """Robot audio waiting for the media clock. Written by asyncio, read by the clock's thread.

    `played` counts the bytes of robot audio the clock has taken (silence filled in for an empty
    buffer is not counted). When it reaches `notify_at`, `on_progress` is called (once; the loop
    side sets the next position it wants to hear about).
    """

    def __init__(self, on_progress: Callable[[int], None]) -> None:
        self._lock = threading.Lock()
        self._chunks: deque[bytes] = deque()
        self._head_offset = 0
        self.queued = 0
        """Bytes written and not yet played or flushed."""
        self.played = 0
        self.notify_at: int | None = None
        self._on_progress = on_progress

    def write(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._chunks.append(data)
            self.queued += len(data)

    def flush(self) -> int:
        """Drops everything not yet played; returns how many bytes were dropped."""
        with self._lock:
            dropped = self.queued
            self._chunks.clear()
            self._head_offset = 0
            self.queued = 0
            return dropped

    def want_notice(self, position: int | None) -> None:
        """Asks for `on_progress` once `played` reaches `position` (at once if it already has)."""
        with self._lock:
            self.notify_at = position
            reached = position is not None and self.played >= position
            if reached:
                self.notify_at = None
            played = self.played
        if reached:
            self._on_progress(played)

    def take(self, size: int) -> bytes | None:
        """One frame of robot audio (padded with silence at the end of what is queued), or None."""
        with self._lock:
            if not self.queued:
                return None
            parts: list[bytes] = []
            need = size
            while need and self._chunks:
                head = self._chunks[0]
                piece = head[self._head_offset : self._head_offset + need]
                parts.append(piece)
                need -= len(piece)
                self._head_offset += len(piece)
                if self._head_offset >= len(head):
                    self._chunks.popleft()
                    self._head_offset = 0
            taken = size - need
            self.queued -= taken
            self.played += taken
            notice = self.notify_at is not None and self.played >= self.notify_at
            if notice:
                self.notify_at = None
            played = self.played
        if notice:
            self._on_progress(played)
        data = b"".join(parts)
        return data + bytes(need) if need else data


class CallMediaPort(pj.AudioMediaPort):
    """The call's port on PJSIP's conference bridge: 8 kHz mono 16-bit, 20 ms frames."""

    def __init__(self, on_audio: Callable[[bytes], None], playout: PlayoutBuffer) -> None:
        super().__init__()
        self._on_audio = on_audio
        self._playout = playout
        self._writer = FrameWriter(FRAME_BYTES)
        self.frames_in = 0

    def create(self, name: str) -> None:
        fmt = pj.MediaFormatAudio()
        fmt.type = pj.PJMEDIA_TYPE_AUDIO
        fmt.clockRate = SAMPLE_RATE
        fmt.channelCount = 1
        fmt.bitsPerSample = 16
        fmt.frameTimeUsec = FRAME_MS * 1000
        self.createPort(name, fmt)

    def onFrameRequested(self, frame: Any) -> None:
        data = self._playout.take(FRAME_BYTES)
        self._writer.fill(frame, SILENCE if data is None else data)

    def onFrameReceived(self, frame: Any) -> None:
        self.frames_in += 1
        data = read_vector(frame.buf) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
        if len(data) != FRAME_BYTES:
            data = SILENCE  # no audio this tick (no RTP, or a frame of another kind): silence
        self._on_audio(data)
