"""Turn-taking: who has the floor, as one explicit state machine (sans-I/O, times passed in).

The session feeds it every caller frame (with the VAD's and the echo guard's verdicts and what the
robot is doing), the transcripts it asked for and the end-of-turn model's answers; it returns
actions for the session to carry out. The session keeps no turn-taking flags of its own.

States (`Floor`):

    LISTENING ──caller speech──▶ CALLER_SPEAKING ──end of utterance──▶ LISTENING  (Answer)
        │ robot audio starts                 ▲ long speech / confirmed words
        ▼                                    │ (Interrupt)
    ROBOT_SPEAKING ──caller speech──▶ OVERLAP_PENDING ──pause_speech_ms, loud enough──▶ PAUSED
        ▲        ◀── burst ends short ───────┘                                             │
        │                                                                  burst ends      ▼
        └────────────── ResumeRobot (backchannel, noise, low confidence) ◀──────────── CHECKING

- OVERLAP_PENDING: speech over the robot, not yet enough to act on: the robot goes on talking.
- PAUSED: the robot's audio is stopped and flushed (not cancelled) because the speech is likely an
  interruption; it is held while the caller goes on.
- CHECKING: the burst ended; ASR decides. Backchannel words, nothing intelligible, or a short
  low-confidence transcript resume the robot from the word where it stopped; anything else
  interrupts it for good and is answered.

A turn the caller must hear (a goodbye, a legal notice: the robot *holds* the floor) is never
paused. Quiet speech over the robot (well below the caller's own level so far: their TV, a
colleague, the robot's own echo) never pauses it.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from voiceplat.turns.barge_in import BargeInPolicy, BargeInSettings
from voiceplat.turns.end_of_turn import EndOfTurnPolicy
from voiceplat.turns.endpointer import (
    Endpointer,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from voiceplat.turns.taking_actions import (
    Action,
    Answer,
    AnswerText,
    AskEndOfTurn,
    CallerStarted,
    CancelAnswer,
    CheckOverlap,
    DropSpeculation,
    Ignored,
    Interrupt,
    PauseRobot,
    ResumeRobot,
    Speculate,
)


class Floor(enum.Enum):
    LISTENING = "listening"
    CALLER_SPEAKING = "caller_speaking"
    ROBOT_SPEAKING = "robot_speaking"
    OVERLAP_PENDING = "overlap_pending"
    PAUSED = "paused"
    CHECKING = "checking"


class Robot(enum.Enum):
    """What the robot is doing, as the session sees it at each frame."""

    SILENT = "silent"
    THINKING = "thinking"
    """An answer is being prepared: no audio yet; the caller may still take it back."""
    TALKING = "talking"
    """Its audio is playing and may be interrupted."""
    HOLDING = "holding"
    """It says (or is about to say) a turn the caller must hear: never paused or interrupted."""


OverlapJudge = Callable[[str, dict[str, Any], float], bool]
"""(text, ASR details, voiced ms) -> True when a transcript over the robot is a real interruption
(confident words that are not a backchannel)."""


LEVEL_HISTORY_FRAMES = 500
"""Caller speech frames (10 s) the caller's own level is taken from."""
MIN_LEVEL_FRAMES = 25
"""Caller speech needed before the level gate applies (before it, any level may pause)."""


def frame_db(frame: bytes) -> float:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    if not samples.size:
        return -120.0
    rms = math.sqrt(float(np.mean(samples * samples)))
    return 20.0 * math.log10(max(rms, 1.0) / 32768.0)


