"""Barge-in policy: when caller speech over the robot's voice should stop the robot.

Only consulted while the robot is speaking. Per frame, the session passes how much speech the
caller's current utterance has (the endpointer's `speech_ms`):

- below `min_speech_ms` it is ignored: a cough, a click, line noise, a breath;
- at `backchannel_max_ms` or more it interrupts: nobody says "ага" for that long;
- in between it is *pending*. A short burst may be a backchannel ("ага", "угу", "uh-huh"): the
  caller is listening and agreeing. Energy and VAD cannot tell "ага" from "стоп", so the robot
  pauses (its audio stops at once, so a real interruption is not talked over), ASR hears the
  burst and `after_utterance(text)` decides: backchannel words or nothing intelligible resume
  the robot from the word where it stopped, anything else interrupts (turns/taking.py).

An empty backchannel list turns the pending stage off: speech interrupts at `min_speech_ms`.
A robot turn can be marked not interruptible (a legal notice that must be heard in full).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BACKCHANNEL_WORDS = [
    "ага", "угу", "ну", "да", "ок", "окей", "хорошо", "так", "понятно", "ясно", "мм",
    "uh-huh", "mhm", "yeah", "yes", "ok", "okay", "right", "hmm", "mm",
]  # fmt: skip

# A word: letters/digits, with inner hyphens or apostrophes kept ("uh-huh", "don't").
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")

SpeechDecision = Literal["ignore", "pending", "interrupt"]
UtteranceDecision = Literal["ignore", "interrupt"]


class BargeInSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    min_speech_ms: int = Field(280, gt=0)
    """Caller speech over the robot that pauses it (shorter: a cough, a click, breath)."""
    backchannel_words: list[str] = Field(default_factory=lambda: list(DEFAULT_BACKCHANNEL_WORDS))
    """Words that never interrupt on their own; [] interrupts on any speech of min_speech_ms."""
    backchannel_max_ms: int = Field(800, gt=0)
    """Speech this long is not a backchannel: it interrupts without waiting for ASR."""
    resume: bool = True
    """Pause the robot at min_speech_ms and resume it after a backchannel or noise; False: the
    robot talks on until ASR confirms an interruption (the old, slower behaviour)."""
    verdict_silence_ms: int = Field(250, gt=0)
    """Silence that ends a burst over the paused robot (shorter than vad's: the robot waits)."""
    verdict_timeout_ms: int = Field(2000, gt=0)
    """A paused robot resumes if ASR has not judged the burst this long after it ended."""
    resume_rewind_ms: int = Field(400, ge=0)
    """A resumed turn starts again at the last word boundary at most this far before the point
    where the caller stopped hearing it."""
    max_level_drop_db: float = Field(12.0, gt=0)
    """Speech over the robot this much quieter than the caller's own level never pauses it."""


def words(text: str) -> list[str]:
    """Normalised words of `text`: lower case, ё→е, punctuation dropped, hyphenated kept whole."""
    return _WORD.findall(text.lower().replace("ё", "е"))


class BargeInPolicy:
    def __init__(self, settings: BargeInSettings | None = None) -> None:
        self.settings = settings or BargeInSettings()
        self._backchannel = frozenset(
            word for entry in self.settings.backchannel_words for word in words(entry)
        )

    def during_speech(self, speech_ms: float, interruptible: bool = True) -> SpeechDecision:
        """Called every frame while the robot speaks and the caller's utterance has speech."""
        s = self.settings
        if not s.enabled or not interruptible or speech_ms < s.min_speech_ms:
            return "ignore"
        if not self._backchannel or speech_ms >= s.backchannel_max_ms:
            return "interrupt"
        return "pending"

    def after_utterance(self, text: str) -> UtteranceDecision:
        """Decides a pending burst once ASR has its text."""
        if not self.settings.enabled or not words(text) or self.is_backchannel(text):
            return "ignore"
        return "interrupt"

    def is_backchannel(self, text: str) -> bool:
        """True when `text` has words and every one is a backchannel word."""
        found = words(text)
        return bool(found) and all(word in self._backchannel for word in found)
