"""Caller audio from an ingress to its session: queued until read, or handed to a handler at once.

An ingress pushes audio (and finally the failure that ends the stream: Hangup, CallProtocolError);
the session either awaits `audio()` or lets `receive_audio(handler)` run its handler on each piece
in the ingress's own callback, so no task wakes up per frame. A handler may return a coroutine:
later audio waits until it is done, so the order is kept.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import Any

from voiceplat.telephony.channel import AudioHandler
from voiceplat.telephony.events import AudioIn


class InboundAudio:
    def __init__(self) -> None:
        self._queue: deque[AudioIn] = deque()
        self._reader: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self._handler: AudioHandler | None = None
        self._work: Coroutine[Any, Any, None] | None = None
        self._handler_error: BaseException | None = None

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def push(self, audio: AudioIn) -> None:
        if self._failure is not None:
            return
        self._queue.append(audio)
        self._deliver()

    def fail(self, exc: BaseException) -> None:
        """Ends the stream once what is queued has been consumed (the first failure wins)."""
        if self._failure is None:
            self._failure = exc
        self._wake()

    def _wake(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def _deliver(self) -> None:
        handler = self._handler
        if handler is None:
            self._wake()
            return
        if self._work is not None or self._handler_error is not None:
            return
        while self._queue:
            audio = self._queue.popleft()
            try:
                work = handler(audio)
            except Exception as exc:
                self._handler_error = exc
                self._wake()
                return
            if work is not None:
                self._work = work
                self._wake()
                return

    async def _wait(self) -> None:
        self._reader = asyncio.get_running_loop().create_future()
        try:
            await self._reader
        finally:
            self._reader = None

    async def audio(self) -> AudioIn:
        while not self._queue:
            if self._failure is not None:
                raise self._failure
            await self._wait()
        return self._queue.popleft()

    async def receive(self, handler: AudioHandler) -> None:
        """Runs `handler` on every piece of audio until the stream fails; raises that failure
        (or what the handler raised)."""
        self._handler = handler
        try:
            while True:
                if self._work is not None:
                    work = self._work
                    try:
                        await work
                    finally:
                        self._work = None
                if self._handler_error is not None:
                    raise self._handler_error
                self._deliver()
                if self._work is not None or self._handler_error is not None:
                    continue
                if self._failure is not None and not self._queue:
                    raise self._failure
                await self._wait()
        finally:
            self._handler = None
            if self._work is not None:  # cancelled before it ran
                self._work.close()
                self._work = None