class TurnTaking:
    def __init__(
        self,
        endpointer: Endpointer,
        settings: BargeInSettings | None = None,
        *,
        judge: OverlapJudge | None = None,
        end_of_turn: EndOfTurnPolicy | None = None,
    ) -> None:
        """`judge`: ASR confidence gate for overlaps (default: any words that are not
        backchannels interrupt). `end_of_turn`: when the end-of-turn model is asked, and what its
        answer means (None: silence length alone ends a turn)."""
        self.endpointer = endpointer
        self.settings = settings or BargeInSettings()
        self.policy = BargeInPolicy(self.settings)
        self.state = Floor.LISTENING
        self._judge = judge
        self._end_of_turn = end_of_turn if end_of_turn and end_of_turn.settings.any_signal else None
        self._probability: float | None = None
        """The end-of-turn model's answer for the current pause (None: not asked / not in)."""
        self._text: str | None = None
        """The transcript of the utterance up to the current pause (speculative ASR)."""
        self._text_pending = False
        self._model_answered = False
        self._key = 0
        """Names the current utterance pause (end-of-turn) or burst (overlap) an answer is for."""
        self._asked_end_of_turn = False
        self._answer_cancelled = False
        self._took_floor = False
        """The caller's utterance interrupted the robot: it keeps the floor until it ends."""
        self._speech_started = 0.0
        self._checking_since = 0.0
        self._paused_turn_protected = False
        self._caller_levels: deque[float] = deque(maxlen=LEVEL_HISTORY_FRAMES)
        self._utterance_levels: list[float] = []

    # -- input: one caller frame ---------------------------------------------------------------
    def on_frame(
        self, frame: bytes, t: float, *, is_speech: bool, robot: Robot, echo: bool = False
    ) -> list[Action]:
        """One caller frame ending at `t`; `echo`: the frame is the robot's own voice coming back."""
        speech = is_speech and not echo
        actions: list[Action] = []
        self._follow_robot(robot, t, actions)
        if speech:
            self._utterance_levels.append(frame_db(frame))
        for event in self.endpointer.push(frame, speech, t):
            self._on_event(event, robot, actions)
        if self.endpointer.in_speech:
            self._while_caller_speaks(robot, actions)
        elif self.state is Floor.CHECKING:
            if (t - self._checking_since) * 1000 >= self.settings.verdict_timeout_ms:
                # ASR did not answer in time: the robot must not stay silent on a maybe.
                self._key += 1
                self._to_robot_floor(robot)
                actions.append(ResumeRobot("no verdict in time"))
        self._ask_end_of_turn(actions)
        return actions

    def _follow_robot(self, robot: Robot, t: float, actions: list[Action]) -> None:
        state = self.state
        if state in (Floor.LISTENING, Floor.ROBOT_SPEAKING):
            self._to_robot_floor(robot)
        elif state is Floor.CALLER_SPEAKING and robot in (Robot.TALKING, Robot.HOLDING):
            if not self._took_floor:
                # The robot began talking while the caller speaks (a reprompt, a late answer).
                self.state = Floor.OVERLAP_PENDING
        elif state in (Floor.PAUSED, Floor.CHECKING) and robot in (Robot.SILENT, Robot.THINKING):
            # The paused turn ended some other way (cancelled by a newer one, the call's end).
            self._key += 1
            self.state = Floor.CALLER_SPEAKING if self.endpointer.in_speech else Floor.LISTENING

    def _to_robot_floor(self, robot: Robot) -> None:
        talking = robot in (Robot.TALKING, Robot.HOLDING)
        self.state = Floor.ROBOT_SPEAKING if talking else Floor.LISTENING

    # -- endpointer events ----------------------------------------------------------------------
    def _on_event(self, event: object, robot: Robot, actions: list[Action]) -> None:
        if isinstance(event, SpeechStarted):
            self._on_started(event, robot, actions)
        elif isinstance(event, SpeechEnded):
            self._on_ended(event, robot, actions)
        elif isinstance(event, SpeechPaused):
            if self.state is Floor.CALLER_SPEAKING and robot in (Robot.SILENT, Robot.THINKING):
                actions.append(Speculate(event, self._key))
                self._text, self._text_pending = None, True
                self._apply_end_of_turn()
        elif isinstance(event, SpeechResumed):
            self._key += 1
            self._forget_pause()
            if self.state is Floor.CALLER_SPEAKING:
                actions.append(DropSpeculation())

    def _on_started(self, event: SpeechStarted, robot: Robot, actions: list[Action]) -> None:
        self._key += 1
        self._forget_pause()
        self._answer_cancelled = False
        self._took_floor = False
        self._speech_started = event.started_at
        actions.append(CallerStarted(event.started_at))
        if self.state is Floor.CHECKING:
            # More speech before the verdict: the burst goes on (its earlier check is void).
            self.state = Floor.PAUSED
            self.endpointer.set_silence_ms(self.settings.verdict_silence_ms)
        elif robot in (Robot.TALKING, Robot.HOLDING):
            self.state = Floor.OVERLAP_PENDING
            self._paused_turn_protected = robot is Robot.HOLDING
        else:
            self.state = Floor.CALLER_SPEAKING

    def _on_ended(self, event: SpeechEnded, robot: Robot, actions: list[Action]) -> None:
        levels, self._utterance_levels = self._utterance_levels, []
        state = self.state
        if state is Floor.CALLER_SPEAKING:
            self._caller_levels.extend(levels)
            self.state = Floor.LISTENING
            actions.append(Answer(event))
        elif state is Floor.PAUSED:
            self.state = Floor.CHECKING
            self._checking_since = event.ended_at
            actions.append(CheckOverlap(event, self._key))
        elif state is Floor.OVERLAP_PENDING:
            self._to_robot_floor(robot)
            reason = "not interruptible" if robot is Robot.HOLDING else "short or quiet"
            actions.append(Ignored(reason))

    # -- while the caller's utterance is open ----------------------------------------------------
    def _while_caller_speaks(self, robot: Robot, actions: list[Action]) -> None:
        speech_ms = self.endpointer.speech_ms
        s = self.settings
        state = self.state
        if state is Floor.CALLER_SPEAKING:
            if robot is Robot.THINKING and not self._answer_cancelled:
                if speech_ms >= s.min_speech_ms:
                    self._answer_cancelled = True
                    actions.append(CancelAnswer())
            return
        if state not in (Floor.OVERLAP_PENDING, Floor.PAUSED):
            return
        decision = self.policy.during_speech(speech_ms, robot is Robot.TALKING)
        if decision == "ignore" or not self._loud_enough():
            return
        if decision == "interrupt":
            self.state = Floor.CALLER_SPEAKING
            self.endpointer.set_silence_ms(None)
            actions.append(Interrupt(self._speech_started, "long speech"))
            self._answer_cancelled = self._took_floor = True
        elif state is Floor.OVERLAP_PENDING:  # "pending": likely an interruption: stop, hold
            if not s.resume:
                return  # without resume, a pause would lose the rest: wait for the words
            self.state = Floor.PAUSED
            self.endpointer.set_silence_ms(s.verdict_silence_ms)
            actions.append(PauseRobot(self._speech_started))

    def _loud_enough(self) -> bool:
        """Speech over the robot well below the caller's own level is not the caller."""
        if len(self._caller_levels) < MIN_LEVEL_FRAMES or not self._utterance_levels:
            return True
        caller_db = float(np.median(np.fromiter(self._caller_levels, dtype=np.float32)))
        burst_db = float(np.median(np.asarray(self._utterance_levels, dtype=np.float32)))
        return burst_db >= caller_db - self.settings.max_level_drop_db

    # -- end of turn (model) ----------------------------------------------------------------------
    def _forget_pause(self) -> None:
        """Speech again: what was asked about the last pause no longer holds."""
        self._asked_end_of_turn = False
        self._probability, self._text, self._text_pending = None, None, False
        self._model_answered = False
        self.endpointer.set_silence_ms(None)

    def _ask_end_of_turn(self, actions: list[Action]) -> None:
        policy = self._end_of_turn
        if policy is None or self.state is not Floor.CALLER_SPEAKING:
            return
        if not self.endpointer.in_speech or self.endpointer.gap_ms == 0:
            return
        if policy.should_check(self.endpointer.gap_ms, self._asked_end_of_turn):
            self._asked_end_of_turn = True
            self._apply_end_of_turn()  # while the model works, the turn stays open
            audio = policy.model_audio(self.endpointer.utterance_audio(), self.endpointer.gap_ms)
            actions.append(AskEndOfTurn(audio, self._key))

    def _apply_end_of_turn(self) -> list[Action]:
        """Sets the silence that ends the current turn from what is known about this pause; ends
        the turn now if the silence so far is already that long."""
        policy = self._end_of_turn
        if policy is None:
            return []
        pending = self._asked_end_of_turn and not self._model_answered
        needed = policy.silence_needed_ms(
            self._probability, pending=pending, text=self._text, text_pending=self._text_pending
        )
        self.endpointer.set_silence_ms(needed)
        if self.endpointer.gap_ms < needed:
            return []
        ended = self.endpointer.end_now()
        if ended is None:
            return []
        actions: list[Action] = []
        self._on_ended(ended, Robot.SILENT, actions)
        return actions

    def on_end_of_turn(self, key: int, probability: float | None, t: float) -> list[Action]:
        """The model's answer for the pause named `key`: may end the turn now, or wait longer."""
        if self._end_of_turn is None or key != self._key or self.state is not Floor.CALLER_SPEAKING:
            return []
        self._probability = probability  # None: the model failed, as if it had not been asked
        self._model_answered = True
        return self._apply_end_of_turn()

    def on_transcript(self, key: int, text: str | None, t: float) -> list[Action]:
        """The speculative transcript of the pause named `key` (None: ASR failed)."""
        if key != self._key or self.state is not Floor.CALLER_SPEAKING:
            return []
        self._text, self._text_pending = text, False
        return self._apply_end_of_turn()

    # -- verdicts from ASR ---------------------------------------------------------------------------
    def judge_overlap(
        self,
        key: int,
        utterance: SpeechEnded,
        text: str,
        details: dict[str, Any],
        asr_ms: float | None,
        t: float,
    ) -> list[Action]:
        """ASR's transcript of a burst said over the paused robot."""
        if key != self._key or self.state is not Floor.CHECKING:
            return [Ignored("the turn it was said over is over", text)]
        has_words = self.policy.after_utterance(text) == "interrupt"
        if not has_words:
            reason = "backchannel" if self.policy.is_backchannel(text) else "nothing intelligible"
        elif self._judge is not None and not self._judge(text, details, utterance.speech_ms):
            reason = "low confidence"
        else:
            reason = ""
        if reason:
            self.state = Floor.ROBOT_SPEAKING
            return [ResumeRobot(reason, text)]
        self.state = Floor.LISTENING
        return [
            Interrupt(utterance.started_at, "confirmed by ASR"),
            AnswerText(utterance, text, asr_ms),
        ]


__all__ = [
    "Action",
    "Answer",
    "AnswerText",
    "AskEndOfTurn",
    "CallerStarted",
    "CancelAnswer",
    "CheckOverlap",
    "DropSpeculation",
    "Floor",
    "Ignored",
    "Interrupt",
    "PauseRobot",
    "ResumeRobot",
    "Robot",
    "Speculate",
    "TurnTaking",
]
