"""`openai_realtime`: OpenAI's Realtime API (GA) over a WebSocket.

`wss://api.openai.com/v1/realtime?model=<model>` with `Authorization: Bearer <key>`; the key is read
from the env files under `api_key_env`. OpenAI takes PCM only at 24 kHz, or G.711 mu-law at 8 kHz
(`audio_format: audio/pcmu`: the call's own rate, no resampling at all).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from voiceplat.providers.base import register
from voiceplat.providers.realtime.connection import ProtocolRealtime, ProtocolRealtimeSettings


class OpenAIRealtimeSettings(ProtocolRealtimeSettings):
    """Settings of the `openai_realtime` provider."""

    url: str = "wss://api.openai.com/v1/realtime"
    model: str = Field(
        "gpt-realtime-2.1",
        description="gpt-realtime-2.1: the successor OpenAI names for gpt-realtime (deprecated, "
        "shutdown 2027-01-20)",
    )
    voice: str | None = Field("marin", description="alloy, ash, ballad, cedar, coral, echo, marin…")
    api_key_env: str = "OPENAI_API_KEY"
    input_rate: Literal[24000] = Field(24000, description="OpenAI takes PCM at 24 kHz only")
    output_rate: Literal[24000] = Field(24000, description="OpenAI gives PCM at 24 kHz only")
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    renew_after_s: float | None = Field(None, gt=0, description="sessions last up to 60 min")


@register("realtime", "openai_realtime")
class OpenAIRealtime(ProtocolRealtime):
    Settings = OpenAIRealtimeSettings
    settings: OpenAIRealtimeSettings

    def endpoint(self) -> str:
        return f"{self.settings.url}?model={self.settings.model}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}
