"""Where the simulator calls: a robot's SIP URI, and the local address that reaches it."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Literal, cast

Transport = Literal["udp", "tcp"]
TRANSPORTS = ("udp", "tcp")
_SIP_URI = re.compile(
    r"^sip:(?:(?P<user>[^@;?]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;?@\[\]]+)(?::(?P<port>\d+))?"
    r"(?P<params>;[^?]*)?$",
    re.IGNORECASE,
)


def is_sip_uri(text: str) -> bool:
    return text[:4].lower() == "sip:"


@dataclass(frozen=True, slots=True)
class SipTarget:
    """A robot's SIP URI: `sip:[user@]host[:port][;transport=udp|tcp]`."""

    uri: str
    user: str | None
    host: str
    port: int
    transport: Transport

    @classmethod
    def parse(cls, text: str) -> SipTarget:
        match = _SIP_URI.match(text.strip())
        if match is None:
            raise ValueError(f"not a SIP URI: {text!r} (e.g. sip:robot@127.0.0.1:5060)")
        params = dict(
            (p.partition("=")[0].lower(), p.partition("=")[2].lower())
            for p in (match.group("params") or "").split(";")
            if p
        )
        transport = params.get("transport", "udp")
        if transport not in TRANSPORTS:
            raise ValueError(f"{text}: transport={transport} is not supported (udp or tcp)")
        port = int(match.group("port") or 5060)
        if not 0 < port < 65536:
            raise ValueError(f"{text}: port {port} is out of range")
        host = match.group("host").strip("[]")
        return cls(text.strip(), match.group("user"), host, port, cast(Transport, transport))

    def local_address(self) -> str:
        """The address this machine sends from towards the robot (loopback for 127.0.0.1)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            info = socket.getaddrinfo(self.host, self.port, family, socket.SOCK_DGRAM)
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(info[0][4])  # a UDP "connect" sends nothing: it picks a route
                return str(probe.getsockname()[0])
        except OSError as exc:
            raise ValueError(f"cannot reach {self.host}: {exc}") from None
