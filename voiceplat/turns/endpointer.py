"""The endpointer: turns per-frame VAD decisions into utterances.

    idle ──speech──▶ onset ──min_speech_ms of speech──▶ speaking ◀──speech──┐
      ▲                │ two non-speech frames in a row         │ non-speech│
      └────────────────┘ (a click, a cough: no events)          ▼           │
      ▲                                                     trailing ──────┘
      └────────── silence_ms of non-speech, or max_utterance_s ─┘  → SpeechEnded

Sans-I/O: the caller passes each frame, its VAD decision and the time at the frame's end, so
tests drive it with a fake clock and the audio path pays O(frame) per call.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EndpointerSettings:
    frame_ms: int = 20
    min_speech_ms: int = 160
    """Speech needed before an utterance is confirmed; shorter bursts yield no events."""
    silence_ms: int = 800
    """Non-speech after the last speech frame that ends the utterance."""
    pre_roll_ms: int = 300
    """Audio kept from before the onset, so ASR hears the first phoneme whole."""
    max_utterance_s: float = 30.0
    """An utterance is cut (forced=True) once it has lasted this long."""
    pause_ms: int = 0
    """Non-speech after which a SpeechPaused is emitted (0: never), for speculative ASR."""

    def __post_init__(self) -> None:
        if self.frame_ms <= 0:
            raise ValueError(f"frame_ms must be > 0, got {self.frame_ms}")
        for name in ("min_speech_ms", "silence_ms"):
            if getattr(self, name) < self.frame_ms:
                raise ValueError(f"{name} must be at least frame_ms ({self.frame_ms})")
        if self.pre_roll_ms < 0:
            raise ValueError(f"pre_roll_ms must be >= 0, got {self.pre_roll_ms}")
        if self.max_utterance_s * 1000 <= self.min_speech_ms:
            raise ValueError("max_utterance_s must be longer than min_speech_ms")


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    started_at: float
    """Time the first speech frame of the utterance began."""


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    audio: bytes
    """Pre-roll + the utterance + its trailing silence."""
    started_at: float
    ended_at: float
    """End of the last speech frame: the caller's end of speech, where latency is measured from."""
    forced: bool
    """True when max_utterance_s cut the utterance while the caller was still talking."""
    speech_ms: float = 0.0
    """Voiced time of the utterance (its speech frames), for confidence gating."""


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The caller has been silent for pause_ms: the utterance may be over (ASR can start early)."""

    audio: bytes
    started_at: float
    ended_at: float
    """End of the last speech frame; equals the SpeechEnded's ended_at if the caller stays silent."""


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech came back after a SpeechPaused: the paused audio was not the whole utterance."""


EndpointEvent = SpeechStarted | SpeechEnded | SpeechPaused | SpeechResumed


class _State(enum.Enum):
    IDLE = "idle"
    ONSET = "onset"
    SPEAKING = "speaking"
    TRAILING = "trailing"


class Endpointer:
    def __init__(self, settings: EndpointerSettings | None = None) -> None:
        self.settings = settings or EndpointerSettings()
        s = self.settings
        self._frame_s = s.frame_ms / 1000.0
        self._pre_roll: deque[bytes] = deque(maxlen=s.pre_roll_ms // s.frame_ms)
        self.reset()

    def reset(self) -> None:
        """Drops any utterance in progress and the pre-roll, without events."""
        self._state = _State.IDLE
        self._pre_roll.clear()
        self._frames: list[bytes] = []
        self._speech_frames = 0
        self._gap_frames = 0
        """Consecutive non-speech frames since the last speech frame."""
        self._started_at = 0.0
        self._last_speech_end = 0.0
        self._paused = False
        self._silence_override_ms: int | None = None

    @property
    def speech_ms(self) -> float:
        """Speech heard so far in the current utterance (onset included); 0 when idle."""
        return self._speech_frames * self.settings.frame_ms

    @property
    def gap_ms(self) -> float:
        """Non-speech since the last speech frame of an open utterance (0 while speaking)."""
        return self._gap_frames * self.settings.frame_ms if self.in_speech else 0.0

    def set_silence_ms(self, silence_ms: int | None) -> None:
        """Changes the silence that ends the current utterance (None: back to the setting), e.g.
        longer after an unfinished phrase, shorter for a burst over the robot. Reset at its end."""
        self._silence_override_ms = silence_ms

    def utterance_audio(self) -> bytes:
        """Pre-roll and the frames of the open utterance so far."""
        return b"".join((*self._pre_roll, *self._frames))

    def end_now(self) -> SpeechEnded | None:
        """Ends the open utterance during its trailing silence (the turn is known to be over)."""
        if self._state is not _State.TRAILING:
            return None
        return self._end(forced=False)

    @property
    def in_speech(self) -> bool:
        """True between SpeechStarted and SpeechEnded (trailing silence included)."""
        return self._state in (_State.SPEAKING, _State.TRAILING)

    def push(self, frame: bytes, is_speech: bool, now: float) -> list[EndpointEvent]:
        """Feeds one frame; `now` is the time at the END of the frame (any monotonic clock)."""
        state = self._state
        if state is _State.IDLE:
            if not is_speech:
                self._pre_roll.append(frame)
                return []
            self._start_onset(frame, now)
            return self._confirm_if_ready()

        self._frames.append(frame)
        resumed: list[EndpointEvent] = []
        if is_speech:
            self._speech_frames += 1
            self._gap_frames = 0
            self._last_speech_end = now
            if self._paused:
                self._paused = False
                resumed.append(SpeechResumed())
        else:
            self._gap_frames += 1

        if state is _State.ONSET:
            if self._gap_frames >= 2:
                self._abort_onset()
                return []
            return self._confirm_if_ready()

        if now - self._started_at >= self.settings.max_utterance_s:
            return [self._end(forced=True)]
        gap_ms = self._gap_frames * self.settings.frame_ms
        silence_ms = self._silence_override_ms or self.settings.silence_ms
        if gap_ms >= silence_ms:
            return [self._end(forced=False)]
        self._state = _State.TRAILING if self._gap_frames else _State.SPEAKING
        if self.settings.pause_ms and gap_ms >= self.settings.pause_ms and not self._paused:
            self._paused = True
            return [self._paused_event()]
        return resumed

    def _paused_event(self) -> SpeechPaused:
        return SpeechPaused(
            audio=b"".join((*self._pre_roll, *self._frames)),
            started_at=self._started_at,
            ended_at=self._last_speech_end,
        )

    def _start_onset(self, frame: bytes, now: float) -> None:
        self._state = _State.ONSET
        self._frames = [frame]
        self._speech_frames = 1
        self._gap_frames = 0
        self._started_at = now - self._frame_s
        self._last_speech_end = now

    def _confirm_if_ready(self) -> list[EndpointEvent]:
        if self.speech_ms < self.settings.min_speech_ms:
            return []
        self._state = _State.SPEAKING
        return [SpeechStarted(started_at=self._started_at)]

    def _abort_onset(self) -> None:
        # Too short to be speech: its frames become pre-roll for a real onset that may follow.
        self._pre_roll.extend(self._frames)
        self._state = _State.IDLE
        self._frames = []
        self._speech_frames = 0
        self._gap_frames = 0

    def _end(self, *, forced: bool) -> SpeechEnded:
        event = SpeechEnded(
            audio=b"".join((*self._pre_roll, *self._frames)),
            started_at=self._started_at,
            ended_at=self._last_speech_end,
            forced=forced,
            speech_ms=self.speech_ms,
        )
        # The trailing silence becomes the next utterance's pre-roll: when the caller resumes
        # right away, the frames just before the VAD fires may hold the start of a word. Only
        # non-speech frames carry over, so no speech is sent to ASR twice.
        self._pre_roll.clear()
        carry = min(self._gap_frames, self._pre_roll.maxlen or 0)
        if carry:
            self._pre_roll.extend(self._frames[-carry:])
        self._state = _State.IDLE
        self._frames = []
        self._speech_frames = 0
        self._gap_frames = 0
        self._paused = False
        self._silence_override_ms = None
        return event
