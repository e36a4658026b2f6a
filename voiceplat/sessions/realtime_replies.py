"""Realtime mode's robot side: the model's responses played as they arrive, barge-in with the
truncation of what the caller did not hear, and scripted phrases (said by the model, or by the tts
while it is not connected)."""

from __future__ import annotations

import asyncio
from collections import deque

from voiceplat.audio.pcm import CALL_RATE
from voiceplat.audio.resample import StreamResampler
from voiceplat.providers.realtime import protocol
from voiceplat.providers.realtime.connection import ProtocolRealtime, RealtimeConnection
from voiceplat.providers.realtime.protocol import AudioDelta, AudioFormat, ItemAudio, ResponseDone
from voiceplat.sessions.base import HEARD_TIMEOUT_S, Session
from voiceplat.sessions.realtime_turns import RealtimeTurn, Reply, Scripted
from voiceplat.sessions.turn import RobotTurn, SpokenSentence


class RealtimeReplySession(Session):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rt: ProtocolRealtime = self.robot.realtime  # type: ignore[assignment]
        self.link: RealtimeConnection | None = None
        self.out_format: AudioFormat = self.rt.output_format
        self._replies: dict[str, Reply] = {}
        self._latest: Reply | None = None
        self._scripted: deque[Scripted] = deque()
        self._speech_ended: float | None = None
        self._closing = False

    @property
    def has_tts(self) -> bool:
        return "tts" in self.robot.providers

    def _send(self, event: dict) -> None:
        if self.link is not None and not self.link.closed:
            self.link.send(event)

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

    # -- scripted phrases --------------------------------------------------------------------
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
