"""Speculative ASR and prefill: at the caller's first short pause, transcribe what they said so far
and let the mode prepare its answer; if they stay silent, the answer starts without waiting for
either. If they go on talking, it is dropped.

The transcript also goes to turn-taking (`on_transcript`): whether the words so far are a finished
phrase decides how much silence ends the turn. Nothing here is in the call's TaskGroup: a failed
speculation must never end the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Heard = tuple[str, float, dict[str, Any]]
"""A transcription: text, ASR ms, the ASR's details (confidence)."""


@dataclass(slots=True)
class Speculation:
    ended_at: float
    """End of speech the transcription covers; valid if the utterance ends there too."""
    task: asyncio.Task[Heard] = field(init=False)
    prefill: asyncio.Task[None] | None = None
    """The mode's head start on its answer, once the transcript is in."""

    def cancel(self) -> None:
        self.task.cancel()
        if self.prefill is not None:
            self.prefill.cancel()


class Speculator:
    def __init__(
        self,
        *,
        transcribe: Callable[[bytes], Awaitable[Heard]],
        prepare_reply: Callable[[str], Awaitable[bool]],
        on_transcript: Callable[[int, str | None], None],
        record: Callable[..., None],
        clock: Callable[[], float],
    ) -> None:
        self._transcribe = transcribe
        self._prepare_reply = prepare_reply
        self._on_transcript = on_transcript
        self._record = record
        self._clock = clock
        self.current: Speculation | None = None
        self.prefills: set[asyncio.Task[None]] = set()
        """Prefills of speculations that were used: cancelled when the call ends."""

    def start(self, audio: bytes, ended_at: float, key: int) -> None:
        self.drop()
        speculation = Speculation(ended_at)
        speculation.task = asyncio.create_task(self._hear_ahead(audio, speculation, key))
        speculation.task.add_done_callback(_consume_result)
        self.current = speculation

    def drop(self) -> None:
        """The caller went on talking: the transcription no longer covers the utterance."""
        if self.current is not None:
            self.current.cancel()
            self._record("asr_speculative", used=False)
            self.current = None

    def take(self, ended_at: float, *, usable: bool = True) -> Speculation | None:
        """The utterance ended at `ended_at`: the speculation that covers it (now the answer's),
        or None (one that does not cover it is cancelled)."""
        speculation, self.current = self.current, None
        if speculation is None:
            return None
        if not usable or speculation.ended_at != ended_at:
            speculation.cancel()
            return None
        self._record("asr_speculative", used=True)
        if speculation.prefill is not None and not speculation.prefill.done():
            self.prefills.add(speculation.prefill)  # its work is the answer's: let it finish
        return speculation

    def cancel_all(self) -> None:
        if self.current is not None:
            self.current.cancel()
        for task in self.prefills:
            task.cancel()

    async def _hear_ahead(self, audio: bytes, speculation: Speculation, key: int) -> Heard:
        """Transcribes a paused utterance, tells turn-taking what was said so far (is the phrase
        finished?), then lets the mode prepare its answer to it."""
        try:
            text, asr_ms, details = await self._transcribe(audio)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._on_transcript(key, None)
            raise
        if self.current is speculation:
            self._on_transcript(key, text)
        if text:
            speculation.prefill = asyncio.create_task(self._prefill(text))
            speculation.prefill.add_done_callback(self.prefills.discard)
        return text, asr_ms, details

    async def _prefill(self, text: str) -> None:
        asked = self._clock()
        try:
            prepared = await self._prepare_reply(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # only a head start was lost: the answer asks again
            self._record("llm_prefill", error=f"{type(exc).__name__}: {exc}")
        else:
            if prepared:
                self._record("llm_prefill", ms=round((self._clock() - asked) * 1000))


def _consume_result(task: asyncio.Task[Heard]) -> None:
    """A dropped speculation's failure is not the call's failure."""
    if not task.cancelled():
        task.exception()
