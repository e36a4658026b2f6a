"""`audio_stream` in config.json: the mod_audio_stream path and FreeSWITCH's event socket."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.telephony.media_auth import UNSET_MESSAGE, Refusal

DEFAULT_ESL_PASSWORD = "ClueCon"
"""FreeSWITCH's own default (event_socket.conf.xml); change it on any reachable FreeSWITCH."""
BEARER_REQUIRED = "unauthorized: 'Authorization: Bearer <token>' required (STREAM_EXTRA_HEADERS)\n"


class AudioStreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: str = "/audio_stream"
    esl_host: str = Field("127.0.0.1", description="FreeSWITCH's event socket (mod_event_socket)")
    esl_port: int = Field(8021, ge=1, le=65535)
    esl_password_env: str | None = Field(
        None,
        description="env var holding the event socket's password; unset: FreeSWITCH's default "
        "ClueCon",
    )
    token_env: str | None = Field(
        None,
        description="env var holding a token the WebSocket must present as 'Authorization: "
        "Bearer <token>' (set it with the channel variable STREAM_EXTRA_HEADERS)",
    )
    chunk_ms: int = Field(
        200,
        ge=20,
        le=2000,
        description="robot audio per streamAudio message: each becomes one file FreeSWITCH plays",
    )

    def esl_password(self, env: Mapping[str, str]) -> str:
        if self.esl_password_env:
            return env.get(self.esl_password_env) or DEFAULT_ESL_PASSWORD
        return DEFAULT_ESL_PASSWORD

    def check(self, authorization: str | None, env: Mapping[str, str]) -> Refusal | None:
        """The handshake's refusal (a 401: `media_auth.HandshakeAuth`) for this Authorization
        header; None: let in."""
        if self.token_env is None:
            return None
        token = env.get(self.token_env) or None
        if token is None:
            detail = f"audio_stream.token_env: the variable {self.token_env} is not set"
            return Refusal("unset", UNSET_MESSAGE, detail)
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":  # none at all, or another scheme
            return Refusal("malformed" if scheme else "missing", BEARER_REQUIRED)
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return Refusal("wrong", "unauthorized: wrong token\n")
        return None

    def refusal(self, authorization: str | None, env: Mapping[str, str]) -> str | None:
        """Why a WebSocket with this Authorization header is refused (the text a channel ends
        with, where no handshake hook ran); None: let in."""
        found = self.check(authorization, env)
        return None if found is None else (found.detail or found.message.strip())
