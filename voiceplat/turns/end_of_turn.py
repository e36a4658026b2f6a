"""Semantic end of turn: how much silence ends the caller's turn, given what a model heard.

Silence length alone cannot tell "Я хотел бы…" (a pause to think) from "…к терапевту." (done):
a short silence setting cuts the first, a long one makes every answer late. With a model
(Smart Turn v3, voiceplat/turns/smart_turn.py) the endpointer asks, once the caller has been
silent for `check_after_ms`, whether the turn is complete:

- complete (P >= `complete_threshold`): the turn ends now, earlier than the silence setting;
- unfinished: the turn ends only after `unfinished_silence_ms` of silence (the caller may go on);
- no answer yet (the prediction is running): wait for it, at most `unfinished_silence_ms`;
- model off, or not asked: the robot's own silence setting (`base_silence_ms`), as before.

Speech after a check makes the next pause a new question. `EndOfTurnPolicy` is sans-I/O: the
caller measures the silence and runs the model; the policy only says how much silence is needed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EndOfTurnSettings(BaseModel):
    """`end_of_turn:` in a robot's config."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["smart_turn", "none"] = "smart_turn"
    """`smart_turn`: ask Smart Turn v3 (prepared by `voiceplat models prepare smart-turn-v3`);
    `none`: silence length alone ends a turn (the robot's silence setting)."""
    check_after_ms: int = Field(default=200, ge=20, le=2000)
    """Silence after the last speech at which the model is asked. Shorter answers sooner but
    asks more often inside phrases (each question costs one prediction of CPU)."""
    complete_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """P(complete) at or above which the turn ends as soon as the answer arrives."""
    unfinished_silence_ms: int = Field(default=1600, ge=100, le=10000)
    """Silence that ends a turn the model calls unfinished (or that it has not answered about
    yet): a caller thinking mid-phrase gets this long before the robot answers."""
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
        return self

    @property
    def enabled(self) -> bool:
        return self.model != "none"


class EndOfTurnPolicy:
    """The silence that ends the current turn, from the model's answer about it."""

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

    def silence_needed_ms(self, probability: float | None, *, pending: bool = False) -> int:
        """Silence (ms after the last speech) that ends the turn.

        `probability`: the model's P(complete) for this pause, None when it has no answer.
        `pending`: the model was asked and is still working: waiting for it (up to the
        unfinished wait) keeps the base setting from cutting the caller off meanwhile.
        """
        s = self.settings
        if not s.enabled:
            return self.base_silence_ms
        if probability is None:
            return (
                max(self.base_silence_ms, s.unfinished_silence_ms)
                if pending
                else self.base_silence_ms
            )
        if self.is_complete(probability):
            # End now: the model was asked at check_after_ms, so the gap already covers this.
            return min(self.base_silence_ms, s.check_after_ms)
        return max(self.base_silence_ms, s.unfinished_silence_ms)

    def turn_ended(
        self, gap_ms: float, probability: float | None, *, pending: bool = False
    ) -> bool:
        """Whether `gap_ms` of silence ends the turn now."""
        return gap_ms >= self.silence_needed_ms(probability, pending=pending)
