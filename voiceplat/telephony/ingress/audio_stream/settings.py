"""`audio_stream` in config.json: the mod_audio_stream path and FreeSWITCH's event socket."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AudioStreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: str = "/audio_stream"
