"""Barge-in policy: when caller speech over the robot's voice should stop the robot.

Only consulted while the robot is speaking. Per frame, the session passes how much speech the
caller's current utterance has (the endpointer's `speech_ms`):

- below `min_speech_ms` it is ignored: a cough, a click, line noise, a breath;
- at `backchannel_max_ms` or more it interrupts: nobody says "ага" for that long;
- in between it is *pending*. A short burst may be a backchannel ("ага", "угу", "uh-huh"): the
  caller is listening and agreeing, and stopping the robot there is the classic annoying
  failure. Energy and VAD cannot tell "ага" from "стоп", so the session lets the robot go on
  talking, waits for the utterance to end, asks ASR, and calls `after_utterance(text)`: only
  backchannel words (or nothing intelligible) are ignored, anything else interrupts.

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
    min_speech_ms: int = Field(300, gt=0)
    """Caller speech needed before anything can interrupt the robot."""
    backchannel_words: list[str] = Field(default_factory=lambda: list(DEFAULT_BACKCHANNEL_WORDS))
    """Words that never interrupt on their own; [] interrupts on any speech of min_speech_ms."""
    backchannel_max_ms: int = Field(800, gt=0)
    """Speech this long is not a backchannel: it interrupts without waiting for ASR."""


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
