"""A short filler ("Так…") that covers a gap the caller would hear in an answer, once.

Inside an answer: its audio runs out at a time the playout clock knows
(`TurnAudio.runs_dry_in_s`); the next chunk can be heard no sooner than the TTS's measured time
to first audio after its text is in. When the text comes too late for that, or TTS would take
longer than what is left to play, the filler (synthesised once when the robot starts) is queued
first.

Before an answer (`first_audio_after_s`, the robot's `admission.filler_after_ms`): when the
answer's first text has not come in time to be heard within that long of the caller's end of
speech (its LLM job waits in a queue behind other calls' answers, or the model is slow), the
filler is said first: an overloaded robot sounds busy, never dead.

Never more than once per answer, never while it is paused. An answer that keeps the caller
waiting longer gets the still-working phrases after it (still_working.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from voiceplat.audio.pcm import Pcm
from voiceplat.sessions.speech_rates import SpeechRates
from voiceplat.sessions.still_working import StillWorking, turn_paused
from voiceplat.sessions.turn import RobotTurn
from voiceplat.sessions.turn_audio import TurnAudio
from voiceplat.storage.recorder import CallLog

FILLER_LEAD_S = 0.12
"""The filler is queued this long before the robot's audio would run out."""


class Fillers:
    def __init__(
        self,
        filler: tuple[str, Pcm] | None,
        rates: SpeechRates,
        audio: TurnAudio,
        call: CallLog,
        *,
        first_audio_after_s: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._filler = filler
        self._rates = rates
        self._audio = audio
        self._call = call
        self.first_audio_after_s = first_audio_after_s
        """Silence after the caller's turn beyond which the filler opens the answer (None: no
        filler before the answer's first audio)."""
        self._clock = clock or asyncio.get_running_loop().time
        """The session's clock (`RobotTurn.user_speech_ended` is on it)."""
        self.still_working: StillWorking | None = None
        """Phrases said while the answer keeps the caller waiting after the filler (pipeline)."""

    def gap_coming(self, turn: RobotTurn, next_audio_in_s: float) -> bool:
        """The caller will hear silence inside the turn: its audio runs out before the next
        audio can come (and the one filler of the turn is still unsaid)."""
        if self._filler is None or turn.filler is not None or self._paused(turn):
            return False
        left = self._audio.runs_dry_in_s(turn)
        return left is not None and left < next_audio_in_s + FILLER_LEAD_S

    def say(self, turn: RobotTurn) -> None:
        assert self._filler is not None
        text, audio = self._filler
        turn.filler = text
        opening = turn.first_audio_at is None  # before the answer's first words
        self._audio.queue(turn, audio.data, None)
        if turn.planner is not None:
            turn.planner.audio_queued(audio.duration_s, of_chunk=False)
        self._call.event(
            "filler", turn=turn.idx, text=text, **({"opening": True} if opening else {})
        )

    def before_synthesis(self, turn: RobotTurn, text: str) -> None:
        """`text` is about to be synthesised: if its audio cannot come in time, fill first
        (inside the answer: before the audio runs out; before it: within first_audio_after_s)."""
        first_audio_s = self._rates.first_audio_s(len(text))
        if self.gap_coming(turn, first_audio_s):
            self.say(turn)
            return
        opens = self._opens_answer(turn)
        if self._filler is not None and opens is not None and opens < first_audio_s:
            if self._still_silent(turn):
                self.say(turn)

    async def next_sentence(self, turn: RobotTurn, sentences: AsyncIterator[str]) -> str:
        """The answer's next chunk; if it comes too late to be heard before the audio runs out,
        the filler covers the gap first; if it keeps the caller waiting longer, the
        still-working phrases (still_working.py) follow."""
        left = self._audio.runs_dry_in_s(turn)
        first = self._opens_answer(turn)
        filler = self._filler is not None and turn.filler is None and (left, first) != (None, None)
        still = self.still_working
        if not filler and (still is None or still.due_in_s(turn) is None):
            return await anext(sentences)
        waiting = asyncio.ensure_future(anext(sentences))
        try:
            if filler and not await self._comes_within(waiting, left, first):
                if left is not None and self.gap_coming(turn, self._rates.tts_first_audio_s):
                    self.say(turn)
                elif left is None and self._still_silent(turn):
                    self.say(turn)
            if still is not None:
                await still.cover(turn, waiting)
            return await waiting
        finally:
            if not waiting.done():
                # Let the generator finish its step before anyone closes it.
                waiting.cancel()
                await asyncio.wait({waiting})
            if not waiting.cancelled():
                waiting.exception()  # read: a StopAsyncIteration left unread is logged as ERROR

    async def _comes_within(
        self, waiting: asyncio.Future[str], left: float | None, first: float | None
    ) -> bool:
        """Waits for the next text as long as it can still be heard before the audio runs out
        (or, before the first audio, within first_audio_after_s of the caller's turn)."""
        tts_s = self._rates.tts_first_audio_s
        budget = left - tts_s - FILLER_LEAD_S if left is not None else (first or 0.0) - tts_s
        done, _ = await asyncio.wait({waiting}, timeout=max(0.0, budget))
        return bool(done)

    def _opens_answer(self, turn: RobotTurn) -> float | None:
        """Seconds left until the silence after the caller's turn is `first_audio_after_s`, while
        the answer has no audio yet; else None."""
        after = self.first_audio_after_s
        if after is None or turn.first_audio_at is not None or turn.user_speech_ended is None:
            return None
        return turn.user_speech_ended + after - self._clock()

    def _still_silent(self, turn: RobotTurn) -> bool:
        return turn.first_audio_at is None and turn.filler is None and not self._paused(turn)

    def _paused(self, turn: RobotTurn) -> bool:
        return turn_paused(self._audio, turn)
