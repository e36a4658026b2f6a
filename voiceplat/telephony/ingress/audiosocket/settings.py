"""`audiosocket` in config.json: the robot's AudioSocket listener (absent: none)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AudioSocketSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 5270
