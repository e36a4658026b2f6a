"""Server-sent events (text/event-stream) parsing, sans-I/O.

Streaming HTTP APIs (OpenAI-compatible chat completions, and later other cloud providers) send
`data:` lines separated by blank lines. `SseParser` turns lines into events; it does no I/O, so the
caller decides how lines arrive (httpx's `aiter_lines()` already splits on CR, LF and CRLF).
The rules follow the WHATWG event-stream format: `:` starts a comment, several `data:` lines of one
event are joined with newlines, one space after the colon is dropped, unknown fields are ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SseParser:
    """Feed it lines (without their line ending); it returns an event when a blank line ends one."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed_line(self, line: str) -> SseEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / keep-alive
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        return None

    def flush(self) -> SseEvent | None:
        """The event still pending at the end of the stream, if any.

        The standard discards it, but some servers end their body without the final blank line,
        so callers that prefer leniency may use it.
        """
        return self._dispatch()

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent(data="\n".join(self._data), event=self._event or "message", id=self._id)
        self._data = []
        self._event = ""
        return event


async def iter_events(lines: AsyncIterable[str]) -> AsyncIterator[SseEvent]:
    """Events from an async stream of lines; an unterminated last event is still delivered."""
    parser = SseParser()
    async for line in lines:
        event = parser.feed_line(line)
        if event is not None:
            yield event
    last = parser.flush()
    if last is not None:
        yield last
