"""FreeSWITCH's event socket (mod_event_socket, inbound mode), sans-I/O: bytes in, messages out.

The wire format (FreeSWITCH docs, "mod_event_socket"): every message is a block of
`Name: value` header lines ended by an empty line; a `Content-Length` header means that many
bytes of body follow. On connect FreeSWITCH sends `Content-Type: auth/request`; the client answers
`auth <password>` and gets a `command/reply` whose `Reply-Text` starts `+OK` or `-ERR`. Commands
are one line ended by an empty line; `api` is answered by `api/response` (body: the command's
output), `bgapi`, `event`, `filter` by `command/reply`. Events subscribed with `event plain ...`
arrive as `text/event-plain`: the body is itself a header block (values URL-encoded), optionally
followed by the event's own `Content-Length` body. `text/disconnect-notice` comes before
FreeSWITCH closes the socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Bounds on one message: a broken or hostile peer cannot make the parser hold more."""


class EslProtocolError(ValueError):
    """The event socket's peer sent something that is not the ESL text protocol."""


@dataclass(frozen=True, slots=True)
class EslMessage:
    headers: dict[str, str]
    body: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")


@dataclass(frozen=True, slots=True)
class EslEvent:
    """A `text/event-plain` event: its headers (URL-decoded) and body."""

    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    @property
    def name(self) -> str:
        """`CUSTOM` events go by their subclass (`mod_audio_stream::play`)."""
        name = self.headers.get("Event-Name", "")
        return self.headers.get("Event-Subclass", name) if name == "CUSTOM" else name

    @property
    def uuid(self) -> str:
        return self.headers.get("Unique-ID", "")


def _headers(block: str, *, decode: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise EslProtocolError(f"not an ESL header line: {line[:80]!r}")
        value = value.strip()
        headers[name.strip()] = unquote(value) if decode else value
    return headers


def _is_length(value: str) -> bool:
    # str.isdigit() is true of "²" and "٣" too, which int() refuses.
    return value.isascii() and value.isdigit()


class EslParser:
    """Splits the byte stream into messages, however it was cut into reads."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: dict[str, str] | None = None  # headers waiting for their body
        self._body_length = 0

    def feed(self, data: bytes) -> list[EslMessage]:
        self._buffer += data
        messages: list[EslMessage] = []
        while True:
            if self._pending is None:
                end = self._buffer.find(b"\n\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEADER_BYTES:
                        raise EslProtocolError("ESL header block too long (no empty line)")
                    return messages
                block = bytes(self._buffer[:end]).decode("utf-8", errors="replace")
                del self._buffer[: end + 2]
                headers = _headers(block.replace("\r", ""), decode=False)
                length = headers.get("Content-Length", "0")
                if not _is_length(length) or int(length) > MAX_BODY_BYTES:
                    raise EslProtocolError(f"bad Content-Length {length[:20]!r}")
                self._pending, self._body_length = headers, int(length)
            if len(self._buffer) < self._body_length:
                return messages
            body = bytes(self._buffer[: self._body_length]).decode("utf-8", errors="replace")
            del self._buffer[: self._body_length]
            messages.append(EslMessage(self._pending, body))
            self._pending = None


def parse_event(message: EslMessage) -> EslEvent:
    """The event a `text/event-plain` message carries."""
    head, _, rest = message.body.partition("\n\n")
    headers = _headers(head, decode=True)
    length = headers.get("Content-Length")
    body = rest[: int(length)] if length and _is_length(length) else rest
    return EslEvent(headers, body)


def command(line: str) -> bytes:
    """One command (`auth ...`, `api ...`, `event plain ...`). Newlines would start another
    command, so a value that holds one is refused."""
    if "\n" in line or "\r" in line:
        raise ValueError(f"an ESL command is one line: {line[:80]!r}")
    return line.encode() + b"\n\n"


def encode_message(headers: dict[str, str], body: str = "") -> bytes:
    """A message as FreeSWITCH writes it (the fake server and tests use this)."""
    data = body.encode()
    lines = [f"{name}: {value}" for name, value in headers.items()]
    if data:
        lines.append(f"Content-Length: {len(data)}")
    return ("\n".join(lines) + "\n\n").encode() + data


def encode_event(headers: dict[str, str], body: str = "") -> bytes:
    """A `text/event-plain` message (what FreeSWITCH sends for a subscribed event)."""
    data = body.encode()
    lines = [f"{name}: {quote(value, safe='')}" for name, value in headers.items()]
    if data:
        lines.append(f"Content-Length: {len(data)}")
    inner = "\n".join(lines) + "\n\n" + body
    return encode_message({"Content-Type": "text/event-plain"}, inner)
