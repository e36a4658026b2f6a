"""`FakeTransport`: the WebSocket transport under a paced ingress channel (Asterisk WS, Twilio,
the browser), keeping what the channel sent; `NoPacer`: a pacer that never ticks, so a test
calls the channel's `pace` itself."""

from __future__ import annotations

import json
from typing import Any


class FakeTransport:
    def __init__(self) -> None:
        self.receiver: Any = None
        self.sent: list[str | bytes] = []
        self.closed_with: tuple[int, str] | None = None

    def attach(self, receiver: Any) -> None:
        self.receiver = receiver

    def send_now(self, message: str | bytes) -> bool:
        self.sent.append(message)
        return self.closed_with is None

    def write_ready(self) -> bool:
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = (code, reason)

    def texts(self) -> list[str]:
        """The TEXT frames sent, as sent."""
        return [m for m in self.sent if isinstance(m, str)]

    def json_texts(self) -> list[Any]:
        """The TEXT frames sent, parsed as JSON."""
        return [json.loads(m) for m in self.texts()]

    def binaries(self) -> list[bytes]:
        """The BINARY frames sent."""
        return [m for m in self.sent if isinstance(m, bytes)]

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The JSON messages sent whose "event" is `kind` (Twilio's media, mark, clear)."""
        return [m for m in self.json_texts() if m["event"] == kind]


class NoPacer:
    def wake(self, client: object) -> None:
        pass

    def remove(self, client: object) -> None:
        pass
