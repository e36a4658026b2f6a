"""Realtime mode's robot side: the model's responses played as they arrive, barge-in with the
truncation of what the caller did not hear, and scripted phrases (said by the model, or by the
tts while it is not connected).

Each response becomes the call's speaker (Session.start_speaker) and, at its first audio, a robot
turn; it is recorded however it ends. What `Replies` needs of the session and of the link is
spelled out in `Voice` and `Service`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol

from voiceplat.audio.pcm import CALL_RATE
from voiceplat.audio.resample import StreamResampler
from voiceplat.config import RobotConfig
from voiceplat.providers.realtime import protocol
from voiceplat.providers.realtime.protocol import AudioFormat
from voiceplat.providers.realtime.server_events import AudioDelta, ResponseDone
from voiceplat.providers.realtime.timelines import ItemAudio
from voiceplat.sessions.realtime.robot_turns import RealtimeTurn, Reply, Scripted
from voiceplat.sessions.transcript import CallTranscript
from voiceplat.sessions.turn import RobotTurn, SpokenSentence
from voiceplat.sessions.turn_audio import HEARD_TIMEOUT_S
from voiceplat.storage.recorder import CallLog
from voiceplat.telephony.channel import CallChannel


class Voice(Protocol):
    """The session as the replies use it: its one speaker, robot turns and the channel."""

    config: RobotConfig
    channel: CallChannel
    call: CallLog
    transcript: CallTranscript
    speaker: asyncio.Task[None] | None
    turn: RobotTurn | None
    """The speaker's turn once its audio plays (what barge-in cuts)."""
    closing: bool
    """The robot is ending the call: answers to anything said now are not played."""

    @property
    def has_tts(self) -> bool: ...

    def start_speaker(self, work: Callable[[], Awaitable[None]]) -> object: ...

    def robot_talking(self) -> bool: ...

    async def barge_in(self, speech_started: float | None = None) -> None: ...

    async def speak(
        self, sentences: Iterable[str], *, interruptible: bool = True, turn: RobotTurn | None = None
    ) -> RobotTurn: ...

    def queue_audio(self, turn: RobotTurn, data: bytes) -> None: ...

    def record_robot_turn(self, turn: RobotTurn) -> None: ...


class Service(Protocol):
    """The link as the replies use it."""

    @property
    def connected(self) -> bool: ...

    @property
    def out_format(self) -> AudioFormat: ...

    def send(self, event: dict[str, Any]) -> None: ...


