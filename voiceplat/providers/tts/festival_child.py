"""One connection to a Festival server, i.e. one forked festival child that serves it.

Festival's server forks a child per connection, and the child evaluates what the connection sends.
A sentence's synthesis is one such conversation; cancelling it (barge-in) SIGKILLs exactly that
child through a pidfd, taken on the pid the child reports itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from voiceplat.providers.base import ProviderError
from voiceplat.providers.tts.festival_protocol import Reply, ReplyParser

_READ_SIZE = 1 << 16


class FestivalChild:
    """One connection to the server, i.e. one forked festival child that serves it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = ReplyParser()
        self._pending: list[Reply] = []
        self._pidfd: int | None = None

    async def call(self, command: bytes) -> list[Reply]:
        """Sends one expression; returns its replies up to and including OK or ER."""
        self._writer.write(command)
        await self._writer.drain()
        replies: list[Reply] = []
        while True:
            while self._pending:
                reply = self._pending.pop(0)
                replies.append(reply)
                if reply.final:
                    return replies
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise ProviderError("festival closed the connection mid-reply (child died)")
            self._pending.extend(self._parser.feed(data))

    async def identify(self) -> None:
        """Asks the child for its pid and holds a pidfd on it, so `kill` hits exactly it."""
        replies = await self.call(b"(getpid)\n")
        values = [reply.data for reply in replies if reply.kind == "LP"]
        if replies[-1].kind != "OK" or not values:
            raise ProviderError("festival did not answer (getpid)")
        try:
            pid = int(values[0].strip())
        except ValueError:
            raise ProviderError(f"festival answered (getpid) with {values[0]!r}") from None
        # The child cannot exit while this connection is open, so the pid is still its own.
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(pid)

    def kill(self) -> None:
        """Stops the child now (mid-synthesis) and drops the connection."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        self._writer.transport.abort()
        self._release()

    async def close(self) -> None:
        """Ends the conversation; the child exits on end of input."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        self._release()

    def _release(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
