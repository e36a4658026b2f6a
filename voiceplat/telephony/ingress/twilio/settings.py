"""`twilio` in config.json: the Media Streams path on the robot's port."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TwilioSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: str = "/twilio"
