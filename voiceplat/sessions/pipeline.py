"""Pipeline mode: utterance → ASR → LLM (streamed) → sentences → TTS → play.

The LLM streams in its own task into a queue of sentences, so the first sentence is synthesised and
playing while the model is still writing the rest. Keys the caller pressed that have no action are
a caller turn too: "[DTMF 1 2 3]", which the LLM answers (sessions/dtmf.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from voiceplat.providers.base import Message
from voiceplat.sessions.dtmf import KeyActions, SpeakerKeyActions
from voiceplat.sessions.listening import ListeningSession
from voiceplat.sessions.text import SentenceSplitter
from voiceplat.sessions.timeouts import session_timeout, with_gap_timeout
from voiceplat.sessions.turn import RobotTurn

_DONE = object()


class PipelineSession(ListeningSession):
    mode = "pipeline"

    def key_actions(self) -> KeyActions:
        return PipelineKeyActions(self)

    async def prepare_reply(self, text: str) -> bool:
        return await self.robot.llm.prefill(self.transcript.dialog(then=Message("user", text)))

    async def reply(self, turn: RobotTurn) -> None:
        sentences = self._reply_sentences(turn)
        try:
            await self.speak(sentences, turn=turn)
        finally:
            await sentences.aclose()

    async def _reply_sentences(self, turn: RobotTurn) -> AsyncGenerator[str, None]:
        """Sentences of the LLM's answer as they become ready; the LLM runs ahead in a task."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        producer = asyncio.create_task(self._stream_llm(turn, queue))
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield str(item)
        finally:
            producer.cancel()

    async def _stream_llm(self, turn: RobotTurn, queue: asyncio.Queue[object]) -> None:
        llm = self.robot.llm
        splitter = SentenceSplitter(first_clause_min_chars=self.config.first_clause_min_chars)
        asked = self.clock()
        first_ready = False

        def emit(sentences: list[str]) -> None:
            nonlocal first_ready
            if sentences and not first_ready:
                first_ready = True
                ms = round((self.clock() - asked) * 1000)
                self.call.event("first_sentence", turn=turn.idx, ms=ms)
            for sentence in sentences:
                queue.put_nowait(sentence)

        try:
            stream = with_gap_timeout(
                llm.stream(self.transcript.dialog()), session_timeout(llm), "LLM"
            )
            async for chunk in stream:
                if turn.llm_ttft_ms is None:
                    turn.llm_ttft_ms = (self.clock() - asked) * 1000
                    self.call.event("llm_first_token", ms=round(turn.llm_ttft_ms))
                emit(splitter.push(chunk))
            emit(splitter.flush())
            queue.put_nowait(_DONE)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            queue.put_nowait(exc)


class PipelineKeyActions(SpeakerKeyActions):
    def __init__(self, session: PipelineSession) -> None:
        super().__init__(session)
        self.pipeline = session

    async def keyed_digits(self, text: str) -> None:
        """The keys are what the caller said: recorded as their turn and answered by the LLM."""
        session = self.pipeline
        now = session.clock()
        session.start_speaker(lambda: session.answer(b"", now, now, text=text))
