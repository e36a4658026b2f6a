"""Short "still working" phrases («Минутку…», «Ещё секунду…») while an answer keeps the caller waiting.

The one filler of an answer (fillers.py) covers one gap. An answer whose LLM needs 10 s to its
first token (a knowledge prompt on a small CPU, a queue of other calls' answers, a slow webhook)
would still leave the caller in silence after it, or after the `Hold` phrase («Сейчас посмотрю…»).
So while the answer's own words have not come (`RobotTurn.llm_ttft_ms` is unset), whenever the
caller has heard nothing from the robot for `hold_repeat_ms` — since the robot's audio ran out, or
since their own turn ended when there is no audio yet (and not before `admission.filler_after_ms`,
the filler's moment) — the next of `hold_repeat_texts` is said, in turn, at most `hold_repeat_max`
times per answer, never while the turn is paused for a possible interruption. Once the answer's
text flows, its gaps are the filler's.

`due_in_s` is the decision alone (the turn's state and the clock in, seconds out); `say` queues
the phrase (synthesised once when the robot starts) and records a `still_working` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from voiceplat.audio.pcm import Pcm
from voiceplat.sessions.turn import RobotTurn
from voiceplat.storage.recorder import CallLog

DUE_SLACK_S = 0.005
"""A phrase this close to due is said now (a timer may wake a hair early)."""


class Playout(Protocol):
    """What of `TurnAudio` the phrases need."""

    @property
    def paused(self) -> bool: ...

    def runs_dry_in_s(self, turn: RobotTurn) -> float | None: ...

    def queue(self, turn: RobotTurn, data: bytes, text: str | None) -> None: ...


def turn_paused(audio: Playout, turn: RobotTurn) -> bool:
    """`turn` itself is paused. The audio of an earlier turn that was paused and then
    interrupted stays held until the next turn queues its first audio: it does not pause a turn
    that has none yet (taken for this one's pause, it kept every filler from an answer that then
    waited 19 s in silence)."""
    return audio.paused and turn.first_audio_at is not None


class StillWorking:
    def __init__(
        self,
        phrases: Sequence[tuple[str, Pcm]],
        audio: Playout,
        call: CallLog,
        *,
        repeat_s: float,
        max_per_turn: int,
        clock: Callable[[], float],
        first_audio_after_s: float | None = None,
    ) -> None:
        self._phrases = list(phrases)
        self._audio = audio
        self._call = call
        self.repeat_s = repeat_s
        self.max_per_turn = max_per_turn
        self.first_audio_after_s = first_audio_after_s
        """The opening filler's moment: with no audio yet, no phrase comes before it."""
        self._clock = clock
        self._turn: RobotTurn | None = None
        self._said = 0
        """Phrases said in `_turn`."""

    def said(self, turn: RobotTurn) -> int:
        return self._said if turn is self._turn else 0

    def due_in_s(self, turn: RobotTurn) -> float | None:
        """Seconds until the next phrase is due (<= 0: now); None when no more will be in this
        answer (its text has come, all were said, or there are none). A paused turn is looked at
        again `repeat_s` later: its audio may come back, the wait go on."""
        if not self._phrases or self.said(turn) >= self.max_per_turn:
            return None
        if turn.llm_ttft_ms is not None:  # the answer's own words are in
            return None
        if turn.user_speech_ended is None:
            return None  # not an answer to the caller's words (a greeting, a reprompt)
        if turn_paused(self._audio, turn):
            return self.repeat_s
        left = self._audio.runs_dry_in_s(turn)
        if left is not None:  # silent since its audio ran out (left < 0), or will be
            return left + self.repeat_s
        if turn.first_audio_at is not None:
            return None
        silent_s = max(self.repeat_s, self.first_audio_after_s or 0.0)
        return turn.user_speech_ended + silent_s - self._clock()

    async def cover(self, turn: RobotTurn, waiting: asyncio.Future[Any]) -> None:
        """Says the phrases as they fall due until `waiting` (the answer's next text) is done
        or no more will come in this answer."""
        while not waiting.done():
            due = self.due_in_s(turn)
            if due is None:
                return
            if due <= DUE_SLACK_S and not turn_paused(self._audio, turn):
                self.say(turn)
                continue
            await asyncio.wait({waiting}, timeout=max(0.0, due))

    def say(self, turn: RobotTurn) -> None:
        if turn is not self._turn:
            self._turn, self._said = turn, 0
        text, audio = self._phrases[self._said % len(self._phrases)]
        self._said += 1
        self._audio.queue(turn, audio.data, None)
        if turn.planner is not None:
            turn.planner.audio_queued(audio.duration_s, of_chunk=False)
        self._call.event("still_working", turn=turn.idx, text=text, repeat=self._said)
