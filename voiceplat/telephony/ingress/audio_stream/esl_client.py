"""An asyncio client of FreeSWITCH's event socket (inbound mode) on top of the `esl` codec.

FreeSWITCH answers commands in the order they were sent, so each command's reply is the next
`command/reply` or `api/response` to arrive; events are handed to `on_event` as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from voiceplat.telephony.ingress.audio_stream.esl import (
    EslEvent,
    EslMessage,
    EslParser,
    EslProtocolError,
    command,
    parse_event,
)

READ_BYTES = 65536
log = logging.getLogger(__name__)

EventHandler = Callable[[EslEvent], None]


class EslError(Exception):
    """The event socket refused (a `-ERR` reply), could not be reached, or went away."""


class EslClient:
    def __init__(self, on_event: EventHandler | None = None) -> None:
        self.on_event = on_event
        self._parser = EslParser()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: deque[asyncio.Future[EslMessage]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._auth: asyncio.Future[EslMessage] | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""

    async def connect(self, host: str, port: int, password: str, timeout_s: float = 10.0) -> None:
        """Connects and authenticates; raises EslError (with FreeSWITCH's words) on refusal."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                self._reader, self._writer = await asyncio.open_connection(host, port)
                self._auth = loop.create_future()
                self._task = loop.create_task(self._read())
                request = await asyncio.shield(self._auth)
                if request.content_type != "auth/request":
                    raise EslError(f"expected auth/request, got {request.content_type!r}")
                reply = await self._command(f"auth {password}")
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise EslError(f"cannot reach the event socket at {host}:{port}: {exc!r}") from None
        except EslError:
            await self.close()
            raise
        if not reply.reply_text.startswith("+OK"):
            await self.close()
            raise EslError(f"event socket refused the password: {reply.reply_text}")

    async def subscribe(self, events: list[str], uuid: str | None = None) -> None:
        """`event plain ...` and, for one call only, `filter Unique-ID <uuid>`."""
        if uuid is not None:
            await self.checked(f"filter Unique-ID {uuid}")
        await self.checked("event plain " + " ".join(events))

    async def api(self, line: str) -> str:
        """`api <line>`: the command's output (FreeSWITCH's `-ERR ...` is output, not raised)."""
        reply = await self._command(f"api {line}")
        return reply.body

    async def bgapi(self, line: str) -> str:
        """`bgapi <line>`: the job's UUID (its result comes as a BACKGROUND_JOB event)."""
        reply = await self.checked(f"bgapi {line}")
        return reply.headers.get("Job-UUID", "")

    async def checked(self, line: str) -> EslMessage:
        reply = await self._command(line)
        if not reply.reply_text.startswith("+OK"):
            raise EslError(f"{line.split(' ')[0]}: {reply.reply_text or reply.body}")
        return reply

    def request(self, line: str) -> asyncio.Future[EslMessage]:
        """Writes one command now (so commands go out in the order of the calls) and returns
        the future of its reply; it fails with EslError if the socket closes first."""
        future: asyncio.Future[EslMessage] = asyncio.get_running_loop().create_future()
        if self._writer is None or self.closed.is_set():
            future.set_exception(
                EslError(f"event socket closed: {self.close_reason or 'not connected'}")
            )
            return future
        self._replies.append(future)
        self._writer.write(command(line))
        return future

    def send_api(self, line: str) -> asyncio.Future[EslMessage]:
        """`api <line>` whose answer nobody awaits (a failure is only logged)."""
        future = self.request(f"api {line}")
        future.add_done_callback(_log_failure)
        return future

    async def _command(self, line: str) -> EslMessage:
        return await self.request(line)

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(READ_BYTES)
                if not data:
                    self._closed("the event socket closed the connection")
                    return
                for message in self._parser.feed(data):
                    self._dispatch(message)
        except (OSError, EslProtocolError) as exc:
            self._closed(str(exc))

    def _dispatch(self, message: EslMessage) -> None:
        kind = message.content_type
        if kind == "auth/request" and self._auth is not None and not self._auth.done():
            self._auth.set_result(message)
        elif kind in ("command/reply", "api/response"):
            if self._replies:
                future = self._replies.popleft()
                if not future.done():
                    future.set_result(message)
        elif kind == "text/event-plain":
            if self.on_event is not None:
                self.on_event(parse_event(message))
        elif kind == "text/disconnect-notice":
            self._closed(message.body.strip() or "disconnect notice")

    def _closed(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        error = EslError(f"event socket closed: {reason}")
        for future in (self._auth, *self._replies):
            if future is not None and not future.done():
                future.set_exception(error)
        self._replies.clear()

    async def close(self) -> None:
        self._closed("closed by us")
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()


def _log_failure(future: asyncio.Future[EslMessage]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.warning("event socket command failed: %s", exc)
    elif future.result().body.startswith("-ERR"):
        log.warning("event socket: %s", future.result().body.strip())
