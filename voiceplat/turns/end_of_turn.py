"""Semantic end of turn: how much silence ends the caller's turn, given what a model heard.

Silence length alone cannot tell "Я хотел бы…" (a pause to think) from "…к терапевту." (done):
a short silence setting cuts the first, a long one makes every answer late. With a model
(Smart Turn v3, voiceplat/turns/smart_turn.py) the endpointer asks, once the caller has been
silent for `check_after_ms`, whether the turn is complete:

- complete (P >= `complete_threshold`): the turn ends now, earlier than the silence setting;
- unfinished: the turn ends only after `unfinished_silence_ms` of silence (the caller may go on);
- no answer yet (the prediction is running): wait for it, at most `unfinished_silence_ms`;
- model off, or not asked: the robot's own silence setting (`base_silence_ms`), as before.

With `text_cue` the transcript of the utterance so far (the session's speculative ASR at the
pause) is judged too (`text_says_unfinished`): words that lean on the next one ("Я хотел бы…",
"…к врачу, который") wait `unfinished_silence_ms` whatever the model says, and the model's
"complete" ends a turn early only when the text agrees. On the held-out telephone set
(benchmarks/end_of_turn.py) Smart Turn v3 hurts on 8 kHz Russian and the text cue helps: ship
`model: none`, `text_cue: true` with a base silence of 800 ms.

Speech after a check makes the next pause a new question. `EndOfTurnPolicy` is sans-I/O: the
caller measures the silence and runs the model; the policy only says how much silence is needed.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# --- the text cue ------------------------------------------------------------------------------

LEANING_WORDS = frozenset(
    # Prepositions: never the last word of a finished Russian phrase.
    "в во на с со к ко по о об обо от ото до из изо у за над надо под подо при про без безо для "
    "через между перед передо около после возле вокруг кроме среди насчет вместо ради сквозь "
    "из-за из-под вроде против мимо вдоль согласно благодаря "
    # Conjunctions and conjunctive words that open the next clause.
    "и а но или либо что чтобы чтоб если когда потому поэтому как будто словно хотя "
    "причем зато нежели чем ибо "
    "который которая которое которые которого которой которому котором которым которыми которых "
    # Particles that lean on what follows.
    "бы б ли не ни даже "
    # Possessives and demonstratives before their noun.
    "мой моя мое мои моего моей моему моих мою ваш ваша ваше ваши вашего вашей вашему ваших "
    "вашу наш наша наше наши нашего нашей нашему наших нашу свой своя свое свои своего своей "
    "своему своих свою этот эта эти этого этой этому этих эту такой такая такое такие "
    "каждый каждая каждое какой-то какая-то какое-то "
    # Verbs that ask for a complement (a wish, a need, a plan), unless negated ("я не хочу.").
    "хочу хотел хотела хотели хотим хотите хочет хотелось могу могли можем сможете нужно "
    "надо нужна нужен нужны необходимо должен должна должны собираюсь собираемся планирую "
    "пытаюсь стараюсь буду будем будете стал стала начал начала думаю считаю кажется "
    "можно нельзя".split()
)
"""Words a Russian speaker does not stop on when done: the phrase leans on what comes next.
Chosen from the grammar (function words, complement-taking verbs), not from the benchmark set."""
NEGATABLE = frozenset(
    "хочу хотел хотела хотели хотим хотите хочет могу могли можем сможете буду будем будете "
    "нужно надо можно нельзя".split()
)
"""Complement-taking words that end a phrase when negated: "Я не хочу.", "Не надо."."""
LEAD_INS = frozenset(
    "скажите подскажите посмотрите уточните проверьте послушайте знаете понимаете".split()
)
"""Requests that open a call's question: said alone ("Скажите, пожалуйста!") the question is
still to come."""
FILLERS = frozenset("а ну вот пожалуйста так".split())
LEANING_PHRASES = (("дело", "в", "том"),)
"""Phrases whose last word is free but which always go on ("Дело в том, что…")."""
QUESTION_ENDS = frozenset("что как когда чем можно".split())
"""Leaning words that end a finished question: "А когда?", "Можно?"."""
_WORD = re.compile(r"[а-яёa-z0-9]+(?:-[а-яёa-z0-9]+)*")  # "до 10." ends on a number


def text_says_unfinished(text: str | None) -> bool | None:
    """What the transcript of the utterance so far says about its end.

    True: unfinished (the last word leans on the next one: a preposition, conjunction, "бы",
    "хочу", "который"...; a lead-in said alone: "Скажите, пожалуйста!", "Дело в том."; or it
    trails off: an ellipsis, a comma, a dash, no terminal mark).
    False: complete (ends with . ? ! and the last word does not lean). None: no words to judge.
    """
    if not text:
        return None
    cleaned = text.strip().lower().replace("ё", "е")
    words = _WORD.findall(cleaned)
    if not words:
        return None
    last = words[-1]
    tail = cleaned[cleaned.rfind(last) + len(last) :].strip()
    if "…" in tail or ".." in tail or tail.endswith(("-", "—", "–", ",", ";", ":")):
        return True
    if not tail or tail[-1] not in ".?!":
        return True
    content = [word for word in words if word not in FILLERS]
    if content and all(word in LEAD_INS for word in content):
        return True
    if any(tuple(words[-len(phrase) :]) == phrase for phrase in LEANING_PHRASES):
        return True
    if last in LEANING_WORDS:
        if tail.endswith("?") and last in QUESTION_ENDS:
            return False
        negated = len(words) >= 2 and words[-2] == "не"
        return not (negated and last in NEGATABLE)
    return False


class EndOfTurnSettings(BaseModel):
    """`end_of_turn:` in a robot's config."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["smart_turn", "none"] = "none"
    """`smart_turn`: ask Smart Turn v3 (prepared by `voiceplat models prepare smart-turn-v3`);
    `none`: no audio model (the text cue alone, or silence length alone)."""
    text_cue: bool = True
    """Also judge the transcript of the utterance so far (the speculative ASR at the pause):
    a last word that leans on the next one, or a trailing ellipsis/comma, waits
    `unfinished_silence_ms`; the model's "complete" ends the turn early only when the text
    agrees. Needs the session to pass the text (`silence_needed_ms(..., text=...)`)."""
    check_after_ms: int = Field(default=200, ge=20, le=2000)
    """Silence after the last speech at which the model is asked. Shorter answers sooner but
    asks more often inside phrases (each question costs one prediction of CPU)."""
    complete_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """P(complete) at or above which the model calls the turn complete: it ends as soon as the
    answers are in (and, with `text_cue`, the text agrees)."""
    unfinished_threshold: float | None = Field(default=None, ge=0.0, lt=1.0)
    """P(complete) below which the model alone calls the turn unfinished (wait
    `unfinished_silence_ms`). None: the same as `complete_threshold` (every answer that is not
    complete is unfinished); lower: between the two the robot's own silence setting holds;
    0: the model only ever ends turns early, the text alone makes the robot wait."""
    complete_text_silence_ms: int | None = Field(default=None, ge=20, le=10000)
    """Silence that ends a turn whose transcript looks complete (terminal mark, last word free)
    and has at least `complete_text_min_words` words; None: the base silence setting. A long
    finished sentence needs less silence than "Я звоню." (which may go on)."""
    complete_text_min_words: int = Field(default=4, ge=1, le=50)
    """Words a complete-looking transcript needs for `complete_text_silence_ms`. Off by default:
    benchmarks/end_of_turn.py chose 416 ms after >= 4 words on its synthetic half (no extra
    cut-offs there, p50 56 ms sooner), but on the held-out recorded prompts it cut 15 % of the
    sentences paused mid-phrase (Whisper writes a long head such as "Чтобы оставить сообщение"
    as a finished sentence) against 2.5 % without it."""
    unfinished_silence_ms: int = Field(default=1600, ge=100, le=10000)
    """Silence that ends a turn the model or the text calls unfinished (or that they have not
    answered about yet): a caller thinking mid-phrase gets this long before the robot answers."""
    model_tail_ms: int = Field(default=0, ge=0, le=2000)
    """Silence after the last speech frame that the model hears. Smart Turn reads a silence at
    the end as a finished turn whatever came before it: on tests/fixtures, with 200 ms of it a
    sentence cut in half scores as "complete" as the whole one (0.97 vs 0.96), while without it
    the halves score 0.09–0.47 and the whole sentences higher. So by default it hears the speech
    up to its last frame (`EndOfTurnPolicy.model_audio`)."""

    @model_validator(mode="after")
    def _order(self) -> EndOfTurnSettings:
        if self.unfinished_silence_ms <= self.check_after_ms:
            raise ValueError(
                f"unfinished_silence_ms ({self.unfinished_silence_ms}) must be longer than "
                f"check_after_ms ({self.check_after_ms})"
            )
        if self.unfinished_threshold is not None and (
            self.unfinished_threshold > self.complete_threshold
        ):
            raise ValueError(
                f"unfinished_threshold ({self.unfinished_threshold}) must not be above "
                f"complete_threshold ({self.complete_threshold})"
            )
        return self

    @property
    def enabled(self) -> bool:
        """The audio model is on (the robot loads it)."""
        return self.model != "none"

    @property
    def any_signal(self) -> bool:
        """Anything beyond silence length: the model, the text cue or both."""
        return self.enabled or self.text_cue


