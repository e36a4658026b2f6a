"""Pipeline mode: utterance → ASR → LLM (streamed) → sentences → TTS → play.

The LLM streams in its own task into a queue of chunks, so the first chunk is synthesised and
playing while the model is still writing the rest. The `ChunkPlanner` sizes the chunks from the
robot's measured LLM and TTS speeds (and cuts the first one by a time budget whatever the
punctuation), so that the caller hears no silence inside the answer. Keys the caller pressed that have no action are
a caller turn too: "[DTMF 1 2 3]", which the LLM answers (sessions/dtmf.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from voiceplat.providers.base import Message
from voiceplat.sessions.chunking import ChunkPlanner
from voiceplat.sessions.dtmf import KeyActions, SpeakerKeyActions
from voiceplat.sessions.listening import ListeningSession
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
        planner = ChunkPlanner(self.robot.rates, self.clock, self.config.chunking_settings())
        turn.planner = planner
        asked = self.clock()
        first_ready = False

        def emit(chunks: list[str]) -> None:
            nonlocal first_ready
            if chunks and not first_ready:
                first_ready = True
                ms = round((self.clock() - asked) * 1000)
                self.call.event("first_sentence", turn=turn.idx, ms=ms)
            for chunk in chunks:
                self.call.event("tts_chunk", turn=turn.idx, text=chunk)
                queue.put_nowait(chunk)

        try:
            stream = with_gap_timeout(
                llm.stream(self.transcript.dialog()), session_timeout(llm), "LLM"
            )
            async for chunk in _timed(stream, planner.next_due_s):
                if chunk is None:  # time alone made a chunk ready (a budget, audio running out)
                    emit(planner.due())
                    continue
                if turn.llm_ttft_ms is None:
                    turn.llm_ttft_ms = (self.clock() - asked) * 1000
                    self.call.event("llm_first_token", ms=round(turn.llm_ttft_ms))
                emit(planner.push(chunk))
            emit(planner.flush())
            queue.put_nowait(_DONE)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            queue.put_nowait(exc)


async def _timed(
    stream: AsyncIterator[str], due_s: Callable[[], float | None]
) -> AsyncIterator[str | None]:
    """The stream's items, and None whenever `due_s()` seconds pass without one (the LLM's next
    token is never cancelled: it is waited for again)."""
    pending: asyncio.Future[str] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            timeout = due_s()
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.wait({pending})


class PipelineKeyActions(SpeakerKeyActions):
    def __init__(self, session: PipelineSession) -> None:
        super().__init__(session)
        self.pipeline = session

    async def keyed_digits(self, text: str) -> None:
        """The keys are what the caller said: recorded as their turn and answered by the LLM."""
        session = self.pipeline
        now = session.clock()
        session.start_speaker(lambda: session.answer(b"", now, now, text=text))
