"""What an ingress test checks of a refused WebSocket handshake: websockets' own client on
127.0.0.1 sees the 401 (status, `WWW-Authenticate`, body) and the refusal is counted in
`voiceplat_media_auth_refused_total{ingress,reason}` — the same for `media_auth` and for the
ingresses with credentials of their own (twilio, asterisk_ws, audio_stream)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


def refused_count(ingress: str, reason: str) -> float:
    labels = {"ingress": ingress, "reason": reason}
    return REGISTRY.get_sample_value("voiceplat_media_auth_refused_total", labels) or 0.0


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    challenge: str
    """The response's WWW-Authenticate."""
    body: str


async def handshake_refused(
    url: str, headers: dict[str, str] | None = None, subprotocols: Sequence[str] = ()
) -> Refused:
    """Opens `url` with websockets' client; the handshake must fail with an HTTP status."""
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(
            url,
            additional_headers=headers or {},
            subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
            open_timeout=60,
        ):
            pass
    response = refusal.value.response
    return Refused(
        response.status_code,
        response.headers.get("WWW-Authenticate", ""),
        bytes(response.body or b"").decode(),
    )


class Counted:
    """Counter readings of one ingress's reasons, to compare after some refusals."""

    def __init__(self, ingress: str, reasons: Sequence[str] = ("missing", "wrong")) -> None:
        self.ingress = ingress
        self.before = {reason: refused_count(ingress, reason) for reason in reasons}

    def added(self) -> dict[str, float]:
        return {r: refused_count(self.ingress, r) - n for r, n in self.before.items()}
