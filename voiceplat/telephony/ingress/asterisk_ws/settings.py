"""`asterisk_ws` in config.json: the chan_websocket path on the robot's port."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AsteriskWsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: str = "/asterisk"
