"""The LLM writing one answer in its own task, cut into TTS chunks as it goes.

The writer runs ahead of the speaker: chunks wait in its queue until the turn takes them, so the
first chunk is synthesised and playing while the model writes the rest. A writer may start
before the caller's turn is over (a speculative answer, on the transcript of their pause): if they
stay silent, the turn takes it with its first chunk already synthesised (`ready`); if they go on,
it is cancelled, and the model stops at its next token.

What it writes comes from the call's `Answerer` (voiceplat/dialog/answerer.py): the LLM's text,
and `Hold` phrases (a tool is running) that go out at once as chunks of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TypeVar

from voiceplat.dialog.answerer import AnswerNotes, Hold, Unspeculative
from voiceplat.providers.base import LLM
from voiceplat.sessions.chunking import ChunkPlanner
from voiceplat.sessions.timeouts import session_timeout, with_gap_timeout
from voiceplat.sessions.turn import RobotTurn
from voiceplat.storage.recorder import CallLog

_DONE = object()
T = TypeVar("T")


class ReplyWriter:
    def __init__(
        self,
        llm: LLM,
        source: AsyncIterator[str | Hold],
        planner: ChunkPlanner,
        *,
        clock: Callable[[], float],
        call: CallLog,
        turn_idx: int,
        notes: AnswerNotes | None = None,
    ) -> None:
        self.planner = planner
        self.notes = notes or AnswerNotes()
        """What the answer did (tools, an FAQ answer, a form step): the turn's record gets it."""
        self.unspeculative = False
        """A speculative answer stopped at a tool or a form: the real turn must answer anew."""
        self.turn_idx = turn_idx
        self.llm_ttft_ms: float | None = None
        self.first_chunk: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        """The first chunk as soon as it is cut (None: the answer had none)."""
        self.ready: dict[str, bytes] = {}
        """Chunks already synthesised (8 kHz PCM), by text: a speculative answer's first one."""
        self._llm = llm
        self._source = source
        self._clock = clock
        self._call = call
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._turn: RobotTurn | None = None
        self.task = asyncio.create_task(self._write())

    def attach(self, turn: RobotTurn) -> None:
        """`turn` says this answer: it gets the planner, the LLM's timing, the ready audio."""
        self._turn = turn
        turn.planner = self.planner
        turn.notes = self.notes
        turn.ready_audio = self.ready
        if self.llm_ttft_ms is not None:
            turn.llm_ttft_ms = self.llm_ttft_ms

    async def chunks(self) -> AsyncGenerator[str, None]:
        """The answer's chunks as they become ready; raises what the LLM raised."""
        while (item := await self._queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield str(item)

    def cancel(self) -> None:
        self.task.cancel()
        if not self.first_chunk.done():
            self.first_chunk.cancel()

    async def _write(self) -> None:
        llm, planner = self._llm, self.planner
        asked = self._clock()
        try:
            stream = with_gap_timeout(self._source, session_timeout(llm), "LLM")
            async for chunk in _timed(stream, planner.next_due_s):
                if chunk is None:  # time alone made a chunk ready (a budget, audio running out)
                    self._emit(planner.due(), asked)
                    continue
                if isinstance(chunk, Hold):  # said now, after what was written before it
                    self._emit([*planner.flush(), chunk.text], asked)
                    continue
                if self.llm_ttft_ms is None:
                    self.llm_ttft_ms = (self._clock() - asked) * 1000
                    self._call.event("llm_first_token", ms=round(self.llm_ttft_ms))
                    if self._turn is not None:
                        self._turn.llm_ttft_ms = self.llm_ttft_ms
                self._emit(planner.push(chunk), asked)
            self._emit(planner.flush(), asked)
            self._queue.put_nowait(_DONE)
        except asyncio.CancelledError:
            raise
        except Unspeculative as exc:
            self.unspeculative = True
            self._queue.put_nowait(exc)
        except Exception as exc:
            self._queue.put_nowait(exc)
        finally:
            if not self.first_chunk.done():
                self.first_chunk.set_result(None)

    def _emit(self, chunks: list[str], asked: float) -> None:
        for chunk in chunks:
            if not self.first_chunk.done():
                self.first_chunk.set_result(chunk)
                ms = round((self._clock() - asked) * 1000)
                self._call.event("first_sentence", turn=self.turn_idx, ms=ms)
            self._call.event("tts_chunk", turn=self.turn_idx, text=chunk)
            self._queue.put_nowait(chunk)


async def _timed(
    stream: AsyncIterator[T], due_s: Callable[[], float | None]
) -> AsyncIterator[T | None]:
    """The stream's items, and None whenever `due_s()` seconds pass without one (the LLM's next
    token is never cancelled: it is waited for again)."""
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=due_s())
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
        if pending is not None:
            if not pending.done():
                pending.cancel()
                await asyncio.wait({pending})
            # Read what it ended with: the stream may have ended (StopAsyncIteration) or failed
            # in the loop turn this reader was cancelled in, and an exception nobody reads is
            # logged as an error when the task is freed.
            if not pending.cancelled():
                pending.exception()
