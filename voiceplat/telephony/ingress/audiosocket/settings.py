"""`audiosocket` in config.json: the robot's AudioSocket listener (absent: none)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.telephony.ingress.sip.settings import PRIVATE_NETWORKS, Cidr, IpNetwork


class AudioSocketSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=5270, ge=0, le=65535)
    allow_from: list[Cidr] = Field(default_factory=lambda: list(PRIVATE_NETWORKS))
    """Who may connect (AudioSocket has no authentication): loopback and private networks by
    default; "0.0.0.0/0" and "::/0" for anyone."""
    lead_ms: int = Field(default=100, ge=20, le=1000)
    """Robot audio sent ahead of real time. Asterisk writes frames to the call as they come, so
    the lead only covers the robot's own event-loop delays, and what was sent plays even after
    a barge-in. 100 ms: no underrun at 100 calls in one process here; 40 ms gave one underrun
    in every other call (see the README's table)."""
    lookup_ttl_s: float = Field(default=60.0, gt=0)
    """How long caller/callee registered for a UUID (GET /calls/<uuid>?caller=&callee=) wait
    for that UUID's call."""

    def networks(self) -> list[IpNetwork]:
        return [ipaddress.ip_network(cidr, strict=False) for cidr in self.allow_from]

    def summary(self) -> str:
        everyone = {"0.0.0.0/0", "::/0"} <= set(self.allow_from)
        who = "from ANY address" if everyone else f"from {len(self.allow_from)} networks"
        return f"audiosocket: {self.host}:{self.port}, {who}"
