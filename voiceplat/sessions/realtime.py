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
from collections import deque
from dataclasses import dataclass, field

from voiceplat.audio.pcm import CALL_RATE
from voiceplat.audio.resample import StreamResampler
from voiceplat.providers.base import ProviderError
from voiceplat.providers.realtime import protocol
from voiceplat.providers.realtime.connection import (
    ProtocolRealtime,
    RealtimeClosed,
    RealtimeConnection,
)
from voiceplat.providers.realtime.protocol import (
    AudioDelta,
    AudioDone,
    AudioFormat,
    InputTimeline,
    ItemAudio,
    ResponseCreated,
    ResponseDone,
    RobotTextDelta,
    RobotTextDone,
    ServerError,
    ServerEvent,
    SessionInfo,
    SpeechStarted,
    SpeechStopped,
    UserTranscript,
    UserTranscriptFailed,
)
from voiceplat.sessions.base import HEARD_TIMEOUT_S, CallEnded, Session
from voiceplat.sessions.turn import RobotTurn, SpokenSentence
from voiceplat.storage.records import TurnRecord

log = logging.getLogger(__name__)

BACKLOG_MS = 3000.0
"""Caller audio kept while the service is reconnecting, sent when it is back."""
BENIGN_ERRORS = {"response_cancel_not_active"}
"""Errors that only say a race was lost (the server had already stopped the response)."""


