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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from voiceplat.providers.base import ProviderError
from voiceplat.providers.realtime import protocol
from voiceplat.providers.realtime.connection import RealtimeClosed
from voiceplat.providers.realtime.protocol import (
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
from voiceplat.sessions.base import HEARD_TIMEOUT_S, CallEnded
from voiceplat.sessions.realtime_link import RealtimeLinkSession

log = logging.getLogger(__name__)

BENIGN_ERRORS = {"response_cancel_not_active"}
"""Errors that only say a race was lost (the server had already stopped the response)."""


class RealtimeSession(RealtimeLinkSession):
    """The call: its tasks, the service's events dispatched, caller turns, errors and timers.

    Layers: `RealtimeReplySession` (realtime_replies.py: the robot's replies, barge-in, scripted
    phrases) ← `RealtimeLinkSession` (realtime_link.py: the connection, caller audio up,
    reconnect and renewal) ← this class.
    """

    mode = "realtime"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reprompts = 0

    # -- the call ----------------------------------------------------------------------------
    async def main(self) -> None:
        # The uplink runs first: it also reads the mark replies that tell when audio was heard.
        self._tasks.create_task(self._uplink())
        try:
            await self._open(first=True)
        except ProviderError as exc:
            await self._cannot_go_on(str(exc), expired=False)
        self._tasks.create_task(self._no_input_timer())
        if self.rt.settings.renew_after_s:
            self._tasks.create_task(self._renewer(self.rt.settings.renew_after_s))
        await self.greet()
        try:
            while True:
                try:
                    await self._pump()
                except RealtimeClosed as closed:
                    await self._recover(closed)
        finally:
            if self.link is not None:
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
                self._send(protocol.message_item("assistant", text))
        elif text:
            self._say(text, interruptible=interruptible)

    async def _pump(self) -> None:
        assert self.link is not None
        while True:
            try:
                event = await self.link.recv()
            except protocol.RealtimeProtocolError as exc:
                self.call.event("error", source="realtime", detail=str(exc))
                continue
            await self._handle(event)

    async def _handle(self, event: ServerEvent) -> None:
        match event:
            case AudioDelta():
                self._on_audio(event)
            case InputSpeechStarted():
                await self._on_speech_started(event)
            case InputSpeechStopped():
                self._on_speech_stopped(event)
            case ResponseCreated():
                self._on_response_created(event.response_id)
            case AudioDone():
                reply = self._reply_for(event.response_id)
                if reply is not None:
                    self._flush_resampler(reply)
            case RobotTextDelta():
                self._on_text(event.response_id, event.delta, event.source, done=False)
            case RobotTextDone():
                self._on_text(event.response_id, event.text, event.source, done=True)
            case ResponseDone():
                self._on_response_done(event)
            case UserTranscript():
                self.callers.transcribed(event.item_id, event.text, None)
            case UserTranscriptFailed():
                message = f"transcription failed: {event.message}"
                self.callers.transcribed(event.item_id, "", message)
            case ServerError():
                self._on_error(event)
            case SessionInfo():
                self._on_session(event)

    # -- caller turns ------------------------------------------------------------------------
    async def _on_speech_started(self, event: InputSpeechStarted) -> None:
        now = self.clock()
        started = self.uplink.timeline.clock_at(event.audio_start_ms, now)
        self._in_speech = True
        self.last_activity = now
        self.reprompts = 0
        self.call.event("speech_start")
        self.callers.started(event.item_id, started)
        if not self._closing:
            await self._interrupt(started)

    def _on_speech_stopped(self, event: InputSpeechStopped) -> None:
        now = self.clock()
        ended = self.uplink.timeline.clock_at(event.audio_end_ms, now)
        self._in_speech = False
        self.last_activity = now
        self._speech_ended = ended
        self.callers.stopped(event.item_id, ended, now)

    # -- errors ------------------------------------------------------------------------------
    def _on_error(self, error: ServerError) -> None:
        caused_by = self.link.caused_by(error.event_id) if self.link is not None else None
        if error.code in BENIGN_ERRORS:
            self.call.event("realtime_notice", code=error.code, detail=error.message)
            return
        if error.expired:
            self._expired = True
        self.call.event(
            "error",
            source="realtime",
            type=error.type,
            code=error.code,
            detail=error.message,
            client_event=caused_by,
        )

    # -- timers ------------------------------------------------------------------------------
    async def _goodbye(self, text: str, reason: str) -> None:
        self._closing = True
        done = self._say(text, interruptible=False)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HEARD_TIMEOUT_S):
                await done.wait()
        raise CallEnded(reason)

    async def _max_duration(self) -> None:
        await asyncio.sleep(self.config.max_call_s)
        self.call.event("max_duration")
        await self._interrupt(None, force=True)
        await self._goodbye(self.config.max_call_text, "max_duration")

    async def _no_input_timer(self) -> None:
        settings = self.config.no_input
        while True:
            await self.idle.wait()
            deadline = self.last_activity + settings.reprompt_after_s
            now = self.clock()
            if now < deadline or self._in_speech or self._scripted or self._closing:
                await asyncio.sleep(max(deadline - now, 0.1))
                continue
            self.reprompts += 1
            self.call.event("no_input", count=self.reprompts)
            if self.reprompts > settings.max_reprompts:
                await self._goodbye(settings.goodbye_text, "no_input")
            self._say(settings.reprompt_text, interruptible=True)

    async def _finish(self, status: str, reason: str, detail: str | None) -> str:
        if hasattr(self, "call"):
            self._drop_pending_users("the call ended before the transcript")
        if reason in ("realtime_expired", "realtime_unavailable"):
            await self.channel.disconnect()  # the robot ends the call: FreeSWITCH hangs up
        if reason == "realtime_unavailable":
            status = "failed"  # the caller was not served: analysts count it with the errors
        return await super()._finish(status, reason, detail)
