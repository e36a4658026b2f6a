"""Which caller utterances are words: noise and Whisper's hallucinations are not turns.

A cough, a click or a noise burst that VAD took for speech reaches ASR like any utterance, and
Whisper, asked to transcribe noise, writes something: nothing, a letter ("А"), a sound caption
("СПОКОЙНАЯ МУЗЫКА", "[музыка]") or a line from the video subtitles it learned on («Продолжение
следует…», «Субтитры сделал DimaTorzok», "Thank you for watching"). Answering that is the robot
talking to itself. `classify` sorts an utterance into

- `ignore`: not words (no letters, a hallucination phrase, a sound caption, too little voiced
  time, Whisper sure there was no speech, or short and unsure): drop it from the dialog and record
  it as ignored with the reason;
- `unclear`: long enough to be real speech, but Whisper is unsure of every word: ask the caller to
  repeat (`unclear_text`) instead of answering a guess;
- `ok`: answer it.

Confidence comes from the ASR's details (faster_whisper's `avg_logprob` and `no_speech_prob`,
voiceplat.providers.asr.faster_whisper); an ASR that reports neither is trusted. `voiced_ms` is
the utterance's speech time by VAD (frames judged speech, without the hangover).

Measured with Whisper base on telephone audio (8 kHz, mu-law; tests/e2e/test_faster_whisper.py):
clear Russian speech gives avg_logprob -0.3 to -0.65 and no_speech_prob 0.03-0.3; 150 ms noise
bursts "А" at -1.45 / 0.39, a whole sentence "Слышь, я не могу." at -1.85 / 0.41, "СПОКОЙНАЯ
МУЗЫКА" at -1.03 / 0.42; a cough or a click nothing at all. So short unsure words are noise.

`UtteranceFilter` adds the one piece of state: after `max_unclear_in_row` "please repeat"s the
next unclear utterance is answered as it is (the caller may just speak that way).
`confident_overlap` is the barge-in side: speech over the robot interrupts only when its words
are confident; a short unsure transcript ("Блан." for an "угу") is not an interruption.
Sans-I/O: no clock, no audio, no models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HALLUCINATIONS = [
    "Продолжение следует",
    "Субтитры сделал",
    "Субтитры создавал",
    "Субтитры делал",
    "Субтитры подготовил",
    "Редактор субтитров",
    "Корректор субтитров",
    "Спасибо за просмотр",
    "Подписывайтесь на канал",
    "Ставьте лайки",
    "Thank you for watching",
    "Thanks for watching",
    "Subtitles by",
    "Музыка",
    "Аплодисменты",
    "Смех",
]
"""Lines Whisper writes for noise and silence (from the subtitles it was trained on). A phrase of
two or more words also matches at the start of a longer text (`Субтитры сделал DimaTorzok`); a
single word only as the whole text."""

VerdictKind = Literal["ok", "ignore", "unclear"]
# Letters and digits: what makes a word. Bracketed parts are sound captions: "[музыка]", "(смех)".
_WORD = re.compile(r"\w+", re.UNICODE)
_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪[^♪]*♪?")
CAPTION_MIN_LETTERS = 6
"""An all-capitals text with a word this long is a caption ("ВЗДЫХАЕТ"), not an abbreviation
("МРТ", "СНИЛС")."""


class UtteranceFilterSettings(BaseModel):
    """What makes a caller's utterance a turn (`turns.utterance_filter` in robot.yaml)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="False: every utterance with words is a turn.")
    max_no_speech_prob: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Whisper's no-speech probability at or above which unsure words "
        "(avg_logprob below min_avg_logprob) are taken for noise.",
    )
    min_avg_logprob: float = Field(
        -1.0,
        le=0,
        description="Mean token log probability below which Whisper's words are guesses.",
    )
    min_voiced_ms: float = Field(
        100,
        ge=0,
        description="Less voiced time than this is noise (a click), whatever ASR wrote.",
    )
    unclear_min_voiced_ms: float = Field(
        400,
        ge=0,
        description="Unsure words with at least this much voiced time are speech not "
        "understood (ask to repeat); shorter ones are noise (ignored).",
    )
    hallucinations: list[str] = Field(
        default_factory=lambda: list(DEFAULT_HALLUCINATIONS),
        description="Texts that are never the caller's words (case, ё/е and punctuation "
        "do not matter).",
    )
    unclear_text: str = Field(
        "Извините, не расслышала, повторите, пожалуйста.",
        description="What the robot says to an unclear utterance instead of answering it.",
    )
    max_unclear_in_row: int = Field(
        2,
        ge=0,
        description="Times in a row the robot asks to repeat; the next unclear utterance "
        "is answered as it is. 0: never ask.",
    )
    overlap_min_avg_logprob: float = Field(
        -0.8,
        le=0,
        description="Over the robot's voice a short utterance interrupts only with words "
        "at least this sure.",
    )
    overlap_max_no_speech_prob: float = Field(
        0.5,
        ge=0,
        le=1,
        description="... and a no-speech probability below this.",
    )
    overlap_short_ms: float = Field(
        1000,
        ge=0,
        description="Voiced time under which speech over the robot needs the stricter "
        "overlap_* confidence to interrupt.",
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str
    """Why, in a word: 'no_words', 'hallucination', 'caption', 'too_short', 'no_speech',
    'low_confidence' (ignore or unclear), 'unclear_limit' (ok after too many unclear), 'ok'."""


OK = Verdict("ok", "ok")


def normalize(text: str) -> str:
    """Lower case, ё -> е, words only (punctuation, ellipses and quotes dropped), single spaces."""
    return " ".join(_WORD.findall(text.lower().replace("ё", "е")))


def _confidence(details: Mapping[str, object], name: str) -> float | None:
    value = details.get(name)
    return float(value) if isinstance(value, int | float) else None


def is_hallucination(text: str, phrases: list[str]) -> bool:
    said = normalize(text)
    for phrase in phrases:
        known = normalize(phrase)
        if not known:
            continue
        if said == known or (" " in known and said.startswith(known + " ")):
            return True
    return False


def is_caption(text: str) -> bool:
    """A sound description: only bracketed parts ("[музыка]"), or all capitals with a long word
    ("СПОКОЙНАЯ МУЗЫКА", "ВЗДЫХАЕТ!")."""
    if not normalize(_BRACKETED.sub(" ", text)) and normalize(text):
        return True
    letters = [c for c in text if c.isalpha()]
    words = _WORD.findall(text)
    return (
        bool(letters)
        and all(c.isupper() for c in letters)
        and any(len(word) >= CAPTION_MIN_LETTERS for word in words)
    )


def classify(
    text: str,
    details: Mapping[str, object],
    voiced_ms: float,
    settings: UtteranceFilterSettings,
) -> Verdict:
    """Whether an utterance is a turn (`ok`), noise to drop (`ignore`) or speech not understood
    (`unclear`); `details` as the ASR reported them (`avg_logprob`, `no_speech_prob`)."""
    if not normalize(text):
        return Verdict("ignore", "no_words")  # nothing to answer, filter on or off
    if not settings.enabled:
        return OK
    if is_hallucination(text, settings.hallucinations):
        return Verdict("ignore", "hallucination")
    if is_caption(text):
        return Verdict("ignore", "caption")
    if voiced_ms < settings.min_voiced_ms:
        return Verdict("ignore", "too_short")
    logprob = _confidence(details, "avg_logprob")
    no_speech = _confidence(details, "no_speech_prob")
    unsure = logprob is not None and logprob < settings.min_avg_logprob
    if unsure and no_speech is not None and no_speech >= settings.max_no_speech_prob:
        return Verdict("ignore", "no_speech")
    if unsure:
        if voiced_ms >= settings.unclear_min_voiced_ms:
            return Verdict("unclear", "low_confidence")
        return Verdict("ignore", "low_confidence")
    return OK


def confident_overlap(
    text: str,
    details: Mapping[str, object],
    voiced_ms: float,
    settings: UtteranceFilterSettings,
) -> bool:
    """Whether speech over the robot's voice holds confident words (an interruption, unless the
    words are a backchannel: that is barge_in's list). Stricter than `classify` for short speech:
    a short unsure transcript over the robot is noise or a misheard "угу"."""
    if classify(text, details, voiced_ms, settings).kind != "ok":
        return False
    if not settings.enabled or voiced_ms >= settings.overlap_short_ms:
        return True
    logprob = _confidence(details, "avg_logprob")
    no_speech = _confidence(details, "no_speech_prob")
    if logprob is not None and logprob < settings.overlap_min_avg_logprob:
        return False
    return no_speech is None or no_speech < settings.overlap_max_no_speech_prob


class UtteranceFilter:
    """`classify` plus the count of unclear utterances in a row (one per call)."""

    def __init__(self, settings: UtteranceFilterSettings | None = None) -> None:
        self.settings = settings or UtteranceFilterSettings()
        self.unclear_in_row = 0

    def judge(self, text: str, details: Mapping[str, object], voiced_ms: float) -> Verdict:
        """The verdict for a user turn in silence; an ignored utterance leaves the count alone
        (a cough between two mumbles does not reset it), an answered one resets it."""
        verdict = classify(text, details, voiced_ms, self.settings)
        if verdict.kind == "unclear":
            if self.unclear_in_row >= self.settings.max_unclear_in_row:
                verdict = Verdict("ok", "unclear_limit")
            else:
                self.unclear_in_row += 1
                return verdict
        if verdict.kind == "ok":
            self.unclear_in_row = 0
        return verdict
