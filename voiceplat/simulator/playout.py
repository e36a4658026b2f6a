"""The caller's ear: FreeSWITCH's playout buffer for robot audio, as a sans-I/O class.

mod_audio_fork appends every BINARY message from the robot to a buffer and, on each 20 ms write
frame of the call, takes up to one frame of samples from it, padding with silence when it holds
less. `Playout` does the same, driven by `tick(now)` once per frame, and measures what the caller
heard: answers, underruns, per-chunk jitter and marks (definitions in `report.py`).

Every method takes `now` (seconds on the call's clock) so tests drive it without sleeping. The
frame played by `tick(now)` is heard during [now, now + frame); a chunk is playable from its
arrival time on, so a frame never plays audio that had not arrived yet.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from voiceplat.audio.pcm import CALL_RATE, SAMPLE_WIDTH, frame_bytes

ANSWER_GAP_S = 0.3
"""Robot audio separated by more than this much time with nothing received and played is two
answers; a shorter gap inside an answer is an underrun."""


@dataclass(slots=True)
class Answer:
    """One stretch of robot audio as the caller heard it. Times in seconds on the call clock."""

    index: int
    start: float
    """When its first sample was heard (playout start)."""
    first_arrival: float
    """When the chunk holding its first sample arrived."""
    end: float | None = None
    """When its last sample finished playing (None while it still plays)."""
    bytes_heard: int = 0
    underruns: int = 0
    ended_by: str = "playing"
    """"natural" (ran out), "killAudio" (flushed), "hangup" (the call ended under it)."""
    killed_at: float | None = None

    @property
    def cut(self) -> bool:
        return self.ended_by == "killAudio"


@dataclass(frozen=True, slots=True)
class Underrun:
    at: float
    """When audio resumed after the gap."""
    gap_s: float
    """Silence the caller heard inside the answer."""
    answer: int


@dataclass(frozen=True, slots=True)
class Chunk:
    arrival: float
    nbytes: int
    jitter_s: float | None
    """None for the first chunk of a stream, which defines the reference."""


@dataclass(frozen=True, slots=True)
class Kill:
    at: float
    flushed_bytes: int
    cleared_marks: tuple[str, ...]


class Playout:
    """Robot audio buffer played at real time, with marks, killAudio and quality measurements."""

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        rate: int = CALL_RATE,
        answer_gap_s: float = ANSWER_GAP_S,
        keep_audio: bool = True,
    ) -> None:
        """`keep_audio`: keep the audio received and heard, and a record of every chunk."""
        self.frame_bytes = frame_bytes(frame_ms, rate)
        self.bytes_per_s = rate * SAMPLE_WIDTH
        self.answer_gap_s = answer_gap_s
        self.silence = bytes(self.frame_bytes)
        self._queue: deque[tuple[bytes, float]] = deque()  # (data, arrival)
        self._head = 0  # bytes of _queue[0] already played
        self._odd = b""  # a split sample, carried to the next message
        self.buffered = 0
        """Bytes received and not yet played."""
        self.played_total = 0
        """Stream position: bytes played so far. Marks are positions in this stream."""
        self._marks: deque[tuple[int, str]] = deque()
        self.answers: list[Answer] = []
        self.current: Answer | None = None
        """The answer being heard (also during an underrun gap inside it)."""
        self.underruns: list[Underrun] = []
        self.chunk_count = 0
        self.received_bytes = 0
        self.jitter: list[float] = []
        """Jitter of every chunk that has one (seconds)."""
        self.chunks: list[Chunk] | None = [] if keep_audio else None
        """Every BINARY message, with `keep_audio` (long calls by the hundred add up)."""
        self.kills: list[Kill] = []
        self.max_buffered = 0
        self._audio_end = -math.inf  # when the last heard sample finished playing
        self._last_arrival = -math.inf
        self._starved = False  # the previous frame inside the current answer was not full
        self._stream_anchor: float | None = None  # jitter reference of the current stream
        self._stream_bytes = 0
        self.received: bytearray | None = bytearray() if keep_audio else None
        self.heard: list[bytes] | None = [] if keep_audio else None
        """One entry per tick: the frame the caller heard (silence included)."""

    # --- robot → caller -------------------------------------------------------------------

    def push(self, data: bytes, now: float) -> None:
        """Appends one BINARY message from the robot, arrived at `now`."""
        nbytes = len(data)
        if self._odd:
            data, self._odd = self._odd + data, b""
        if len(data) % SAMPLE_WIDTH:
            data, self._odd = data[:-1], data[-1:]
        jitter = self._jitter(len(data), now)
        if jitter is not None:
            self.jitter.append(jitter)
        if self.chunks is not None:
            self.chunks.append(Chunk(now, nbytes, jitter))
        self.chunk_count += 1
        self.received_bytes += nbytes
        self._last_arrival = now
        if not data:
            return
        if self.received is not None:
            self.received += data
        self._queue.append((data, now))
        self.buffered += len(data)
        self.max_buffered = max(self.max_buffered, self.buffered)

    def _jitter(self, nbytes: int, now: float) -> float | None:
        """Lateness of a chunk against the fastest real-time schedule its stream has shown.

        A stream is robot audio without a pause of more than `answer_gap_s` or a killAudio.
        offset_i = arrival_i - duration(bytes before chunk i in the stream); the reference is the
        smallest offset seen so far (the first chunk's arrival to begin with); jitter_i = offset_i
        - reference >= 0. A robot that sends a lead ahead and then paces at real time shows 0.
        """
        new_stream = self._stream_anchor is None or (
            self.buffered == 0 and now - self.last_activity > self.answer_gap_s
        )
        if new_stream:
            self._stream_anchor = now
            self._stream_bytes = nbytes
            return None
        offset = now - self._stream_bytes / self.bytes_per_s
        self._stream_bytes += nbytes
        if offset < self._stream_anchor:
            self._stream_anchor = offset
        return offset - self._stream_anchor

    def mark(self, name: str, now: float) -> None:
        """Queues a mark at the current end of the buffer."""
        self._marks.append((self.played_total + self.buffered, name))

    def kill(self, now: float) -> list[str]:
        """killAudio: flushes the buffer; returns the marks cleared by it."""
        flushed = self.buffered
        self._queue.clear()
        self._head = 0
        self._odd = b""
        self.buffered = 0
        cleared = [name for pos, name in self._marks if pos > self.played_total]
        self._marks = deque((pos, name) for pos, name in self._marks if pos <= self.played_total)
        if self.current is not None:
            # The frame already handed to the line plays to its end; nothing after it does.
            self._close(self._audio_end, "killAudio")
            self.answers[-1].killed_at = now
        self.kills.append(Kill(now, flushed, tuple(cleared)))
        self._stream_anchor = None
        return cleared

    # --- the playout clock ----------------------------------------------------------------

    def tick(self, now: float) -> tuple[bytes, list[str]]:
        """Plays one frame starting at `now`.

        Returns the frame heard and the marks reached, i.e. those whose audio finished playing
        in earlier frames (a mark on an empty buffer is reached at the next tick).
        """
        reached: list[str] = []
        while self._marks and self._marks[0][0] <= self.played_total:
            reached.append(self._marks.popleft()[1])
        current = self.current
        if current is not None and now - self._audio_end > self.answer_gap_s:
            self._close(self._audio_end, "natural")
            current = None
        frame, played, first_arrival = self._take(now)
        if played:
            if current is None:
                current = Answer(len(self.answers), now, first_arrival)
                self.answers.append(current)
                self.current = current
            elif self._starved:
                gap = now - self._audio_end
                current.underruns += 1
                self.underruns.append(Underrun(now, gap, current.index))
            current.bytes_heard += played
            self._audio_end = now + played / self.bytes_per_s
            self._starved = played < self.frame_bytes
            self.played_total += played
        elif current is not None:
            self._starved = True
        if self.heard is not None:
            self.heard.append(frame)
        return frame, reached

    def _take(self, now: float) -> tuple[bytes, int, float]:
        """Takes up to one frame of audio that has arrived by `now`, padded with silence."""
        if not self.buffered:
            return self.silence, 0, 0.0
        queue, size = self._queue, self.frame_bytes
        first_arrival = queue[0][1]
        if first_arrival > now:
            return self.silence, 0, 0.0
        data = queue[0][0]
        if self._head == 0 and len(data) == size:
            # The common case (the robot sends whole frames): no copying.
            queue.popleft()
            self.buffered -= size
            return data, size, first_arrival
        parts: list[bytes] = []
        need = size
        while need and queue and queue[0][1] <= now:
            data = queue[0][0]
            take = min(len(data) - self._head, need)
            parts.append(data[self._head : self._head + take])
            self._head += take
            need -= take
            if self._head == len(data):
                queue.popleft()
                self._head = 0
        played = size - need
        self.buffered -= played
        if need:
            parts.append(self.silence[:need])
        return b"".join(parts), played, first_arrival

    def _close(self, end: float, ended_by: str) -> None:
        assert self.current is not None
        self.current.end = end
        self.current.ended_by = ended_by
        self.current = None
        self._starved = False

    def close(self, now: float) -> None:
        """The call ended at `now`: closes the answer being heard, if any."""
        if self.current is None:
            return
        if self.buffered or self._audio_end > now:
            self._close(min(self._audio_end, now), "hangup")
        else:
            self._close(self._audio_end, "natural")

    # --- what the script asks -------------------------------------------------------------

    @property
    def last_activity(self) -> float:
        """The last time robot audio arrived or was heard."""
        return max(self._last_arrival, self._audio_end)

    def quiet(self, now: float, settle_s: float) -> bool:
        """Nothing to play and nothing received or heard for `settle_s`."""
        return self.buffered == 0 and now - self.last_activity >= settle_s

    def answer_started_after(self, t: float) -> Answer | None:
        """The first answer whose playout started after `t`."""
        found = None
        for answer in reversed(self.answers):
            if answer.start <= t:
                break
            found = answer
        return found
