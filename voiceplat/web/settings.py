"""The web service's settings: where it listens, its access token, the seed services' limits."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from pydantic import BaseModel, Field, SecretStr

TOKEN_VARIABLE = "VOICEPLAT_WEB_TOKEN"
MIN_TOKEN_CHARS = 16
"""A shorter token is guessable; it is refused rather than trusted with recordings."""


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, "localhost")."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


class WebSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token: SecretStr | None = None
    """VOICEPLAT_WEB_TOKEN: every page and API (not /health) asks for it when set."""
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0)
    max_audio_s: float = Field(60.0, gt=0)
    rate_per_minute: int = Field(20, gt=0)
    """Seed services (/api/v1/*): requests per client and minute."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], host: str = "127.0.0.1", port: int = 8000
    ) -> WebSettings:
        """Settings for `host`:`port` with the token from `env` (empty counts as unset)."""
        token = env.get(TOKEN_VARIABLE, "").strip()
        return cls(host=host, port=port, token=SecretStr(token) if token else None)

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None

    def problems(self) -> list[str]:
        """What stops the service from starting safely (empty: it may start)."""
        token = self.token_value()
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            return [
                f"{TOKEN_VARIABLE} is {len(token)} characters long; use at least "
                f"{MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 24`)"
            ]
        if token is None and not is_loopback(self.host):
            return [
                f"refusing to listen on {self.host}: the pages show call recordings and "
                f"transcripts (personal data); set {TOKEN_VARIABLE} to a secret of at least "
                f"{MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`), or listen on "
                "127.0.0.1 (the default)"
            ]
        return []
