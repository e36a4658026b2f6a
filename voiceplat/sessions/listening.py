"""Modes that listen with VAD (pipeline, llm_script): frames → VAD → turn-taking → utterances.

Every decision about the floor (pause, resume, interrupt, end of turn, ignore) is `TurnTaking`'s
(turns/taking.py): this session feeds it each frame with the VAD's and the echo guard's verdicts and
what the robot does, and carries out its actions. A frame costs O(frame); ASR and the end-of-turn
model run in tasks whose answers go back to the state machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from voiceplat.audio.pcm import FRAME_MS, Framer, Pcm
from voiceplat.sessions.base import CallEnded, Session
from voiceplat.sessions.no_input import spoken_timer
from voiceplat.sessions.speculation import Heard, Speculator
from voiceplat.sessions.timeouts import session_timeout
from voiceplat.sessions.turn import RobotTurn
from voiceplat.telephony.events import AudioIn
from voiceplat.turns import taking as tt
from voiceplat.turns.echo import EchoGuard
from voiceplat.turns.endpointer import Endpointer, SpeechEnded, SpeechPaused
from voiceplat.turns.taking import Robot, TurnTaking
from voiceplat.turns.utterance_filter import UtteranceFilter, confident_overlap
from voiceplat.turns.vad import VAD, make_vad

log = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000


class ListeningSession(Session):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.vad: VAD
        self.endpointer = Endpointer(self.config.vad.endpointer_settings())
        self.taking = TurnTaking(
            self.endpointer,
            self.config.barge_in,
            judge=lambda text, details, voiced_ms: confident_overlap(
                text, details, voiced_ms, self.config.utterance_filter
            ),
            end_of_turn=self.robot.end_of_turn_policy(),
        )
        self.utterances = UtteranceFilter(self.config.utterance_filter)
        """Whether an utterance is a turn, and how many unclear ones came in a row."""
        self.echo = EchoGuard(self.config.echo) if self.config.echo.enabled else None
        self.framer = Framer()
        self.carry_audio = b""
        """Audio of an utterance whose answer was cancelled before ASR finished: heard again."""
        self.speculator = Speculator(
            transcribe=lambda audio: self.transcribe(audio, log=False),
            prepare_reply=self.prepare_reply,
            on_transcript=self._tell_transcript,
            record=lambda name, **data: self.call.event(name, **data),
            clock=self.clock,
        )
        self.helpers: set[asyncio.Task[None]] = set()
        """End-of-turn and overlap checks in flight: cancelled when the call ends."""
        self._paused_heard_ms: float | None = None

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
        if self.echo is not None:
            self.audio.echo_guard(self.echo.played, self.echo.flushed)
        await self.greet()
        self.listen_to_keys()
        self._tasks.create_task(self._no_input_timer())
        # Frames are handled in the connection's reader as they arrive (no task wake-up per
        # frame); only a pause or a barge-in, which must finish before the next frame, runs in
        # this task.
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
            work = self._on_frame(frame, now - (last - i) * FRAME_S)
            if work is not None:
                rest = [(f, now - (last - j) * FRAME_S) for j, f in enumerate(frames) if j > i]
                return self._work_then(work, rest)
        return None

    async def _work_then(
        self, work: Coroutine[Any, Any, None], frames: list[tuple[bytes, float]]
    ) -> None:
        """Runs a pause or barge-in, then the frames of the same message that came after it."""
        await work
        for frame, t in frames:
            later = self._on_frame(frame, t)
            if later is not None:
                await later

    def _on_frame(self, frame: bytes, t: float) -> Coroutine[Any, Any, None] | None:
        """Handles one 20 ms frame; returns the work to finish before the next frame, if any."""
        echo = self.echo is not None and self.echo.is_echo(frame, t)
        actions = self.taking.on_frame(
            frame, t, is_speech=self.vad.is_speech(frame), robot=self.robot_floor(), echo=echo
        )
        return self._carry_out(actions) if actions else None

    def robot_floor(self) -> Robot:
        """What the robot is doing, as turn-taking needs to know it."""
        speaker = self.speaker
        if speaker is None or speaker.done():
            return Robot.SILENT
        if self.speaker_protected():
            return Robot.HOLDING
        if self.robot_talking():
            turn = self.turn
            return Robot.TALKING if turn is not None and turn.interruptible else Robot.HOLDING
        return Robot.THINKING

    def robot_has_the_floor(self) -> bool:
        """The robot talks, or is about to say a turn that must be heard."""
        return self.robot_floor() in (Robot.TALKING, Robot.HOLDING)

    # -- carrying out turn-taking's actions ---------------------------------------------------------
    def _carry_out(self, actions: list[tt.Action]) -> Coroutine[Any, Any, None] | None:
        """Does what can be done at once; returns what must be awaited before the next frame."""
        pending = [work for action in actions if (work := self._act(action)) is not None]
        if not pending:
            return None
        return pending[0] if len(pending) == 1 else _in_order(pending)

    def _act(self, action: tt.Action) -> Coroutine[Any, Any, None] | None:
        if isinstance(action, tt.CallerStarted):
            self.last_activity = action.started_at
            self.reprompts = 0
            self.call.event("speech_start")
        elif isinstance(action, tt.CancelAnswer):
            if self.speaker is not None and not self.robot_has_the_floor():
                # The caller goes on talking while we think: drop the answer, hear them out.
                self.speaker.cancel()
                self.call.event("answer_cancelled", reason="caller kept talking")
        elif isinstance(action, tt.Speculate):
            self._speculate(action.paused, action.key)
        elif isinstance(action, tt.DropSpeculation):
            self.speculator.drop()
        elif isinstance(action, tt.AskEndOfTurn):
            self._helper(self._ask_end_of_turn(action))
        elif isinstance(action, tt.PauseRobot):
            return self._pause_robot(action)
        elif isinstance(action, tt.ResumeRobot):
            self._resume_robot(action)
        elif isinstance(action, tt.Interrupt):
            return self._interrupt(action)
        elif isinstance(action, tt.Answer):
            self._answer_utterance(action.utterance)
        elif isinstance(action, tt.AnswerText):
            u = action.utterance
            self.start_speaker(
                lambda: self.answer(
                    b"", u.started_at, u.ended_at, text=action.text, asr_ms=action.asr_ms
                )
            )
        elif isinstance(action, tt.CheckOverlap):
            self._helper(self._check_overlap(action))
        elif isinstance(action, tt.Ignored):
            self.call.event("speech_ignored", reason=action.reason)
        return None

    def _helper(self, work: Coroutine[Any, Any, None]) -> None:
        # Not in the call's TaskGroup: a failed check must not end the call.
        task = asyncio.create_task(work)
        self.helpers.add(task)
        task.add_done_callback(self.helpers.discard)

    async def _pause_robot(self, action: tt.PauseRobot) -> None:
        turn = self.turn
        if turn is None:
            return
        heard = await self.audio.pause(turn, self.config.barge_in.resume_rewind_ms)
        self._paused_heard_ms = heard
        self.call.event(
            "robot_paused",
            turn=turn.idx,
            heard_ms=round(heard),
            talk_over_ms=round((self.clock() - action.speech_started) * 1000),
        )

    def _resume_robot(self, action: tt.ResumeRobot) -> None:
        turn = self.turn
        self._paused_heard_ms = None
        self.call.event("backchannel", text=action.text, reason=action.reason)
        if turn is None or not self.audio.paused:
            return
        self.audio.resume(turn)
        self.call.event("robot_resumed", turn=turn.idx, reason=action.reason)

    async def _interrupt(self, action: tt.Interrupt) -> None:
        heard, self._paused_heard_ms = self._paused_heard_ms, None
        await self.barge_in(action.speech_started, heard_ms=heard)

    async def _ask_end_of_turn(self, action: tt.AskEndOfTurn) -> None:
        try:
            probability: float | None = await self.robot.end_of_turn_probability(action.audio)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the model failing leaves silence-only endpointing
            self.call.event("error", detail=f"end-of-turn model: {type(exc).__name__}: {exc}")
            probability = None
        if probability is not None:
            self.call.event("end_of_turn", probability=round(probability, 3))
        work = self._carry_out(self.taking.on_end_of_turn(action.key, probability, self.clock()))
        if work is not None:
            await work

    async def _check_overlap(self, action: tt.CheckOverlap) -> None:
        """A burst over the paused robot ended: its words decide whether the robot resumes."""
        utterance = action.utterance
        try:
            text, asr_ms, details = await self.transcribe(utterance.audio)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed confirmation must not end the call: resume
            self.call.event("error", detail=f"barge-in ASR: {type(exc).__name__}: {exc}")
            text, asr_ms, details = "", None, {}
        actions = self.taking.judge_overlap(
            action.key, utterance, text, details, asr_ms, self.clock()
        )
        work = self._carry_out(actions)
        if work is not None:
            await work

    def _answer_utterance(self, event: SpeechEnded) -> None:
        self.last_activity = event.ended_at
        self.call.event("speech_end", ms=round((event.ended_at - event.started_at) * 1000))
        audio = self.carry_audio + event.audio
        # Audio carried over from a cancelled answer was not in the speculation's transcript.
        speculation = self.speculator.take(event.ended_at, usable=not self.carry_audio)
        self.carry_audio = b""
        voiced = event.speech_ms
        if speculation is not None:
            self.start_speaker(
                lambda: self.answer(
                    audio,
                    event.started_at,
                    event.ended_at,
                    early=speculation.task,
                    voiced_ms=voiced,
                )
            )
            return
        self.start_speaker(
            lambda: self.answer(audio, event.started_at, event.ended_at, voiced_ms=voiced)
        )

    def release(self) -> None:
        self.speculator.cancel_all()
        for task in self.helpers:
            task.cancel()

    def _speculate(self, event: SpeechPaused, key: int) -> None:
        """The caller paused: transcribe now; if they stay silent, the answer starts sooner."""
        if self.robot_has_the_floor() or self.carry_audio:
            self._tell_transcript(key, None)  # no transcript of this pause is coming
            return
        self.speculator.start(event.audio, event.ended_at, key)

    def _tell_transcript(self, key: int, text: str | None) -> None:
        work = self._carry_out(self.taking.on_transcript(key, text, self.clock()))
        if work is not None:
            self._helper(work)

    async def prepare_reply(self, text: str) -> bool:
        """Precomputes what the mode can of its reply to `text` (the caller may go on talking);
        False if there is nothing to precompute."""
        return False

    async def transcribe(self, audio: bytes, *, log: bool = True) -> Heard:
        asr = self.robot.asr
        asked = self.clock()
        async with asyncio.timeout(session_timeout(asr)):
            transcript = await asr.transcribe(Pcm(audio), asr.settings.language)
        asr_ms = (self.clock() - asked) * 1000
        if log:
            self.call.event("asr_done", ms=round(asr_ms), text=transcript.text)
        return transcript.text.strip(), asr_ms, dict(transcript.details)

    async def answer(
        self,
        audio: bytes,
        started: float,
        ended: float,
        *,
        text: str | None = None,
        asr_ms: float | None = None,
        early: asyncio.Task[Heard] | None = None,
        voiced_ms: float | None = None,
    ) -> None:
        """Hears one utterance and has the mode reply; `early` is a speculative transcription.

        Noise and ASR hallucinations are recorded as ignored and not answered; real speech that
        was not understood gets `utterance_filter.unclear_text` (at most `max_unclear_in_row`
        times in a row). Words given as `text` (keys, a confirmed interruption) are answered."""
        details: dict[str, Any] = {}
        if text is None:
            try:
                if early is not None:
                    text, asr_ms, details = await early
                    self.call.event("asr_done", ms=round(asr_ms), text=text, speculative=True)
                else:
                    text, asr_ms, details = await self.transcribe(audio)
            except asyncio.CancelledError:
                if early is not None:
                    early.cancel()
                self.carry_audio = audio + self.carry_audio
                raise
            except Exception as exc:
                await self.not_heard(exc)
                return
            if not await self._understood(text, details, voiced_ms, started, ended, asr_ms):
                return
        if not text:
            self.call.event("empty_transcript")
            return
        self.transcript.record_user_turn(text, started, ended, asr_ms)
        await self.reply(
            RobotTurn(self.transcript.next_idx(), asr_ms=asr_ms, user_speech_ended=ended)
        )

    async def _understood(
        self,
        text: str,
        details: dict[str, Any],
        voiced_ms: float | None,
        started: float,
        ended: float,
        asr_ms: float | None,
    ) -> bool:
        """False when the utterance is not answered: noise, a hallucination, or unclear speech
        (then the robot asks the caller to repeat)."""
        voiced = voiced_ms if voiced_ms is not None else (ended - started) * 1000
        verdict = self.utterances.judge(text, details, voiced)
        if verdict.kind == "ok":
            if verdict.reason == "unclear_limit":  # asked enough: answer what was heard
                self.call.event("unclear_answered", text=text)
            return True
        if not text:
            self.call.event("empty_transcript", reason=verdict.reason)
            return False
        reason = verdict.reason if verdict.kind == "ignore" else f"unclear: {verdict.reason}"
        self.transcript.record_user_turn(text, started, ended, asr_ms, ignored=reason)
        self.call.event("user_turn_ignored", text=text, reason=reason)
        if verdict.kind == "unclear":
            await self.speak([self.utterances.settings.unclear_text])
        return False

    async def reply(self, turn: RobotTurn) -> None:
        """The mode's robot turn answering the caller's last message (already in the history)."""
        raise NotImplementedError

    async def not_heard(self, error: Exception) -> None:
        """ASR failed: the robot says so in its own words."""
        await self.speak_fallback(error)

    async def _no_input_timer(self) -> None:
        timer = spoken_timer(
            self,
            self.config.no_input,
            clock=self.clock,
            paused=lambda: self.endpointer.in_speech,
            record=self.call.event,
            poll_s=FRAME_S,
        )
        await timer.run()


async def _in_order(works: list[Coroutine[Any, Any, None]]) -> None:
    for work in works:
        await work


__all__ = ["CallEnded", "ListeningSession"]
