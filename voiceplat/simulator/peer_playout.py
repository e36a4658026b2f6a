"""The caller's ear: FreeSWITCH's playout of robot audio (mod_audio_fork), as a sans-I/O class.

By default `Playout` follows what mod_audio_fork really does (jambonz freeswitch-modules,
`mod_audio_fork/lws_glue.cpp`; the functions named below are from that file):

- Pre-buffer (`processIncomingBinary`): BINARY audio is first collected in a pre-buffer and moves
  to the playout buffer only once the pre-buffer holds `streamingPreBufSize` samples: 1280 (160 ms
  at our 8 kHz) the first time in a call, 640 (80 ms) after that. Audio below the threshold waits
  for the next BINARY message, however long that takes; killAudio does not empty the pre-buffer.
- Marks (`processIncomingMessage` "mark", `dub_speech_frame`): a mark goes to an *inventory*; the
  next BINARY message moves the inventory to *in use* and puts one marker sample before its
  audio. A marker reaching the 20 ms write frame that plays it answers `playout` with the oldest
  in-use name (or, silently, with the oldest *cleared* name while there are any). Marks left in
  the inventory are answered one per frame once the playout buffer is empty, but only while no
  mark is in use or cleared. In-use plus inventory marks are limited to `MAX_MARKS` (30); more are
  discarded. killAudio answers `cleared` for the in-use and inventory marks and keeps the in-use
  names as *cleared*, so markers of flushed audio leave names behind and later replies name an
  earlier mark. While any name is in use or cleared, an audio sample of -1 (0xFFFF, the marker
  value) is taken for a marker too.
- Each 20 ms frame takes up to one frame of samples from the playout buffer, padding with
  silence when it holds less.

`marks="ideal"` answers each mark once all audio received before it has played (and `cleared` on
killAudio when it had not); `marks="none"` never answers (builds before marks, other ingresses).
`prebuffer=False` plays each chunk from its arrival. Two simplifications: a marker takes no time
(in the module it fills one sample slot, 0.125 ms), and a -1 sample taken for a marker stays in
the audio heard (the module drops that sample).

`Playout` measures what the caller heard: answers, underruns, per-chunk jitter and marks (the
records in `playout_records.py`, their definitions in `report.py`). Every method takes `now`
(seconds on the call's clock) so tests drive it without sleeping. The frame played by
`tick(now)` is heard during [now, now + frame); a chunk is playable from the moment it reaches
the playout buffer, so a frame never plays audio that had not arrived yet.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

import numpy as np

from voiceplat.audio.pcm import CALL_RATE, SAMPLE_WIDTH, frame_bytes
from voiceplat.simulator.playout_records import ANSWER_GAP_S, Answer, Chunk, Kill, Underrun
from voiceplat.simulator.turn_gaps import Run
from voiceplat.telephony.ingress.audio_fork.codec import (
    MAX_MARKS,
    PREBUFFER_FIRST_SAMPLES,
    PREBUFFER_SAMPLES,
)

MarkRules = Literal["module", "ideal", "none"]


class Playout:
    """Robot audio played at real time, with marks, killAudio and quality measurements."""

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        rate: int = CALL_RATE,
        answer_gap_s: float = ANSWER_GAP_S,
        keep_audio: bool = True,
        marks: MarkRules = "module",
        prebuffer: bool = True,
    ) -> None:
        """`keep_audio`: keep the audio received and heard, and a record of every chunk."""
        self.frame_bytes = frame_bytes(frame_ms, rate)
        self.bytes_per_s = rate * SAMPLE_WIDTH
        self.answer_gap_s = answer_gap_s
        self.marks = marks
        self.silence = bytes(self.frame_bytes)
        # Positions are byte offsets in the stream of robot audio received (odd bytes carried).
        # The playout buffer holds [consumed, consumed + buffered), the pre-buffer the rest up to
        # `received_total`; `consumed` counts audio played or flushed by killAudio.
        self._queue: deque[tuple[bytes, float]] = deque()  # (data, when it became playable)
        self._head = 0  # bytes of _queue[0] already played
        self._odd = b""  # a split sample, carried to the next message
        self.buffered = 0
        """Bytes in the playout buffer (playable, not yet played)."""
        self._prebuffer = prebuffer
        self._pre: list[bytes] = []
        self.held = 0
        """Bytes waiting in the pre-buffer."""
        self._threshold = PREBUFFER_FIRST_SAMPLES * SAMPLE_WIDTH
        self.received_total = 0
        self.consumed = 0
        self.played_total = 0
        """Bytes played so far."""
        # "ideal": (position, name), reached once consumed >= position.
        self._ideal: deque[tuple[int, str]] = deque()
        # "module": the module's three name lists and its marker positions.
        self._inventory: deque[str] = deque()
        self._in_use: deque[str] = deque()
        self._cleared: deque[str] = deque()
        self._pre_markers: list[int] = []  # markers in the pre-buffer
        self._markers: deque[int] = deque()  # markers in the playout buffer
        self.dropped_marks: list[str] = []
        """Marks discarded because MAX_MARKS were held ("module" only)."""
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
        self.stream_starts: list[int] = []
        """Stream positions where the robot began sending after a pause or a killAudio."""
        self.runs: list[Run] = []
        """What was heard when: stream positions played without a break (robot turns and their
        gaps are found from these and the marks, see `turn_gaps.py`)."""
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
        if self.marks == "module" and self._inventory:
            # The inventory goes into use, one marker before this message's audio.
            self._pre_markers.extend([self.received_total] * len(self._inventory))
            self._in_use.extend(self._inventory)
            self._inventory.clear()
        if data:
            if self.received is not None:
                self.received += data
            self.received_total += len(data)
        if not self._prebuffer:  # straight into the playout buffer
            if self._pre_markers:
                self._markers.extend(self._pre_markers)
                self._pre_markers = []
            if data:
                self._queue.append((data, now))
                self.buffered += len(data)
        else:
            if data:
                self._pre.append(data)
                self.held += len(data)
            # The threshold counts marker samples too.
            if self.held + len(self._pre_markers) * SAMPLE_WIDTH >= self._threshold:
                self._release(now)
        if self.buffered + self.held > self.max_buffered:
            self.max_buffered = self.buffered + self.held

    def _release(self, now: float) -> None:
        """The pre-buffer moves to the playout buffer, playable from `now`."""
        if self._pre:
            self._queue.append((b"".join(self._pre) if len(self._pre) > 1 else self._pre[0], now))
            self.buffered += self.held
        self._markers.extend(self._pre_markers)
        self._pre, self.held, self._pre_markers = [], 0, []
        self._threshold = PREBUFFER_SAMPLES * SAMPLE_WIDTH

    def _jitter(self, nbytes: int, now: float) -> float | None:
        """Lateness of a chunk against the fastest real-time schedule its stream has shown.

        A stream is robot audio without a pause of more than `answer_gap_s` or a killAudio.
        offset_i = arrival_i - duration(bytes before chunk i in the stream); the reference is the
        smallest offset seen so far (the first chunk's arrival to begin with); jitter_i = offset_i
        - reference >= 0. A robot that sends a lead ahead and then paces at real time shows 0.
        """
        anchor = self._stream_anchor
        if anchor is None or (self.buffered == 0 and now - self.last_activity > self.answer_gap_s):
            self.stream_starts.append(self.received_total)
            self._stream_anchor = now
            self._stream_bytes = nbytes
            return None
        offset = now - self._stream_bytes / self.bytes_per_s
        self._stream_bytes += nbytes
        if offset < anchor:
            self._stream_anchor = anchor = offset
        return offset - anchor

    def mark(self, name: str, now: float) -> bool:
        """A mark message, after the audio received so far; False if the module discards it."""
        if self.marks == "ideal":
            self._ideal.append((self.received_total, name))
        elif self.marks == "module":
            if len(self._in_use) + len(self._inventory) >= MAX_MARKS:
                self.dropped_marks.append(name)
                return False
            self._inventory.append(name)
        return True

    def clear_marks(self) -> None:
        """clearMarks ("module"): every name held becomes cleared, without a reply."""
        if self.marks == "module":
            self._cleared.extend(self._in_use)
            self._cleared.extend(self._inventory)
            self._in_use.clear()
            self._inventory.clear()

    def kill(self, now: float) -> list[str]:
        """killAudio: flushes the playout buffer (not the pre-buffer); returns the marks cleared."""
        flushed = self.buffered
        flushed_from = self.consumed
        self.consumed += flushed
        self._queue.clear()
        self._head = 0
        self.buffered = 0
        cleared: list[str] = []
        if self.marks == "ideal":
            cleared = [name for pos, name in self._ideal if pos > self.consumed - flushed]
            self._ideal = deque(m for m in self._ideal if m[0] <= self.consumed - flushed)
        elif self.marks == "module":
            cleared = [*self._in_use, *self._inventory]
            # dub_speech_frame: the in-use names are kept as cleared, so that their markers,
            # when they come, are not reported. Those of the flushed audio never come.
            self._cleared.extend(self._in_use)
            self._in_use.clear()
            self._inventory.clear()
            self._markers.clear()
        if self.current is not None:
            # The frame already handed to the line plays to its end; nothing after it does.
            self._close(self._audio_end, "killAudio")
            self.answers[-1].killed_at = now
        self.kills.append(Kill(now, flushed, tuple(cleared), flushed_from, self.received_total))
        self._stream_anchor = None
        return cleared

    # --- the playout clock ----------------------------------------------------------------

    def tick(self, now: float) -> tuple[bytes, list[str]]:
        """Plays one frame starting at `now`.

        Returns the frame heard and the marks answered `playout` at this frame: "ideal", those
        whose audio finished playing in earlier frames (a mark on an empty buffer is reached at
        the next tick); "module", the names the module reports for the markers in this frame.
        """
        reached: list[str] = []
        if self.marks == "ideal":
            while self._ideal and self._ideal[0][0] <= self.consumed:
                reached.append(self._ideal.popleft()[1])
        elif self.marks == "module" and not self.buffered and self._inventory:
            if not self._in_use and not self._cleared:
                reached.append(self._inventory.popleft())
        current = self.current
        if current is not None and now - self._audio_end > self.answer_gap_s:
            self._close(self._audio_end, "natural")
            current = None
        start = self.consumed
        frame, played, first_arrival = self._take(now)
        if self.marks == "module" and played and (self._markers or self._in_use or self._cleared):
            reached += self._markers_in(frame, played, start)
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
            self._add_run(now, start, played)
            self._audio_end = now + played / self.bytes_per_s
            self._starved = played < self.frame_bytes
            self.played_total += played
            self.consumed += played
        elif current is not None:
            self._starved = True
        if self.heard is not None:
            self.heard.append(frame)
        return frame, reached

    def _add_run(self, now: float, pos: int, played: int) -> None:
        runs = self.runs
        if runs:
            last = runs[-1]
            if last.pos + last.nbytes == pos and abs(self._audio_end - now) < 1e-6:
                runs[-1] = Run(last.start, last.pos, last.nbytes + played)
                return
        runs.append(Run(now, pos, played))

    def _markers_in(self, frame: bytes, played: int, start: int) -> list[str]:
        """What the module reports for the markers, and the -1 samples, in one frame's audio
        (`played` bytes of `frame`, from stream position `start`)."""
        markers = self._markers
        end = start + played
        hits: list[int] = []
        while markers and markers[0] < end:
            hits.append(markers.popleft())
        if not self._in_use and not self._cleared:
            return []  # the module copies marker samples as audio then
        if b"\xff\xff" in frame:  # a C-speed scan first: hundreds of calls tick at once
            samples = np.frombuffer(frame, dtype="<i2", count=played // SAMPLE_WIDTH)
            hits += [start + int(i) * SAMPLE_WIDTH for i in np.flatnonzero(samples == -1)]
            hits.sort()
        reported: list[str] = []
        for _ in hits:
            if self._cleared:
                self._cleared.popleft()  # "previously cleared": no reply
            elif self._in_use:
                reported.append(self._in_use.popleft())
        return reported

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
            # The common case (whole frames, no pre-buffer): no copying.
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
        """Nothing to play and nothing received or heard for `settle_s` (audio stuck in the
        pre-buffer does not play until more comes, so it does not count)."""
        return self.buffered == 0 and now - self.last_activity >= settle_s

    def answer_started_after(self, t: float) -> Answer | None:
        """The first answer whose playout started after `t`."""
        found = None
        for answer in reversed(self.answers):
            if answer.start <= t:
                break
            found = answer
        return found
