"""Modes that listen with VAD (pipeline, llm_script): frames → VAD → endpointer → barge-in → utterance.

Handling one frame is O(frame); anything slow (ASR, barge-in confirmation) runs in a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from voiceplat.audio.pcm import FRAME_MS, Framer, Pcm
from voiceplat.sessions.base import CallEnded, Session
from voiceplat.sessions.no_input import NoInputTimer
from voiceplat.sessions.timeouts import session_timeout
from voiceplat.sessions.turn import RobotTurn
from voiceplat.telephony.events import AudioIn
from voiceplat.turns.barge_in import BargeInPolicy
from voiceplat.turns.endpointer import (
    Endpointer,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from voiceplat.turns.vad import VAD, make_vad

log = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000


class ListeningSession(Session):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.vad: VAD
        self.endpointer = Endpointer(self.config.vad.endpointer_settings())
        self.policy = BargeInPolicy(self.config.barge_in)
        self.framer = Framer()
        self.barge_pending = False
        self.speech_started_at: float | None = None
        self.carry_audio = b""
        """Audio of an utterance whose answer was cancelled before ASR finished: heard again."""
        self.reprompts = 0
        self.speculation: Speculation | None = None
        self.prefills: set[asyncio.Task[None]] = set()
        """Prefills of speculations that were used: cancelled when the call ends."""

    async def main(self) -> None:
        vad = self.config.vad
        # Silero builds an ONNX session (~80 ms): never on the event loop, where calls' audio runs.
        self.vad = await asyncio.to_thread(
            make_vad,
            vad.engine,
            aggressiveness=vad.aggressiveness,
            energy_threshold=vad.energy_threshold,
            silero_threshold=vad.silero_threshold,
        )
        await self.greet()
        self.listen_to_keys()
        self._tasks.create_task(self._no_input_timer())
        # Frames are handled in the connection's reader as they arrive (no task wake-up per
        # frame); only a barge-in, which must finish before the next frame, runs in this task.
        await self.channel.receive_audio(self._on_audio)

    async def greet(self) -> None:
        config = self.config
        audio = self.robot.greeting_audio
        if audio is None and not config.greeting_text:
            return
        text = [config.greeting_text] if config.greeting_text else []
        interruptible = config.greeting_interruptible
        self.start_speaker(lambda: self.speak(text, audio=audio, interruptible=interruptible))

    def _on_audio(self, audio: AudioIn) -> Coroutine[Any, Any, None] | None:
        frames = self.framer.push(audio.data)
        now = self.clock()
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            barge_in = self._on_frame(frame, now - (last - i) * FRAME_S)
            if barge_in is not None:
                rest = [(f, now - (last - j) * FRAME_S) for j, f in enumerate(frames) if j > i]
                return self._barge_in_then(barge_in, rest)
        return None

    async def _barge_in_then(
        self, barge_in: Coroutine[Any, Any, None], frames: list[tuple[bytes, float]]
    ) -> None:
        """Runs a barge-in, then the frames of the same message that came after its frame."""
        await barge_in
        for frame, t in frames:
            later = self._on_frame(frame, t)
            if later is not None:
                await later

    def _on_frame(self, frame: bytes, t: float) -> Coroutine[Any, Any, None] | None:
        """Handles one 20 ms frame; returns the barge-in to run before the next frame, if any."""
        for event in self.endpointer.push(frame, self.vad.is_speech(frame), t):
            if isinstance(event, SpeechStarted):
                self._on_speech_started(event)
            elif isinstance(event, SpeechEnded):
                self._on_speech_ended(event)
            elif isinstance(event, SpeechPaused):
                self._speculate(event)
            elif isinstance(event, SpeechResumed):
                self._drop_speculation()
        if self.endpointer.in_speech and self.robot_talking() and self.turn is not None:
            decision = self.policy.during_speech(self.endpointer.speech_ms, self.turn.interruptible)
            if decision == "interrupt":
                self.barge_pending = False
                return self.barge_in(self.speech_started_at)
            if decision == "pending":
                self.barge_pending = True
        return None

    def robot_has_the_floor(self) -> bool:
        """The robot talks, or is about to say a turn that must be heard (a goodbye, a
        non-interruptible greeting): caller speech does not start an answer now."""
        return self.robot_talking() or self.speaker_protected()

    def _on_speech_started(self, event: SpeechStarted) -> None:
        self.speech_started_at = event.started_at
        self.last_activity = event.started_at
        self.reprompts = 0
        self.call.event("speech_start")
        if self.speaker is not None and not self.robot_has_the_floor():
            # The caller goes on talking while we think: drop the answer, hear them out.
            self.speaker.cancel()
            self.call.event("answer_cancelled", reason="caller kept talking")

    def _on_speech_ended(self, event: SpeechEnded) -> None:
        self.last_activity = event.ended_at
        self.call.event("speech_end", ms=round((event.ended_at - event.started_at) * 1000))
        if self.robot_has_the_floor():
            turn = self.turn
            if self.barge_pending and self.robot_talking() and turn and turn.interruptible:
                self._tasks.create_task(self._confirm_barge_in(event, turn))
            else:
                self.call.event("speech_ignored", reason="short or not interruptible")
            self.barge_pending = False
            return
        audio = self.carry_audio + event.audio
        speculation = self.speculation if not self.carry_audio else None
        self.speculation = None
        self.carry_audio = b""
        if speculation is not None and speculation.ended_at == event.ended_at:
            self.call.event("asr_speculative", used=True)
            if speculation.prefill is not None and not speculation.prefill.done():
                self.prefills.add(speculation.prefill)  # its work is the answer's: let it finish
            self.start_speaker(
                lambda: self.answer(audio, event.started_at, event.ended_at, early=speculation.task)
            )
            return
        if speculation is not None:
            speculation.cancel()
        self.start_speaker(lambda: self.answer(audio, event.started_at, event.ended_at))

    def release(self) -> None:
        if self.speculation is not None:
            self.speculation.cancel()
        for task in self.prefills:
            task.cancel()

    def _speculate(self, event: SpeechPaused) -> None:
        """The caller paused: transcribe now; if they stay silent, the answer starts sooner."""
        if self.robot_has_the_floor() or self.carry_audio:
            return
        self._drop_speculation()
        speculation = Speculation(event.ended_at)
        # Not in the call's TaskGroup: a failed speculation must not end the call.
        speculation.task = asyncio.create_task(self._hear_ahead(event.audio, speculation))
        speculation.task.add_done_callback(_consume_result)
        self.speculation = speculation

    async def _hear_ahead(self, audio: bytes, speculation: Speculation) -> tuple[str, float]:
        """Transcribes a paused utterance, then lets the mode prepare its answer to it."""
        text, asr_ms = await self.transcribe(audio, log=False)
        if text:
            speculation.prefill = asyncio.create_task(self._prefill(text))
            speculation.prefill.add_done_callback(self.prefills.discard)
        return text, asr_ms

    async def _prefill(self, text: str) -> None:
        asked = self.clock()
        try:
            prepared = await self.prepare_reply(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # only a head start was lost: the answer asks again
            self.call.event("llm_prefill", error=f"{type(exc).__name__}: {exc}")
        else:
            if prepared:
                self.call.event("llm_prefill", ms=round((self.clock() - asked) * 1000))

    async def prepare_reply(self, text: str) -> bool:
        """Precomputes what the mode can of its reply to `text` (the caller may go on talking);
        False if there is nothing to precompute."""
        return False

    def _drop_speculation(self) -> None:
        if self.speculation is not None:
            self.speculation.cancel()
            self.call.event("asr_speculative", used=False)
            self.speculation = None

    async def _confirm_barge_in(self, event: SpeechEnded, turn: RobotTurn) -> None:
        """A short burst while the robot spoke `turn`: interrupt only if ASR heard more than 'ага'."""
        try:
            text, asr_ms = await self.transcribe(event.audio)
        except Exception as exc:  # a failed confirmation must not end the call
            self.call.event("error", detail=f"barge-in ASR: {type(exc).__name__}: {exc}")
            return
        if self.turn is not turn or not self.robot_talking():
            # That turn is over (or was replaced, e.g. by the max-duration goodbye): the burst
            # was said over something that is no longer playing.
            self.call.event("backchannel", text=text, reason="the turn it was said over is over")
            return
        if self.policy.after_utterance(text) == "ignore":
            self.call.event("backchannel", text=text)
            return
        await self.barge_in(event.started_at)
        self.start_speaker(
            lambda: self.answer(b"", event.started_at, event.ended_at, text=text, asr_ms=asr_ms)
        )

    async def transcribe(self, audio: bytes, *, log: bool = True) -> tuple[str, float]:
        asr = self.robot.asr
        asked = self.clock()
        async with asyncio.timeout(session_timeout(asr)):
            transcript = await asr.transcribe(Pcm(audio), asr.settings.language)
        asr_ms = (self.clock() - asked) * 1000
        if log:
            self.call.event("asr_done", ms=round(asr_ms), text=transcript.text)
        return transcript.text.strip(), asr_ms

    async def answer(
        self,
        audio: bytes,
        started: float,
        ended: float,
        *,
        text: str | None = None,
        asr_ms: float | None = None,
        early: asyncio.Task[tuple[str, float]] | None = None,
    ) -> None:
        """Hears one utterance and has the mode reply; `early` is a speculative transcription."""
        if text is None:
            try:
                if early is not None:
                    text, asr_ms = await early
                    self.call.event("asr_done", ms=round(asr_ms), text=text, speculative=True)
                else:
                    text, asr_ms = await self.transcribe(audio)
            except asyncio.CancelledError:
                if early is not None:
                    early.cancel()
                self.carry_audio = audio + self.carry_audio
                raise
            except Exception as exc:
                await self.not_heard(exc)
                return
        if not text:
            self.call.event("empty_transcript")
            return
        self.transcript.record_user_turn(text, started, ended, asr_ms)
        await self.reply(
            RobotTurn(self.transcript.next_idx(), asr_ms=asr_ms, user_speech_ended=ended)
        )

    async def reply(self, turn: RobotTurn) -> None:
        """The mode's robot turn answering the caller's last message (already in the history)."""
        raise NotImplementedError

    async def not_heard(self, error: Exception) -> None:
        """ASR failed: the robot says so in its own words."""
        await self.speak_fallback(error)

    async def _no_input_timer(self) -> None:
        settings = self.config.no_input

        async def reprompt() -> None:
            self.start_speaker(lambda: self.speak([settings.reprompt_text]))

        async def goodbye() -> None:
            self.start_speaker(
                lambda: self.speak(
                    [settings.goodbye_text], interruptible=False, ends_call="no_input"
                ),
                final=True,
            )

        timer = NoInputTimer(
            self,
            settings,
            clock=self.clock,
            paused=lambda: self.endpointer.in_speech,
            reprompt=reprompt,
            goodbye=goodbye,
            record=self.call.event,
            poll_s=FRAME_S,
        )
        await timer.run()


@dataclass(slots=True)
class Speculation:
    ended_at: float
    """End of speech the transcription covers; valid if the utterance ends there too."""
    task: asyncio.Task[tuple[str, float]] = field(init=False)
    prefill: asyncio.Task[None] | None = None
    """The mode's head start on its answer, once the transcript is in."""

    def cancel(self) -> None:
        self.task.cancel()
        if self.prefill is not None:
            self.prefill.cancel()


def _consume_result(task: asyncio.Task[tuple[str, float]]) -> None:
    """A dropped speculation's failure is not the call's failure."""
    if not task.cancelled():
        task.exception()


__all__ = ["CallEnded", "ListeningSession"]
