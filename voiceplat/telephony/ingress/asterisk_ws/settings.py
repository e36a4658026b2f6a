"""`asterisk_ws` in config.json: the chan_websocket path on the robot's port, and its auth."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.telephony.ingress.sip.settings import EnvName


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

    def refusal(self, authorization: str | None, env: Mapping[str, str]) -> str | None:
        """Why a connection with this Authorization header is refused; None: let in."""
        if self.password_env is None:
            return None
        password = env.get(self.password_env) or None
        if password is None:
            return f"asterisk_ws.password_env: the variable {self.password_env} is not set"
        if not authorization or not authorization.lower().startswith("basic "):
            return "unauthorized: Basic auth required (username/password in websocket_client.conf)"
        try:
            user, _, given = (
                base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return "unauthorized: malformed Basic credentials"
        expected_user = self.username or user
        good_user = hmac.compare_digest(user.encode(), expected_user.encode())
        if not (hmac.compare_digest(given.encode(), password.encode()) and good_user):
            return "unauthorized: wrong username or password"
        return None