class EndOfTurnPolicy:
    """The silence that ends the current turn, from what the model and the transcript say."""

    def __init__(self, settings: EndOfTurnSettings, base_silence_ms: int) -> None:
        if base_silence_ms <= 0:
            raise ValueError(f"base_silence_ms must be > 0, got {base_silence_ms}")
        self.settings = settings
        self.base_silence_ms = base_silence_ms

    def should_check(self, gap_ms: float, already_asked: bool) -> bool:
        """Whether to ask the model now: silent long enough, not yet asked in this pause."""
        return (
            self.settings.enabled and not already_asked and gap_ms >= self.settings.check_after_ms
        )

    def model_audio(self, audio: bytes, gap_ms: float, frame_ms: int = 20) -> bytes:
        """The utterance so far as the model should hear it: `audio` (8 kHz int16, ending now,
        `gap_ms` of it silence after the last speech frame) with the silence beyond
        `model_tail_ms` cut off its end."""
        drop_ms = max(0.0, gap_ms - self.settings.model_tail_ms)
        drop = round(drop_ms / frame_ms) * frame_ms * 16  # 16 bytes per ms at 8 kHz
        return audio[: max(0, len(audio) - drop)]

    def is_complete(self, probability: float) -> bool:
        return probability >= self.settings.complete_threshold

    def is_unfinished(self, probability: float) -> bool:
        s = self.settings
        below = s.complete_threshold if s.unfinished_threshold is None else s.unfinished_threshold
        return probability < below

    def silence_needed_ms(
        self,
        probability: float | None,
        *,
        pending: bool = False,
        text: str | None = None,
        text_pending: bool = False,
    ) -> int:
        """Silence (ms after the last speech) that ends the turn.

        `probability`: the model's P(complete) for this pause, None when it has no answer.
        `pending`: the model was asked and is still working.
        `text`: the transcript of the utterance up to this pause (the speculative ASR), None
        when the caller has none; `text_pending`: that transcript is on its way.
        While an answer is on its way the turn waits for it (up to the unfinished wait), so the
        base setting does not cut the caller off meanwhile: the answer to the caller needs the
        transcript anyway. Unfinished by either signal: `unfinished_silence_ms`. Complete: end
        now (at `check_after_ms`) when the model says so and the text, if used, agrees; a long
        complete-looking text alone: `complete_text_silence_ms`. Otherwise the base setting.
        """
        s = self.settings
        base = self.base_silence_ms
        wait = max(base, s.unfinished_silence_ms)
        end_now = min(base, s.check_after_ms)
        use_text = s.text_cue and (text is not None or text_pending)
        if not s.enabled and not use_text:
            return base
        if use_text and text is not None and text_says_unfinished(text):
            return wait  # the words lean on what comes next: no answer can change that
        if (s.enabled and pending and probability is None) or (use_text and text is None):
            return wait  # an answer is on its way
        model_complete = False
        if s.enabled and probability is not None:
            if self.is_unfinished(probability):
                return wait
            model_complete = self.is_complete(probability)
        if not use_text:
            return end_now if model_complete else base
        # The text says complete (or has no words): end now only when the model agrees.
        text_complete = text_says_unfinished(text) is False
        if model_complete and text_complete:
            return end_now
        if (
            text_complete
            and s.complete_text_silence_ms is not None
            and len(_WORD.findall((text or "").lower())) >= s.complete_text_min_words
        ):
            return min(base, s.complete_text_silence_ms)
        return base

    def turn_ended(
        self,
        gap_ms: float,
        probability: float | None,
        *,
        pending: bool = False,
        text: str | None = None,
        text_pending: bool = False,
    ) -> bool:
        """Whether `gap_ms` of silence ends the turn now."""
        needed = self.silence_needed_ms(
            probability, pending=pending, text=text, text_pending=text_pending
        )
        return gap_ms >= needed