class Replies:
    def __init__(self, voice: Voice, service: Service, *, prompt: str) -> None:
        """`prompt`: the robot's instructions, repeated when a phrase is asked for verbatim."""
        self._voice = voice
        self._service = service
        self._prompt = prompt
        self._replies: dict[str, Reply] = {}
        self._latest: Reply | None = None
        self._scripted: deque[Scripted] = deque()
        self._speech_ended: float | None = None

    # -- what the session tells --------------------------------------------------------------
    def caller_stopped(self, ended: float) -> None:
        """The caller stopped speaking at `ended` (session clock): the next answer's v2v start."""
        self._speech_ended = ended

    @property
    def scripted_pending(self) -> bool:
        """A phrase was asked of the model and it has not begun it yet."""
        return bool(self._scripted)

    def spoken(self) -> Iterator[tuple[int, str]]:
        """(turn index, text) of every reply that has spoken, those still playing included
        (they are recorded when they end)."""
        for reply in self._replies.values():
            if reply.turn is not None:
                yield reply.turn.idx, reply.text

    # -- the service's events ----------------------------------------------------------------
    def created(self, response_id: str | None) -> Reply:
        voice = self._voice
        scripted = self._scripted.popleft() if self._scripted else None
        reply = Reply(response_id, scripted, None if scripted else self._speech_ended)
        if scripted is None:
            self._speech_ended = None
        self._replies[response_id or f"anon-{len(self._replies)}"] = reply
        self._latest = reply
        if voice.closing and scripted is None:
            # Calling it a day: answers to anything said now are not played.
            reply.cancelled = True
            self._service.send(protocol.response_cancel(response_id))
            return reply
        voice.start_speaker(lambda: self._play(reply))
        reply.task = voice.speaker
        return reply

    def audio(self, event: AudioDelta) -> None:
        reply = self._reply_for(event.response_id)
        if reply is None or reply.cancelled:
            return
        fmt = self._service.out_format
        if reply.item is None or (event.item_id and reply.item.item_id != event.item_id):
            self._flush_resampler(reply)
            reply.item = ItemAudio(event.item_id or "", event.content_index)
            reply.resampler = StreamResampler(fmt.rate, CALL_RATE)
        reply.item.received_ms += fmt.wire_ms(len(event.audio))
        assert reply.resampler is not None
        self._queue(reply, reply.resampler.process(fmt.decode(event.audio)))

    def audio_done(self, response_id: str | None) -> None:
        reply = self._reply_for(response_id)
        if reply is not None:
            self._flush_resampler(reply)

    def text(self, response_id: str | None, text: str, source: str, *, done: bool) -> None:
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
            reply.pieces.append((self._voice.channel.queued_ms, text))

    def done(self, event: ResponseDone) -> None:
        reply = self._reply_for(event.response_id)
        if reply is None:
            return
        reply.active = False
        if event.status == "failed":
            reply.error = f"realtime response failed: {event.error or 'no reason given'}"
            self._voice.call.event("error", source="realtime", detail=reply.error)
        self._flush_resampler(reply)
        reply.done.set()

    def drop_live(self) -> bool:
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

    def drop_scripted(self) -> None:
        """The link is gone: phrases asked of it will not come (those waiting go on)."""
        for scripted in self._scripted:
            scripted.done.set()
        self._scripted.clear()

    # -- playing -----------------------------------------------------------------------------
    def _reply_for(self, response_id: str | None) -> Reply | None:
        if response_id is None:
            return self._latest
        reply = self._replies.get(response_id)
        if reply is None:  # a server that skipped response.created
            reply = self.created(response_id)
        return reply

    def _flush_resampler(self, reply: Reply) -> None:
        if reply.resampler is not None:
            resampler, reply.resampler = reply.resampler, None
            if not reply.cancelled:
                self._queue(reply, resampler.flush())

    def _queue(self, reply: Reply, data: bytes) -> None:
        if not data:
            return
        voice, channel = self._voice, self._voice.channel
        if reply.turn is None:
            interruptible = reply.scripted.interruptible if reply.scripted else True
            reply.turn = RealtimeTurn(
                voice.transcript.next_idx(), user_speech_ended=reply.speech_ended
            )
            reply.turn.interruptible = interruptible and voice.config.barge_in.enabled
            reply.start_ms = channel.queued_ms
        if reply.task is not None and reply.task is voice.speaker:
            voice.turn = reply.turn
        if reply.item is not None and reply.item.start_ms is None:
            reply.item.start_ms = channel.queued_ms
        voice.queue_audio(reply.turn, data)
        reply.end_ms = channel.queued_ms

    async def _play(self, reply: Reply) -> None:
        """The speaker of one reply: its audio is queued as it arrives; wait, heard, record."""
        voice = self._voice
        try:
            await reply.done.wait()
            if reply.turn is not None:
                await voice.channel.wait_heard(HEARD_TIMEOUT_S)
            elif reply.error and voice.has_tts and not voice.closing:
                fallback = RobotTurn(voice.transcript.next_idx(), error=reply.error)
                await voice.speak([voice.config.fallback_text], turn=fallback)
        except asyncio.CancelledError:
            turn = reply.turn
            if turn is not None and turn.interrupted_at_ms is None and turn.first_audio_at:
                turn.interrupted_at_ms = voice.channel.heard_ms()
            raise
        finally:
            reply.cancelled = True
            if reply.turn is not None:
                self._record(reply)
            if reply.scripted is not None:
                reply.scripted.done.set()

    def _record(self, reply: Reply) -> None:
        turn = reply.turn
        assert turn is not None and reply.start_ms is not None
        turn.spoken, turn.pieces = reply.text, reply.pieces
        turn.sentences = [SpokenSentence(reply.text.strip(), reply.start_ms, reply.end_ms)]
        turn.error = turn.error or reply.error
        self._voice.record_robot_turn(turn)

    # -- barge-in ----------------------------------------------------------------------------
    async def interrupt(self, started: float | None, *, force: bool = False) -> None:
        """Caller speech (or the end of the call) cuts the robot: locally and at the service."""
        voice = self._voice
        speaker, turn = voice.speaker, voice.turn
        if speaker is None:
            return
        reply = self._reply_of(speaker)
        if turn is not None and voice.robot_talking():
            if not (turn.interruptible or force):
                voice.call.event("speech_ignored", reason="not interruptible")
                return
            await voice.barge_in(started)  # cancels the speaker, killAudio, drops queued audio
            heard = turn.interrupted_at_ms
        else:
            # The model was still thinking: that answer is dropped, the caller is heard out.
            speaker.cancel()
            voice.call.event("answer_cancelled", reason="caller kept talking")
            heard = None
        if reply is not None:
            self._cancel(reply, heard)
        for other in self._replies.values():  # an older reply still playing its tail
            if other is not reply and other.task is not None and not other.task.done():
                if other.turn is not None and other.turn.interrupted_at_ms is None:
                    other.turn.interrupted_at_ms = voice.channel.heard_ms()
                other.task.cancel()
                self._cancel(other, other.turn.interrupted_at_ms if other.turn else None)

    def _reply_of(self, speaker: asyncio.Task[None]) -> Reply | None:
        latest = self._latest
        return latest if latest is not None and latest.task is speaker else None

    def _cancel(self, reply: Reply, heard_ms: float | None) -> None:
        reply.cancelled = True
        if reply.active:
            self._service.send(protocol.response_cancel(reply.response_id))
        item = reply.item
        if heard_ms is not None and item is not None and item.item_id:
            end = item.audio_end_ms(heard_ms)
            self._service.send(protocol.item_truncate(item.item_id, end, item.content_index))
            self._voice.call.event("truncate", item_id=item.item_id, audio_end_ms=end)

    # -- scripted phrases --------------------------------------------------------------------
    def say(self, text: str, *, interruptible: bool) -> asyncio.Event:
        """Says `text`: by the model while it is connected, else by the tts. Set when heard."""
        scripted = Scripted(text, interruptible)
        if self._service.connected:
            self._scripted.append(scripted)
            instructions = protocol.say_verbatim(self._prompt, text)
            self._service.send(protocol.response_create(instructions))
        elif self._voice.has_tts:
            self._voice.start_speaker(lambda: self._speak(scripted))
        else:
            scripted.done.set()
        return scripted.done

    async def _speak(self, scripted: Scripted) -> None:
        try:
            await self._voice.speak([scripted.text], interruptible=scripted.interruptible)
        finally:
            scripted.done.set()
