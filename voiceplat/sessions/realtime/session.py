"""Realtime mode: full duplex through a speech-to-speech service speaking the OpenAI Realtime protocol.

Caller audio goes up as it arrives (resampled to the service's rate); the service's VAD decides the
turns; robot audio comes down as deltas, is resampled to 8 kHz and played through the CallChannel
with the usual pacing. Barge-in: `speech_started` while the robot talks → killAudio and the queued
audio dropped (Session.barge_in), `response.cancel`, and `conversation.item.truncate` at the audio
the caller actually heard (from the playout model), so the model remembers only what was heard.

Decisions (README, "Realtime mode"):
- Greeting: `greeting.wav` is played locally (its `greeting_text`, if any, goes into the
  conversation as text); otherwise `greeting_text` is spoken by the model itself (response.create,
  verbatim), so the whole call has one voice.
- Scripted phrases (reprompt, no-input goodbye, max duration) are spoken by the model while it is
  connected, by the tts (if configured) when it is not.
- The session ends or drops (Yandex sessions last 5–10 min): reconnect and replay the conversation
  as text items; an answer lost with the link is asked for again, caller speech lost with it gets
  `fallback_text`. `renew_after_s` opens a fresh session at a quiet moment before the old one
  expires. When the service cannot go on: `max_call_text` (after an expiry) or the provider's
  `unavailable_text`, through the tts if configured, then hang up (`realtime_expired`,
  `realtime_unavailable`).
- `error` events are recorded and the call goes on; a failed response that the caller heard
  nothing of gets `fallback_text` through the tts, if configured.
- The caller's keys (sessions/dtmf.py, keys.py): keys without an action are a user text item the
  model answers; "repeat" and a transfer's phrases are said by the model. The LLM's transfer
  marker is not read here (nor `end_call_marker`): a realtime answer is audio first.

The session owns its parts and tells each what happened: `RealtimeLink` (link.py: the connection,
reconnects, renewal), `CallerUplink` (uplink.py: caller audio up), `Replies` (replies.py: the
model's responses played, barge-in, scripted phrases), `CallerTurns` (caller_turns.py: caller
turns until their transcript) and the shared `NoInputTimer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import NoReturn

from voiceplat.providers.base import ProviderError
from voiceplat.providers.realtime import protocol
from voiceplat.providers.realtime.connection import ProtocolRealtime, RealtimeClosed
from voiceplat.providers.realtime.server_events import (
    AudioDelta,
    AudioDone,
    InputSpeechStarted,
    InputSpeechStopped,
    ResponseCreated,
    ResponseDone,
    RobotTextDelta,
    RobotTextDone,
    ServerError,
    ServerEvent,
    SessionInfo,
    UserTranscript,
    UserTranscriptFailed,
)
from voiceplat.sessions.base import CallEnded, Session
from voiceplat.sessions.dtmf import KeyActions
from voiceplat.sessions.no_input import NoInputTimer
from voiceplat.sessions.realtime.caller_turns import CallerTurns
from voiceplat.sessions.realtime.keys import RealtimeKeyActions
from voiceplat.sessions.realtime.link import RealtimeLink, ServiceGone
from voiceplat.sessions.realtime.replies import Replies
from voiceplat.sessions.realtime.uplink import CallerUplink
from voiceplat.sessions.turn import RobotTurn
from voiceplat.sessions.turn_audio import HEARD_TIMEOUT_S
from voiceplat.storage.records import CallStatus

log = logging.getLogger(__name__)

BENIGN_ERRORS = {"response_cancel_not_active"}
"""Errors that only say a race was lost (the server had already stopped the response)."""


class RealtimeSession(Session):
    """The call: its tasks, the service's events dispatched to the parts, caller speech, errors,
    recovery when the service's session closes, and the timers."""

    mode = "realtime"
    HANGUP_REASONS = Session.HANGUP_REASONS | {"realtime_expired", "realtime_unavailable"}
    """The service is gone: the robot ends the call (the peer is told to hang up)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rt: ProtocolRealtime = self.robot.realtime  # type: ignore[assignment]
        self.reprompts = 0
        self.closing = False
        """The robot is ending the call (goodbye, or the service is gone)."""
        self.uplink = CallerUplink(self.rt.input_format, self.clock)
        # Made in main(): they write into the call's record, which opens when the call starts.
        self.link: RealtimeLink
        self.replies: Replies
        self.callers: CallerTurns

    @property
    def has_tts(self) -> bool:
        return "tts" in self.robot.providers

    # -- what the parts use of the session (Replies' `Voice`) ---------------------------------
    def queue_audio(self, turn: RobotTurn, data: bytes) -> None:
        self.audio.queue(turn, data, None)

    def record_robot_turn(self, turn: RobotTurn) -> None:
        self._record_robot_turn(turn)

    # -- the call ----------------------------------------------------------------------------
    async def main(self) -> None:
        session_update = self.rt.session(self.robot.prompt, interrupt=self.config.barge_in.enabled)
        self.link = RealtimeLink(
            self.rt,
            self.call,
            self.uplink,
            session_update=session_update,
            spawn=self._tasks.create_task,
            clock=self.clock,
        )
        self.replies = Replies(self, self.link, prompt=self.robot.prompt)
        self.callers = CallerTurns(
            self.call,
            next_idx=self.transcript.next_idx,
            clock=self.clock,
            wall=self.transcript.wall,
        )
        # The uplink runs first: it also reads the mark replies that tell when audio was heard.
        self._tasks.create_task(self._uplink())
        try:
            await self.link.open(first=True)
        except ProviderError as exc:
            await self._cannot_go_on(str(exc), expired=False)
        self._tasks.create_task(self._no_input_timer().run())
        if self.rt.settings.renew_after_s:
            self._tasks.create_task(self.link.renew(self.rt.settings.renew_after_s, self._quiet))
        await self.greet()
        self.listen_to_keys()
        try:
            while True:
                try:
                    await self._pump()
                except RealtimeClosed as closed:
                    await self._recover(closed)
        finally:
            await self.link.aclose()

    async def greet(self) -> None:
        audio, text = self.robot.greeting_audio, self.config.greeting_text
        interruptible = self.config.greeting_interruptible
        if audio is not None:
            self.start_speaker(
                lambda: self.speak(
                    [text or "(greeting.wav)"], audio=audio, interruptible=interruptible
                )
            )
            if text:
                self.link.send(protocol.message_item("assistant", text))
        elif text:
            self._say(text, interruptible=interruptible)

    async def _uplink(self) -> None:
        while True:
            audio = await self.channel.audio()
            self.uplink.send(audio.data, self.link.connection)

    async def _pump(self) -> None:
        while True:
            try:
                event = await self.link.recv()
            except protocol.RealtimeProtocolError as exc:
                self.call.event("error", source="realtime", detail=str(exc))
                continue
            await self._handle(event)

    async def _handle(self, event: ServerEvent) -> None:
        replies = self.replies
        match event:
            case AudioDelta():
                replies.audio(event)
            case InputSpeechStarted():
                await self._on_speech_started(event)
            case InputSpeechStopped():
                self._on_speech_stopped(event)
            case ResponseCreated():
                replies.created(event.response_id)
            case AudioDone():
                replies.audio_done(event.response_id)
            case RobotTextDelta():
                replies.text(event.response_id, event.delta, event.source, done=False)
            case RobotTextDone():
                replies.text(event.response_id, event.text, event.source, done=True)
            case ResponseDone():
                replies.done(event)
            case UserTranscript():
                self.callers.transcribed(event.item_id, event.text, None)
            case UserTranscriptFailed():
                message = f"transcription failed: {event.message}"
                self.callers.transcribed(event.item_id, "", message)
            case ServerError():
                self._on_error(event)
            case SessionInfo():
                self.link.on_session(event)

    # -- caller speech -----------------------------------------------------------------------
    async def _on_speech_started(self, event: InputSpeechStarted) -> None:
        now = self.clock()
        started = self.uplink.timeline.clock_at(event.audio_start_ms, now)
        self.last_activity = now
        self.reprompts = 0
        self.call.event("speech_start")
        self.callers.started(event.item_id, started)
        if not self.closing:
            await self.replies.interrupt(started)

    def _on_speech_stopped(self, event: InputSpeechStopped) -> None:
        now = self.clock()
        ended = self.uplink.timeline.clock_at(event.audio_end_ms, now)
        self.last_activity = now
        self.replies.caller_stopped(ended)
        self.callers.stopped(event.item_id, ended, now)

    # -- errors and the service's sessions ---------------------------------------------------
    def _on_error(self, error: ServerError) -> None:
        caused_by = self.link.caused_by(error.event_id)
        if error.code in BENIGN_ERRORS:
            self.call.event("realtime_notice", code=error.code, detail=error.message)
            return
        if error.expired:
            self.link.mark_expired()
        self.call.event(
            "error",
            source="realtime",
            type=error.type,
            code=error.code,
            detail=error.message,
            client_event=caused_by,
        )

    async def _recover(self, closed: RealtimeClosed) -> None:
        """The session closed: reconnect with the conversation replayed, or end the call."""
        expired, renewing = self.link.closed(closed)
        lost_answer = self.replies.drop_live()
        lost_speech = self.callers.drop("the realtime session closed before the transcript")
        self.replies.drop_scripted()
        try:
            await self.link.reopen(closed.detail, expired=expired, renewing=renewing)
        except ServiceGone as gone:
            await self._cannot_go_on(gone.detail, gone.expired)
        self._replay()
        if lost_speech and not self.closing:
            self._say(self.config.fallback_text, interruptible=True)
        elif (lost_answer or self._unanswered()) and not self.closing:
            self.link.send(protocol.response_create())

    def _conversation(self) -> list[tuple[str, str]]:
        """(role, text) so far in turn order: recorded turns, and replies still playing."""
        said: dict[int, tuple[str, str]] = {
            t.idx: ("user" if t.role == "user" else "assistant", t.heard_text or t.text)
            for t in self.call.turns
        }
        for idx, text in self.replies.spoken():
            said.setdefault(idx, ("assistant", text))
        return [(role, text.strip()) for _, (role, text) in sorted(said.items()) if text.strip()]

    def _replay(self) -> None:
        """The conversation so far, as text items: the new session continues where the old ended."""
        items = self._conversation()
        keep = self.config.history_turns
        for role, text in items[-keep:] if keep else []:
            self.link.send(protocol.message_item(role, text))  # type: ignore[arg-type]
        self.call.event("realtime_replayed", items=min(len(items), keep))
        self.uplink.flush(self.link.connection)

    def _unanswered(self) -> bool:
        items = self._conversation()
        return bool(items) and items[-1][0] == "user"

    def _quiet(self) -> bool:
        """Nobody is speaking and nothing is about to be said: a moment to renew the session."""
        busy = self.callers.speaking or self.replies.scripted_pending or self.closing
        return self.speaker is None and not busy

    async def _cannot_go_on(self, detail: str, expired: bool) -> NoReturn:
        """The service is gone for good: say so (tts) if we can, then hang up."""
        self.closing = True
        reason = "realtime_expired" if expired else "realtime_unavailable"
        self.call.event(reason, detail=detail)
        text = self.config.max_call_text if expired else self.rt.settings.unavailable_text
        if self.has_tts:
            await self.speak([text], interruptible=False)
        raise CallEnded(reason)  # _finish hangs up

    # -- the caller's keys (keys.py) and transfers ---------------------------------------------
    def key_actions(self) -> KeyActions:
        return RealtimeKeyActions(self)

    def saying_goodbye(self) -> bool:
        """The robot is ending the call or handing it over: keys go only into the record."""
        return self.closing or super().saying_goodbye()

    async def transfer(self, target: str, *, by: str, announce: bool = True) -> None:
        self.closing = True  # what the caller says meanwhile gets no answer
        try:
            await super().transfer(target, by=by, announce=announce)
        finally:
            self.closing = False

    # -- scripted phrases and timers ---------------------------------------------------------
    def _say(self, text: str, *, interruptible: bool) -> asyncio.Event:
        """Says `text` (the model, or the tts while it is not connected); set once heard."""
        self.last_activity = self.clock()
        return self.replies.say(text, interruptible=interruptible)

    async def say(self, text: str, *, protected: bool) -> None:
        """Says `text` and waits until the caller has heard it (HEARD_TIMEOUT_S at most)."""
        done = self._say(text, interruptible=not protected)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HEARD_TIMEOUT_S):
                await done.wait()

    def say_soon(self, text: str) -> None:
        self._say(text, interruptible=True)

    async def _goodbye(self, text: str, reason: str) -> NoReturn:
        self.closing = True
        await self.say(text, protected=True)
        raise CallEnded(reason)

    async def _max_duration(self) -> None:
        await asyncio.sleep(self.config.max_call_s)
        self.call.event("max_duration")
        await self.replies.interrupt(None, force=True)
        await self._goodbye(self.config.max_call_text, "max_duration")

    def _no_input_timer(self) -> NoInputTimer:
        settings = self.config.no_input

        async def reprompt() -> None:
            self._say(settings.reprompt_text, interruptible=True)

        def paused() -> bool:
            # A phrase asked of the model counts as speech from the moment it is asked.
            return self.callers.speaking or self.replies.scripted_pending or self.closing

        return NoInputTimer(
            self,
            settings,
            clock=self.clock,
            paused=paused,
            reprompt=reprompt,
            goodbye=lambda: self._goodbye(settings.goodbye_text, "no_input"),
            record=self.call.event,
            poll_s=0.1,
        )

    async def _finish(self, status: CallStatus, reason: str, detail: str | None) -> str:
        if hasattr(self, "callers"):
            self.callers.drop("the call ended before the transcript")
        if reason == "realtime_unavailable":
            status = "failed"  # the caller was not served: analysts count it with the errors
        return await super()._finish(status, reason, detail)
