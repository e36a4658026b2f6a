"""`twilio` in config.json: the Media Streams path on the robot's port, and who may stream to it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TwilioSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: str = "/twilio"
    auth_token_env: str | None = Field(
        None,
        description="env var holding the Twilio account's Auth Token: the handshake's "
        "X-Twilio-Signature must be valid for it",
    )
    public_url: str | None = Field(
        None,
        description="the <Stream> url exactly as in the TwiML (wss://host/twilio), which Twilio "
        "signs; default: wss:// + the request's Host header + its path",
    )
    token_env: str | None = Field(
        None,
        description="env var holding a shared token, accepted as 'Authorization: Bearer', as the "
        "Basic auth password, or as the start message's customParameters.token",
    )
