"""`yandex_realtime`: Yandex AI Studio's realtime speech model, through its OpenAI-compatible API.

`wss://rest-assistant.api.cloud.yandex.net/v1/realtime/openai?model=gpt://<folder>/<model>` with
`Authorization: api-key <key>`. The key comes from the env files (`YANDEX_API_KEY`), the folder id
from `folder_id` or the env (`YANDEX_FOLDER_ID`). Caller audio goes up as PCM at 24 kHz; robot audio
comes back at the rate the session reports (Yandex's own example uses 44.1 kHz), read from
session.created/updated. The session asks for text and audio, as Yandex's examples do: the
robot's words come as response.output_text.*, for the call record. Yandex sessions last 5–10
minutes: `renew_after_s` opens a fresh one (with the conversation replayed) at a quiet moment
before that, and a dropped one is reconnected.
"""

from __future__ import annotations

from pydantic import Field

from voiceplat.providers.base import register
from voiceplat.providers.realtime.connection import ProtocolRealtime, ProtocolRealtimeSettings


class YandexRealtimeSettings(ProtocolRealtimeSettings):
    """Settings of the `yandex_realtime` provider."""

    url: str = "wss://rest-assistant.api.cloud.yandex.net/v1/realtime/openai"
    model: str = Field(
        "speech-realtime-250923", description="model name, or a full gpt://<folder>/<model> URI"
    )
    voice: str | None = Field("dasha", description="SpeechKit voices: dasha, alena, jane, kirill…")
    api_key_env: str = "YANDEX_API_KEY"
    folder_id: str | None = Field(None, description="the cloud folder; default: folder_id_env")
    folder_id_env: str = Field("YANDEX_FOLDER_ID", description="NAME of the env var with it")
    output_rate: int = Field(44100, ge=8000, le=48000, description="robot audio rate asked (pcm)")
    renew_after_s: float | None = Field(
        240.0, gt=0, description="sessions last 5–10 min: renew at a quiet moment after this"
    )


@register("realtime", "yandex_realtime")
class YandexRealtime(ProtocolRealtime):
    Settings = YandexRealtimeSettings
    settings: YandexRealtimeSettings
    # Yandex's own examples ask for ["text", "audio"] and read the robot's words from
    # response.output_text.*; nothing says a transcript comes with audio alone, and without the
    # words robot turns would be recorded empty.
    output_modalities = ("text", "audio")

    @property
    def folder_id(self) -> str:
        return (self.settings.folder_id or self.env.get(self.settings.folder_id_env, "")).strip()

    @property
    def model_uri(self) -> str:
        model = self.settings.model
        return model if model.startswith("gpt://") else f"gpt://{self.folder_id}/{model}"

    def missing(self) -> list[str]:
        missing = super().missing()
        if not self.folder_id and not self.settings.model.startswith("gpt://"):
            missing.append(self.settings.folder_id_env)
        return missing

    def problems(self) -> list[str]:
        hint = "; or set realtime.folder_id in config.json"
        return [
            line + hint if line.startswith(self.settings.folder_id_env) else line
            for line in super().problems()
        ]

    def endpoint(self) -> str:
        return f"{self.settings.url}?model={self.model_uri}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"api-key {self.api_key}"}
