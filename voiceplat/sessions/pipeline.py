"""Pipeline mode: utterance → ASR → answer (a form, an FAQ, the grounded LLM with tools) → TTS → play.

The call's `Answerer` (voiceplat/dialog/answerer.py) decides what answers the caller's words.

The LLM streams in its own task into a queue of chunks, so the first chunk is synthesised and
playing while the model is still writing the rest. The `ChunkPlanner` sizes the chunks from the
robot's measured LLM and TTS speeds (and cuts the first one by a time budget whatever the
punctuation), so that the caller hears no silence inside the answer (`reply_writer.py`). Keys the
caller pressed that have no action are a caller turn too: "[DTMF 1 2 3]", which the LLM answers (sessions/dtmf.py).
"""

from __future__ import annotations

import asyncio

from voiceplat.dialog.answerer import Answerer, AnswerNotes
from voiceplat.providers.base import Message
from voiceplat.sessions.chunking import ChunkPlanner
from voiceplat.sessions.dtmf import KeyActions, SpeakerKeyActions
from voiceplat.sessions.listening import ListeningSession
from voiceplat.sessions.reply_writer import ReplyWriter
from voiceplat.sessions.still_working import StillWorking
from voiceplat.sessions.turn import RobotTurn
from voiceplat.telephony.events import CallMetadata


class PipelineSession(ListeningSession):
    mode = "pipeline"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._prepared: tuple[str, ReplyWriter] | None = None
        """A speculative answer to the caller's words so far (vad.speculative_answer)."""
        self._answerer: Answerer | None = None

    @property
    def answerer(self) -> Answerer:
        """The call's way to its answers (made once the call's record is open)."""
        if self._answerer is None:
            robot = self.robot
            self._answerer = Answerer(
                self.config,
                robot.llm,
                robot.knowledge,
                robot.tools,
                now=robot.now,
                record=self.call.event,
            )
        return self._answerer

    def tool_outcome(self) -> str | None:
        return self._answerer.outcome if self._answerer is not None else None

    def key_actions(self) -> KeyActions:
        return PipelineKeyActions(self)

    def _open_record(self, metadata: CallMetadata) -> None:
        super()._open_record(metadata)
        # An answer whose LLM job waits in a queue (other calls' answers first) must not leave
        # the caller in silence: the filler opens it (admission.filler_after_ms).
        after_ms = self.config.admission.filler_after_ms
        self.fillers.first_audio_after_s = None if after_ms is None else after_ms / 1000
        # One that keeps them waiting longer still hears the robot now and then (hold_repeat_*).
        self.fillers.still_working = StillWorking(
            self.robot.hold_repeat_audio,
            self.audio,
            self.call,
            repeat_s=self.config.hold_repeat_ms / 1000,
            max_per_turn=self.config.hold_repeat_max,
            clock=self.clock,
            first_audio_after_s=self.fillers.first_audio_after_s,
        )

    def _writer(
        self, messages: list[Message], turn_idx: int, *, speculative: bool = False
    ) -> ReplyWriter:
        planner = ChunkPlanner(self.robot.rates, self.clock, self.config.chunking_settings())
        notes = AnswerNotes()
        source = self.answerer.answer(messages, notes, speculative=speculative)
        return ReplyWriter(
            self.robot.llm,
            source,
            planner,
            clock=self.clock,
            call=self.call,
            turn_idx=turn_idx,
            notes=notes,
        )

    async def prepare_reply(self, text: str) -> bool:
        """At the caller's pause: the LLM evaluates the prompt with their words so far; with
        `vad.speculative_answer` it writes the answer and its first chunk is synthesised, so a
        caller who stays silent hears it as soon as their turn ends."""
        messages = self.transcript.dialog(then=Message("user", text))
        if not self.config.vad.speculative_answer:
            answerer = self.answerer
            return await self.robot.llm.prefill(answerer.prompt(messages), answerer.tool_specs())
        self._drop_prepared()
        # The caller's turn is recorded next, then the answer: its index is known now.
        writer = self._writer(messages, self.transcript.peek_idx() + 1, speculative=True)
        self._prepared = (text, writer)
        try:
            first = await writer.first_chunk
            if first is not None:
                writer.ready[first] = await self.audio.render(first)
            await writer.task
        except asyncio.CancelledError:
            writer.cancel()
            if self._prepared is not None and self._prepared[1] is writer:
                self._prepared = None
            raise
        return True

    def _drop_prepared(self) -> None:
        if self._prepared is not None:
            self._prepared[1].cancel()
            self._prepared = None

    def _take_prepared(self) -> ReplyWriter | None:
        """The speculative answer, if it answers the dialog as it now stands."""
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            return None
        text, writer = prepared
        last = self.transcript.dialog()[-1]
        stale = last.role != "user" or last.content != text
        if stale or writer.task.cancelled() or writer.unspeculative:
            writer.cancel()
            return None
        self.call.event("speculative_answer", turn=writer.turn_idx)
        return writer

    async def reply(self, turn: RobotTurn) -> None:
        writer = self._take_prepared() or self._writer(self.transcript.dialog(), turn.idx)
        writer.attach(turn)
        sentences = writer.chunks()
        try:
            await self.speak(sentences, turn=turn)
        finally:
            writer.cancel()
            await sentences.aclose()

    def release(self) -> None:
        super().release()
        self._drop_prepared()


class PipelineKeyActions(SpeakerKeyActions):
    def __init__(self, session: PipelineSession) -> None:
        super().__init__(session)
        self.pipeline = session

    async def keyed_digits(self, text: str) -> None:
        """The keys are what the caller said: recorded as their turn and answered by the LLM."""
        session = self.pipeline
        now = session.clock()
        session.start_speaker(lambda: session.answer(b"", now, now, text=text))
