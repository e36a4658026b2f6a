"""What every mode shares: call lifecycle, the one speaker, robot turns, barge-in, max duration;
the call's turns and dialog are its `CallTranscript`, a turn's audio goes out through `TurnAudio`.

A mode adds only its turn logic (`main`). All tasks of a call live in one TaskGroup; ending the call
(hangup, goodbye, error) cancels them all. A robot turn runs in the `speaker` task: it queues audio
sentence by sentence, waits until the caller has heard it, and records itself however it ends.

A turn asked not to be interrupted is *protected*: caller speech never cancels it, not even before
its first audio. A protected turn that ends the call is *final* (the goodbyes of max duration and
no input): no newer reason to speak replaces it, and it is bounded in time, so that `max_call_s`
holds whatever the caller does. How a call ends: docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any, ClassVar

from voiceplat.audio.pcm import Pcm
from voiceplat.recording.call import recording_for
from voiceplat.robot import Robot
from voiceplat.sessions.closing import close_record
from voiceplat.sessions.dtmf import CallerKeys, KeyActions, SpeakerKeyActions
from voiceplat.sessions.ending import CallEnded, first_error
from voiceplat.sessions.fallback import fall_back
from voiceplat.sessions.fillers import Fillers
from voiceplat.sessions.max_duration import max_duration_goodbye
from voiceplat.sessions.sentences import speak_sentences
from voiceplat.sessions.transcript import CallTranscript
from voiceplat.sessions.transfer import hand_over
from voiceplat.sessions.turn import RobotTurn, utcnow
from voiceplat.sessions.turn_audio import TurnAudio
from voiceplat.storage.recorder import CallLog, Recorder
from voiceplat.storage.records import CallRecord, CallStatus
from voiceplat.telephony.channel import CallChannel, Hangup
from voiceplat.telephony.events import CallMetadata, CallProtocolError

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 10.0


class Session:
    mode: ClassVar[str]
    HANGUP_REASONS: ClassVar[frozenset[str]] = frozenset(
        {"robot_goodbye", "no_input", "max_duration", "dtmf_hangup"}
    )
    """End reasons for which the robot tells the peer to hang up before closing."""

    def __init__(self, robot: Robot, channel: CallChannel, recorder: Recorder) -> None:
        self.robot = robot
        self.config = robot.config
        # A recorded call's channel is wrapped: every mode's audio goes onto the call's tape.
        self.recording = recording_for(robot, channel)
        self.channel: CallChannel = channel if self.recording is None else self.recording.channel
        self.recorder = recorder
        self.clock = asyncio.get_running_loop().time
        # Made when the call's record opens (_open_record):
        self.call: CallLog
        self.transcript: CallTranscript
        """The call's turns: their numbering, records and the dialog history."""
        self.audio: TurnAudio
        """Robot turns' audio onto the channel, and the wait until heard."""
        self.turn: RobotTurn | None = None
        self.speaker: asyncio.Task[None] | None = None
        self._protected: asyncio.Task[None] | None = None
        """The speaker whose turn must not be interrupted: caller speech never cancels it."""
        self._final: asyncio.Task[None] | None = None
        """The speaker saying the call's last words: no newer speaker replaces it."""
        self._ended_at: datetime | None = None
        """When a task of the call ended it (goodbye heard, peer gone, failure)."""
        self.idle = asyncio.Event()
        self.idle.set()
        self.last_activity = self.clock()
        self.reprompts = 0
        self.keys: CallerKeys
        self._started_clock = self.clock()
        self._started_wall = utcnow()
        self._tasks: asyncio.TaskGroup

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> str:
        """Serves the call until it ends; returns the end reason. Never raises for one call's failure."""
        self.robot.call_started()
        try:
            return await self._run()
        finally:
            self.robot.call_ended()

    async def _run(self) -> str:
        try:
            async with asyncio.timeout(METADATA_TIMEOUT_S):
                metadata = await self.channel.metadata()
        except (CallProtocolError, Hangup, TimeoutError) as exc:
            reason = "caller_hangup" if isinstance(exc, Hangup) else "protocol_error"
            problem = str(exc) or "no metadata within 10 s"
            # The ingress says what carried the call (a refused Twilio stream is not FreeSWITCH's).
            source = str(getattr(self.channel, "source", "freeswitch"))
            self._open_record(CallMetadata(call_id=str(uuid.uuid4()), source=source))
            self.call.event("error", reason=f"before metadata: {problem}")
            return await self._finish("failed", reason, problem)
        self._open_record(metadata)
        try:
            status, reason, detail = await self._serve_call()
        except asyncio.CancelledError:
            self._note_end()
            await self._finish("failed", "shutdown", "the robot stopped during the call")
            raise
        return await self._finish(status, reason, detail)

    async def _serve_call(self) -> tuple[CallStatus, str, str | None]:
        status: CallStatus = "completed"
        reason, detail = "caller_hangup", None
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                for work in (self.channel.run_pacer(), self._max_duration(), self.main()):
                    self._spawn(work)
        except* CallEnded as group:
            reason = first_error(group).reason
        except* Hangup as group:
            reason = first_error(group).end_reason  # caller_hangup, or e.g. rtp_timeout (SIP)
        except* CallProtocolError as group:
            status, reason, detail = "failed", "protocol_error", str(group.exceptions[0])
        except* Exception as group:
            log.error("call %s failed", self.metadata.call_id, exc_info=group.exceptions[0])
            status, reason = "failed", "error"
            detail = f"{type(group.exceptions[0]).__name__}: {group.exceptions[0]}"
        return status, reason, detail

    def _open_record(self, metadata: CallMetadata) -> None:
        self.metadata = metadata
        self.call = self.recorder.open_call(
            CallRecord(
                call_id=metadata.call_id,
                robot=self.robot.name,
                mode=self.mode,
                source=metadata.source,
                caller=metadata.caller,
                callee=metadata.callee,
                started_at=self._started_wall,
                answered_at=self._started_wall,
                status="in_progress",
                metadata=metadata.extra,
                recording=None
                if self.recording is None
                else self.recording.open(metadata.call_id, self._started_wall),
            )
        )
        self.transcript = CallTranscript(
            self.call,
            started_clock=self._started_clock,
            started_wall=self._started_wall,
            prompt=self.robot.prompt,
            history_turns=self.config.history_turns,
            goodbye_words=self.config.goodbye_words,
        )
        self.audio = TurnAudio(
            self.channel,
            self.call,
            tts=lambda: self.robot.tts,
            clock=self.clock,
            on_synthesized=self.robot.rates.tts_done,
        )
        self.fillers = Fillers(self.robot.filler_audio, self.robot.rates, self.audio, self.call)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Runs `work` with the call's tasks: what it raises ends the call."""
        task = self._tasks.create_task(work)
        task.add_done_callback(self._note_end)
        return task

    def _note_end(self, task: asyncio.Task[None] | None = None) -> None:
        """Stamps the moment the call ended: the first task that raised (CallEnded after the
        goodbye was heard, Hangup when the peer left, a failure), or the shutdown's cancel."""
        if self._ended_at is not None:
            return
        if task is None or (not task.cancelled() and task.exception() is not None):
            self._ended_at = utcnow()

    async def _finish(self, status: CallStatus, reason: str, detail: str | None) -> str:
        # Nothing awaits before the record is finished: closing may take the whole close
        # handshake, and a shutdown stops waiting for this task soon after cancelling it.
        self.release()
        if detail:
            log.warning("call %s ended: %s: %s", self.call.record.call_id, reason, detail)
            self.call.event("error", reason=reason, detail=detail)
        ended_at, outcome = self._ended_at or utcnow(), self.tool_outcome()
        close_record(
            self.call,
            status,
            reason,
            ended_at,
            tool_outcome=outcome,
            after_call=self.robot.after_call,
        )
        try:
            if reason in self.HANGUP_REASONS:
                await self.channel.disconnect()
            await self.channel.close()
        finally:
            if self.recording is not None:  # the call is over: written off its audio path
                await self.recording.save(self.call)
        return reason

    async def main(self) -> None:
        raise NotImplementedError

    def tool_outcome(self) -> str | None:
        """The outcome the call's tools declared (a booking); modes with tools say it."""
        return None

    def release(self) -> None:
        """Cancels work a mode keeps outside the call's TaskGroup."""

    # -- robot turns -------------------------------------------------------------------------
    def robot_talking(self) -> bool:
        return self.turn is not None and self.turn.first_audio_at is not None

    def speaker_protected(self) -> bool:
        """The speaker's turn must be heard: caller speech does not cancel it, even before its
        first audio (a non-interruptible turn, a goodbye)."""
        speaker = self.speaker
        return speaker is not None and not speaker.done() and speaker is self._protected

    def saying_goodbye(self) -> bool:
        """The speaker says the call's last words; nothing but the end of the call stops it."""
        speaker = self.speaker
        return speaker is not None and not speaker.done() and speaker is self._final

    def start_speaker(
        self,
        work: Callable[[], Awaitable[object]],
        *,
        protected: bool = False,
        final: bool = False,
    ) -> bool:
        """Runs `work` (which may open robot turns) as the one speaker of this call.

        `protected`/`final` take effect at once, before the task first runs (speak() marks its
        speaker too). Returns False, and runs nothing, while a final goodbye is being said.
        """
        if self.speaker is not None and not self.speaker.done():
            if self.speaker is self._final:
                self.call.event("speaker_refused", reason="the robot is saying goodbye")
                return False
            # Two robot turns must never play at once: the newer reason to speak wins.
            self.speaker.cancel()
        self.idle.clear()
        self.speaker = self._tasks.create_task(self._run_speaker(work))
        self.speaker.add_done_callback(self._note_end)
        if protected or final:
            self._protected = self.speaker
        if final:
            self._final = self.speaker
        return True

    async def _run_speaker(self, work: Callable[[], Awaitable[object]]) -> None:
        try:
            await work()
        finally:
            if self.speaker is asyncio.current_task():
                self.speaker = None
                self.turn = None
                self.last_activity = self.clock()
                self.idle.set()

    async def speak(
        self,
        sentences: AsyncIterator[str] | Iterable[str],
        *,
        interruptible: bool = True,
        ends_call: str | None = None,
        turn: RobotTurn | None = None,
        audio: Pcm | None = None,
    ) -> RobotTurn:
        """One robot turn: synthesises and queues each sentence, waits until heard, records it.

        `interruptible=False` protects the turn (caller speech never cancels it); with
        `ends_call` too it is final: no fallback phrase if the TTS fails, and a bounded wait for
        the caller to hear it, so the call ends on time.
        """
        turn = turn or RobotTurn(self.transcript.next_idx())
        turn.interruptible = interruptible and self.config.barge_in.enabled
        final = not interruptible and ends_call is not None
        unprotect = self._protect_current_speaker(protect=not interruptible, final=final)
        self.turn = turn
        try:
            try:
                if audio is not None:
                    self.audio.queue(turn, audio.data, " ".join(sentences) or None)  # type: ignore[arg-type]
                else:
                    await speak_sentences(self, turn, sentences)
            except (asyncio.CancelledError, CallEnded):
                raise
            except Exception as exc:
                await fall_back(
                    self.audio,
                    self.call,
                    turn,
                    exc,
                    self.config.fallback_text if not final else None,
                )
            await self.audio.wait_heard(bounded=final)
        except BaseException:  # cancelled, or the caller left before hearing it all: cut short
            if turn.interrupted_at_ms is None and turn.first_audio_at is not None:
                turn.interrupted_at_ms = self.channel.heard_ms()
            raise
        finally:
            self._record_robot_turn(turn)
            unprotect()
        if turn.transfer_to is not None:  # the LLM's words announced it, unless there were none
            await self.transfer(turn.transfer_to, by="llm", announce=not turn.text)
        if turn.ends_call or ends_call:
            raise CallEnded(ends_call or "robot_goodbye")
        return turn

    def _record_robot_turn(self, turn: RobotTurn) -> None:
        """Records a robot turn however it ended (a mode may change what enters the dialog)."""
        self.transcript.record_robot_turn(turn)

    def _protect_current_speaker(self, *, protect: bool, final: bool) -> Callable[[], None]:
        """Marks the running speaker protected (and final) for one turn; returns the undo."""
        task = asyncio.current_task()
        if not protect or task is None or task is not self.speaker:
            return lambda: None
        was_protected, was_final = self._protected is task, self._final is task
        self._protected = task
        if final:
            self._final = task

        def unprotect() -> None:
            if self._protected is task and not was_protected:
                self._protected = None
            if self._final is task and not was_final:
                self._final = None

        return unprotect

    async def barge_in(
        self,
        speech_started: float | None = None,
        *,
        force: bool = False,
        heard_ms: float | None = None,
    ) -> None:
        """The caller interrupts: stop the speaker, flush what is queued and buffered.

        A final goodbye is left alone unless `force` (the robot's own decision, e.g. max duration).
        `heard_ms`: where the caller stopped hearing the turn, when it was paused before.
        """
        turn, speaker = self.turn, self.speaker
        if turn is None or speaker is None:
            return
        if speaker is self._final and not force:
            self.call.event("speech_ignored", reason="the robot is saying goodbye")
            return
        turn.interrupted_at_ms = self.channel.heard_ms() if heard_ms is None else heard_ms
        speaker.cancel()  # before clear(): no more audio may be queued after the flush
        if not self.audio.paused:  # a paused turn's audio is flushed already
            await self.channel.clear()
        self.call.event(
            "barge_in",
            turn=turn.idx,
            heard_ms=round(turn.interrupted_at_ms),
            talk_over_ms=None
            if speech_started is None
            else round((self.clock() - speech_started) * 1000),
        )
        # Not `await speaker` under suppress(CancelledError), which also swallowed a cancel of this
        # task: wait() returns when the speaker is done and raises only if this task is cancelled.
        await asyncio.wait({speaker})

    async def speak_fallback(self, error: Exception) -> None:
        """A failure before the robot turn began (e.g. ASR): a robot turn with just the fallback."""
        turn = RobotTurn(self.transcript.next_idx(), error=f"{type(error).__name__}: {error}")
        log.warning("call %s turn %d: %s", self.call.record.call_id, turn.idx, turn.error)
        self.call.event("error", turn=turn.idx, detail=turn.error)
        await self.speak([self.config.fallback_text], turn=turn)

    # -- the caller's keys (dtmf.py) and transfers (transfer.py) --------------------------------
    def listen_to_keys(self) -> None:
        """A mode calls it once its greeting has begun: keys pressed before that act now."""
        self.keys = CallerKeys(self, self.key_actions(), spawn=self._spawn, clock=self.clock)
        self.channel.on_dtmf(self.keys.on_dtmf)
        self._spawn(self.keys.run())

    def key_actions(self) -> KeyActions:
        return SpeakerKeyActions(self)

    async def transfer(self, target: str, *, by: str, announce: bool = True) -> None:
        """In the speaker: protected from caller speech until the peer has answered."""
        unprotect = self._protect_current_speaker(protect=True, final=False)
        try:
            await hand_over(self, target, by=by, announce=announce)
        finally:
            unprotect()

    async def say(self, text: str, *, protected: bool) -> None:
        await self.speak([text], interruptible=not protected)

    # -- timers ------------------------------------------------------------------------------
    async def _max_duration(self) -> None:
        await max_duration_goodbye(self)
