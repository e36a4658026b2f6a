"""What turn-taking (taking.py) asks the session to do: one small record per action."""

from __future__ import annotations

from dataclasses import dataclass

from voiceplat.turns.endpointer import SpeechEnded, SpeechPaused


@dataclass(frozen=True, slots=True)
class CallerStarted:
    started_at: float


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """The caller goes on talking while the robot prepares its answer: drop the answer."""


@dataclass(frozen=True, slots=True)
class Speculate:
    """Transcribe the paused utterance now; pass the text to `on_transcript(key, …)`."""

    paused: SpeechPaused
    key: int


@dataclass(frozen=True, slots=True)
class DropSpeculation:
    pass


@dataclass(frozen=True, slots=True)
class AskEndOfTurn:
    """Ask the end-of-turn model whether `audio` is a finished turn; answer with `key`."""

    audio: bytes
    key: int


@dataclass(frozen=True, slots=True)
class PauseRobot:
    speech_started: float


@dataclass(frozen=True, slots=True)
class ResumeRobot:
    reason: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Stop the robot's turn for good (the caller took the floor)."""

    speech_started: float
    reason: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The caller's utterance is over: transcribe and answer it."""

    utterance: SpeechEnded


@dataclass(frozen=True, slots=True)
class AnswerText:
    """Answer words already transcribed (an interruption confirmed by ASR)."""

    utterance: SpeechEnded
    text: str
    asr_ms: float | None


@dataclass(frozen=True, slots=True)
class CheckOverlap:
    """A burst over the paused robot ended: transcribe it and call `judge_overlap(key, …)`."""

    utterance: SpeechEnded
    key: int


@dataclass(frozen=True, slots=True)
class Ignored:
    """Caller speech that changes nothing (recorded only)."""

    reason: str
    text: str = ""


Action = (
    CallerStarted
    | CancelAnswer
    | Speculate
    | DropSpeculation
    | AskEndOfTurn
    | PauseRobot
    | ResumeRobot
    | Interrupt
    | Answer
    | AnswerText
    | CheckOverlap
    | Ignored
)
