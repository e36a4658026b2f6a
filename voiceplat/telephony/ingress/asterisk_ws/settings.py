"""`asterisk_ws` in config.json: the chan_websocket path on the robot's port, and its auth."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.telephony.ingress.sip.settings import EnvName
from voiceplat.telephony.media_auth import UNSET_MESSAGE, Refusal

BASIC_REQUIRED = "unauthorized: Basic auth required (username/password in websocket_client.conf)\n"


class AsteriskWsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: str = "/asterisk"
    username: str | None = Field(
        None, min_length=1, description="Basic auth: websocket_client.conf's username"
    )
    password_env: EnvName | None = Field(
        None,
        min_length=1,
        description="Basic auth: the variable holding websocket_client.conf's password; "
        "set = every connection must authenticate",
    )

    def check(self, authorization: str | None, env: Mapping[str, str]) -> Refusal | None:
        """The handshake's refusal (a 401: `media_auth.HandshakeAuth`) for this Authorization
        header; None: let in."""
        if self.password_env is None:
            return None
        password = env.get(self.password_env) or None
        if password is None:
            detail = f"asterisk_ws.password_env: the variable {self.password_env} is not set"
            return Refusal("unset", UNSET_MESSAGE, detail)
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "basic":  # none at all, or another scheme
            return Refusal("malformed" if scheme else "missing", BASIC_REQUIRED)
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):  # (binascii.Error is a ValueError)
            return Refusal("malformed", "unauthorized: malformed Basic credentials\n")
        user, _, given = decoded.partition(":")
        expected_user = self.username or user
        good_user = hmac.compare_digest(user.encode(), expected_user.encode())
        if not (hmac.compare_digest(given.encode(), password.encode()) and good_user):
            return Refusal("wrong", "unauthorized: wrong username or password\n")
        return None

    def refusal(self, authorization: str | None, env: Mapping[str, str]) -> str | None:
        """Why a connection with this Authorization header is refused (the text a channel ends
        with, where no handshake hook ran); None: let in."""
        found = self.check(authorization, env)
        return None if found is None else (found.detail or found.message.strip())