@dataclass(slots=True)
class Scripted:
    """A phrase the robot must say (greeting, reprompt, goodbye), and when it has been heard."""

    text: str
    interruptible: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class RealtimeTurn(RobotTurn):
    """A robot turn whose words arrive as transcript deltas alongside the audio.

    Each delta is pinned to the stream position of the audio queued when it arrived, so the text
    the caller heard before a barge-in is the deltas up to the heard position, not a guess by
    proportion (a proportion of a two-word partial transcript is nothing).
    """

    spoken: str = ""
    pieces: list[tuple[float, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.spoken.strip()

    def heard_text(self) -> str:
        if self.interrupted_at_ms is None:
            return self.text
        if not self.pieces:
            return super().heard_text()
        heard = [piece for position, piece in self.pieces if position <= self.interrupted_at_ms]
        text = "".join(heard).strip()
        return text + "…" if text and len(heard) < len(self.pieces) else text


@dataclass(slots=True)
class Reply:
    """One model response as the call plays it."""

    response_id: str | None
    scripted: Scripted | None = None
    speech_ended: float | None = None
    """Session clock time the caller stopped speaking, for v2v (None for scripted replies)."""
    turn: RealtimeTurn | None = None
    """Created at the first audio, so a response cut before it spoke leaves no turn."""
    item: ItemAudio | None = None
    resampler: StreamResampler | None = None
    start_ms: float | None = None
    end_ms: float = 0.0
    text: str = ""
    pieces: list[tuple[float, str]] = field(default_factory=list)
    """Transcript deltas, each with the stream position of the audio queued when it came."""
    text_source: str | None = None
    active: bool = True
    """The server is still generating it (no response.done yet)."""
    cancelled: bool = False
    """Barge-in, or its speaker ended: further audio is dropped."""
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class PendingUser:
    idx: int
    started: float
    ended: float | None = None
    stopped_at: float | None = None


class RealtimeSession(Session):
    mode = "realtime"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rt: ProtocolRealtime = self.robot.realtime  # type: ignore[assignment]
        self.link: RealtimeConnection | None = None
        self.in_format: AudioFormat = self.rt.input_format
        self.out_format: AudioFormat = self.rt.output_format
        self._up = StreamResampler(CALL_RATE, self.in_format.rate)
        self._backlog: deque[bytes] = deque()
        self._backlog_ms = 0.0
        self._timeline = InputTimeline()
        self._replies: dict[str, Reply] = {}
        self._latest: Reply | None = None
        self._scripted: deque[Scripted] = deque()
        self._users: dict[str, PendingUser] = {}
        self._speech_ended: float | None = None
        self._in_speech = False
        self._closing = False
        self._renewing = False
        self._expired = False
        self._reconnects = 0
        self.reprompts = 0

    @property
    def has_tts(self) -> bool:
        return "tts" in self.robot.providers

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
            case SpeechStarted():
                await self._on_speech_started(event)
            case SpeechStopped():
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
                self._on_user_text(event.item_id, event.text, None)
            case UserTranscriptFailed():
                self._on_user_text(event.item_id, "", f"transcription failed: {event.message}")
            case ServerError():
                self._on_error(event)
            case SessionInfo():
                self._on_session(event)

    # -- the connection ----------------------------------------------------------------------
    def _send(self, event: dict) -> None:
        if self.link is not None and not self.link.closed:
            self.link.send(event)

    async def _open(self, *, first: bool) -> None:
        link, info = await self.rt.connect()
        self.link = link
        self._timeline.reset()
        self._tasks.create_task(link.run_writer())
        self.call.event("realtime_connected", session_id=info.session_id, reconnect=not first)
        self._on_session(info)
        link.send(self.rt.session(self.robot.prompt, interrupt=self.config.barge_in.enabled))
        if first:
            self._flush_backlog()  # the caller may have spoken while we connected

    def _on_session(self, info: SessionInfo) -> None:
        """The formats the service uses. session.updated is the answer to our session.update;
        session.created only says its defaults, so caller audio keeps the format we asked for."""
        if info.output_format is not None:
            self.out_format = info.output_format
        if info.updated and info.input_format is not None and info.input_format != self.in_format:
            self.in_format = info.input_format
            self._up = StreamResampler(CALL_RATE, self.in_format.rate)
        if info.session_id or info.output_format:
            self.call.event(
                "realtime_session",
                updated=info.updated,
                input=self.in_format.to_json(),
                output=self.out_format.to_json(),
            )

    async def _recover(self, closed: RealtimeClosed) -> None:
        """The session closed: reconnect with the conversation replayed, or end the call."""
        expired, renewing = closed.expired or self._expired, self._renewing
        self._expired = self._renewing = False
        self.link = None
        self.call.event("realtime_closed", detail=closed.detail, expired=expired, renew=renewing)
        lost_answer = self._drop_live_replies()
        lost_speech = self._drop_pending_users("the realtime session closed before the transcript")
        for scripted in self._scripted:
            scripted.done.set()
        self._scripted.clear()
        if not renewing:
            if not self.rt.settings.reconnect:
                await self._cannot_go_on(closed.detail, expired=expired)
        while True:
            if not renewing:
                self._reconnects += 1
                if self._reconnects > self.rt.settings.max_reconnects:
                    await self._cannot_go_on(f"{closed.detail}; reconnects used up", expired)
            try:
                await self._open(first=False)
                break
            except ProviderError as exc:
                self.call.event("error", source="realtime", detail=f"reconnect: {exc}")
                renewing = False
                await asyncio.sleep(min(2.0, 0.25 * self._reconnects))
        self._replay()
        if lost_speech and not self._closing:
            self._say(self.config.fallback_text, interruptible=True)
        elif (lost_answer or self._unanswered()) and not self._closing:
            self._send(protocol.response_create())

    def _conversation(self) -> list[tuple[str, str]]:
        """(role, text) so far in turn order: recorded turns, and replies still playing."""
        said: dict[int, tuple[str, str]] = {
            t.idx: ("user" if t.role == "user" else "assistant", t.heard_text or t.text)
            for t in self.call.turns
        }
        for reply in self._replies.values():
            if reply.turn is not None and reply.turn.idx not in said:
                said[reply.turn.idx] = ("assistant", reply.text)
        return [(role, text.strip()) for _, (role, text) in sorted(said.items()) if text.strip()]

    def _replay(self) -> None:
        """The conversation so far, as text items: the new session continues where the old ended."""
        items = self._conversation()
        keep = self.config.history_turns
        for role, text in items[-keep:] if keep else []:
            self._send(protocol.message_item(role, text))  # type: ignore[arg-type]
        self.call.event("realtime_replayed", items=min(len(items), keep))
        self._flush_backlog()

    def _unanswered(self) -> bool:
        items = self._conversation()
        return bool(items) and items[-1][0] == "user"

    async def _renewer(self, after_s: float) -> None:
        """Opens a fresh session at a quiet moment before the service's session expires."""
        while True:
            link = self.link
            if link is None or link.closed:
                await asyncio.sleep(0.1)
                continue
            wait = link.opened_at + after_s - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if self.speaker is None and not (self._in_speech or self._scripted or self._closing):
                self._renewing = True
                self.call.event("realtime_renew", age_s=round(self.clock() - link.opened_at, 1))
                await link.aclose()  # the pump sees it closed and reconnects
            else:
                await asyncio.sleep(0.2)

    async def _cannot_go_on(self, detail: str, expired: bool) -> None:
        """The service is gone for good: say so (tts) if we can, then hang up."""
        self._closing = True
        reason = "realtime_expired" if expired else "realtime_unavailable"
        self.call.event(reason, detail=detail)
        text = self.config.max_call_text if expired else self.rt.settings.unavailable_text
        if self.has_tts:
            await self.speak([text], interruptible=False)
        raise CallEnded(reason)  # _finish hangs up

    # -- caller audio ------------------------------------------------------------------------
    async def _uplink(self) -> None:
        while True:
            audio = await self.channel.audio()
            self._send_caller_audio(audio.data)

    def _send_caller_audio(self, pcm8k: bytes) -> None:
        fmt = self.in_format
        wire = fmt.encode(pcm8k if fmt.rate == CALL_RATE else self._up.process(pcm8k))
        if not wire:
            return
        if self.link is None or self.link.closed:
            self._backlog.append(wire)
            self._backlog_ms += fmt.wire_ms(len(wire))
            while self._backlog_ms > BACKLOG_MS:
                self._backlog_ms -= fmt.wire_ms(len(self._backlog.popleft()))
            return
        self.link.send(protocol.input_audio_append(wire))
        self._timeline.on_sent(fmt.wire_ms(len(wire)), self.clock())

    def _flush_backlog(self) -> None:
        backlog, self._backlog, self._backlog_ms = self._backlog, deque(), 0.0
        if self.link is None:
            return
        for wire in backlog:
            self.link.send(protocol.input_audio_append(wire))
            self._timeline.on_sent(self.in_format.wire_ms(len(wire)), self.clock())

    # -- caller turns ------------------------------------------------------------------------
    async def _on_speech_started(self, event: SpeechStarted) -> None:
        now = self.clock()
        started = self._timeline.clock_at(event.audio_start_ms, now)
        self._in_speech = True
        self.last_activity = now
        self.reprompts = 0
        self.call.event("speech_start")
        key = event.item_id or f"pending-{len(self._users)}"
        if key not in self._users:
            self._users[key] = PendingUser(self.next_idx(), started)
        if not self._closing:
            await self._interrupt(started)

    def _on_speech_stopped(self, event: SpeechStopped) -> None:
        now = self.clock()
        ended = self._timeline.clock_at(event.audio_end_ms, now)
        self._in_speech = False
        self.last_activity = now
        self._speech_ended = ended
        pending = self._users.get(event.item_id or "")
        if pending is not None:
            pending.ended, pending.stopped_at = ended, now
            self.call.event("speech_end", ms=round((ended - pending.started) * 1000))
        else:
            self.call.event("speech_end")

    def _on_user_text(self, item_id: str | None, text: str, error: str | None) -> None:
        pending = self._users.pop(item_id or "", None)
        now = self.clock()
        if pending is None:  # no speech_started seen for it (e.g. just after a reconnect)
            pending = PendingUser(self.next_idx(), now, now)
        asr_ms = None if pending.stopped_at is None else (now - pending.stopped_at) * 1000
        self.call.event("asr_done", text=text, ms=None if asr_ms is None else round(asr_ms))
        self._write_user_turn(pending, text, asr_ms, error)

    def _write_user_turn(
        self, pending: PendingUser, text: str, asr_ms: float | None, error: str | None
    ) -> None:
        self.call.add_turn(
            TurnRecord(
                call_id=self.call.record.call_id,
                idx=pending.idx,
                role="user",
                text=text,
                started_at=self.wall(pending.started),
                ended_at=self.wall(pending.ended if pending.ended is not None else self.clock()),
                asr_ms=asr_ms,
                error=error,
            )
        )

    def _drop_pending_users(self, error: str) -> bool:
        """Caller turns whose transcript will never come: recorded without text.

        True if the caller finished one of them: those words are lost. (Speech still going on is
        in the backlog, which the next session hears.)"""
        lost = any(pending.ended is not None for pending in self._users.values())
        for pending in self._users.values():
            self._write_user_turn(pending, "", None, error)
        self._users.clear()
        self._in_speech = False
        return lost

    # -- robot turns -------------------------------------------------------------------------
    def _on_response_created(self, response_id: str | None) -> Reply:
        scripted = self._scripted.popleft() if self._scripted else None
        reply = Reply(response_id, scripted, None if scripted else self._speech_ended)
        if scripted is None:
            self._speech_ended = None
        self._replies[response_id or f"anon-{len(self._replies)}"] = reply
        self._latest = reply
        if self._closing and scripted is None:
            # Calling it a day: answers to anything said now are not played.
            reply.cancelled = True
            self._send(protocol.response_cancel(response_id))
            return reply
        self.start_speaker(lambda: self._play(reply))
        reply.task = self.speaker
        return reply

    def _reply_for(self, response_id: str | None) -> Reply | None:
        if response_id is None:
            return self._latest
        reply = self._replies.get(response_id)
        if reply is None:  # a server that skipped response.created
            reply = self._on_response_created(response_id)
        return reply

    def _on_audio(self, event: AudioDelta) -> None:
        reply = self._reply_for(event.response_id)
        if reply is None or reply.cancelled:
            return
        fmt = self.out_format
        if reply.item is None or (event.item_id and reply.item.item_id != event.item_id):
            self._flush_resampler(reply)
            reply.item = ItemAudio(event.item_id or "", event.content_index)
            reply.resampler = StreamResampler(fmt.rate, CALL_RATE)
        reply.item.received_ms += fmt.wire_ms(len(event.audio))
        assert reply.resampler is not None
        self._queue_reply_audio(reply, reply.resampler.process(fmt.decode(event.audio)))

    def _flush_resampler(self, reply: Reply) -> None:
        if reply.resampler is not None:
            resampler, reply.resampler = reply.resampler, None
            if not reply.cancelled:
                self._queue_reply_audio(reply, resampler.flush())

    def _queue_reply_audio(self, reply: Reply, data: bytes) -> None:
        if not data:
            return
        if reply.turn is None:
            interruptible = reply.scripted.interruptible if reply.scripted else True
            reply.turn = RealtimeTurn(self.next_idx(), user_speech_ended=reply.speech_ended)
            reply.turn.interruptible = interruptible and self.config.barge_in.enabled
            reply.start_ms = self.channel.queued_ms
        if reply.task is not None and reply.task is self.speaker:
            self.turn = reply.turn
        if reply.item is not None and reply.item.start_ms is None:
            reply.item.start_ms = self.channel.queued_ms
        self._queue_audio(reply.turn, data, None)
        reply.end_ms = self.channel.queued_ms

    def _on_text(self, response_id: str | None, text: str, source: str, *, done: bool) -> None:
        reply = self._reply_for(response_id)
        if reply is None:
            return
        if reply.text_source is None:
            reply.text_source = source
        if source != reply.text_source:
            return  # a server that sends both the transcript and the text: keep one
        if done:
            reply.text = text or reply.text
        else:
            reply.text += text
            reply.pieces.append((self.channel.queued_ms, text))

    def _on_response_done(self, event: ResponseDone) -> None:
        reply = self._reply_for(event.response_id)
        if reply is None:
            return
        reply.active = False
        if event.status == "failed":
            reply.error = f"realtime response failed: {event.error or 'no reason given'}"
            self.call.event("error", source="realtime", detail=reply.error)
        self._flush_resampler(reply)
        reply.done.set()

    def _drop_live_replies(self) -> bool:
        """The link is gone: replies in progress end with what was received. True if one was."""
        lost = False
        for reply in self._replies.values():
            if reply.active:
                reply.active = False
                if not reply.cancelled:
                    lost = True
                    reply.error = "realtime connection lost mid-answer"
                self._flush_resampler(reply)
                reply.done.set()
        return lost

    async def _play(self, reply: Reply) -> None:
        """The speaker of one reply: its audio is queued as it arrives; wait, heard, record."""
        try:
            await reply.done.wait()
            if reply.turn is not None:
                await self.channel.wait_heard(HEARD_TIMEOUT_S)
            elif reply.error and self.has_tts and not self._closing:
                turn = RobotTurn(self.next_idx(), error=reply.error)
                await self.speak([self.config.fallback_text], turn=turn)
        except asyncio.CancelledError:
            turn = reply.turn
            if turn is not None and turn.interrupted_at_ms is None and turn.first_audio_at:
                turn.interrupted_at_ms = self.channel.heard_ms()
            raise
        finally:
            reply.cancelled = True
            if reply.turn is not None:
                self._record_reply(reply)
            if reply.scripted is not None:
                reply.scripted.done.set()

    def _record_reply(self, reply: Reply) -> None:
        turn = reply.turn
        assert turn is not None and reply.start_ms is not None
        turn.spoken, turn.pieces = reply.text, reply.pieces
        turn.sentences = [SpokenSentence(reply.text.strip(), reply.start_ms, reply.end_ms)]
        turn.error = turn.error or reply.error
        self._record_robot_turn(turn)

    # -- barge-in ----------------------------------------------------------------------------
    async def _interrupt(self, started: float | None, *, force: bool = False) -> None:
        """Caller speech (or the end of the call) cuts the robot: locally and at the service."""
        speaker, turn = self.speaker, self.turn
        if speaker is None:
            return
        reply = self._reply_of(speaker)
        if turn is not None and self.robot_talking():
            if not (turn.interruptible or force):
                self.call.event("speech_ignored", reason="not interruptible")
                return
            await self.barge_in(started)  # cancels the speaker, killAudio, drops queued audio
            heard = turn.interrupted_at_ms
        else:
            # The model was still thinking: that answer is dropped, the caller is heard out.
            speaker.cancel()
            self.call.event("answer_cancelled", reason="caller kept talking")
            heard = None
        if reply is not None:
            self._cancel_reply(reply, heard)
        for other in self._replies.values():  # an older reply still playing its tail
            if other is not reply and other.task is not None and not other.task.done():
                if other.turn is not None and other.turn.interrupted_at_ms is None:
                    other.turn.interrupted_at_ms = self.channel.heard_ms()
                other.task.cancel()
                self._cancel_reply(other, other.turn.interrupted_at_ms if other.turn else None)

    def _reply_of(self, speaker: asyncio.Task[None]) -> Reply | None:
        latest = self._latest
        return latest if latest is not None and latest.task is speaker else None

    def _cancel_reply(self, reply: Reply, heard_ms: float | None) -> None:
        reply.cancelled = True
        if reply.active:
            self._send(protocol.response_cancel(reply.response_id))
        item = reply.item
        if heard_ms is not None and item is not None and item.item_id:
            end = item.audio_end_ms(heard_ms)
            self._send(protocol.item_truncate(item.item_id, end, item.content_index))
            self.call.event("truncate", item_id=item.item_id, audio_end_ms=end)

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

    # -- scripted phrases, timers ------------------------------------------------------------
    def _say(self, text: str, *, interruptible: bool) -> asyncio.Event:
        """Says `text`: by the model while it is connected, else by the tts. Set when heard."""
        scripted = Scripted(text, interruptible)
        self.last_activity = self.clock()
        if self.link is not None and not self.link.closed:
            self._scripted.append(scripted)
            self.link.send(protocol.response_create(protocol.say_verbatim(self.robot.prompt, text)))
        elif self.has_tts:
            self.start_speaker(lambda: self._speak_scripted(scripted))
        else:
            scripted.done.set()
        return scripted.done

    async def _speak_scripted(self, scripted: Scripted) -> None:
        try:
            await self.speak([scripted.text], interruptible=scripted.interruptible)
        finally:
            scripted.done.set()

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
        return await super()._finish(status, reason, detail)
