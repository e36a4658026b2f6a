"""`elevenlabs` TTS: ElevenLabs streaming speech, straight in the telephone format.

`POST https://api.elevenlabs.io/v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000`, header
`xi-api-key`, JSON `{"text", "model_id", "voice_settings"?, "language_code"?}`. The body streams as
it is synthesised: `ulaw_8000` is G.711 mu-law at 8 kHz (decoded here, no resampling),
`pcm_16000` headerless 16-bit PCM at 16 kHz. The seed reaches ElevenLabs through a SOCKS5 proxy:
`proxy: "socks5://host:port"` (or `proxy_env` for a URL with a password) needs the `cloud` extra
(`httpx[socks]`), imported only when such a proxy is configured.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.audio.g711 import ulaw_decode
from voiceplat.audio.pcm import Pcm
from voiceplat.providers import cloud_http
from voiceplat.providers.base import TTS, TTSSettings, register
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.tts.local_audio import at_rate, speakable

BASE_URL = "https://api.elevenlabs.io/v1"
FORMAT_RATES = {"ulaw_8000": 8000, "pcm_16000": 16000}


class VoiceSettings(BaseModel):
    """ElevenLabs `voice_settings`; unset fields keep the voice's stored settings."""

    model_config = ConfigDict(extra="forbid")

    stability: float | None = Field(None, ge=0, le=1)
    similarity_boost: float | None = Field(None, ge=0, le=1)
    style: float | None = Field(None, ge=0, le=1)
    use_speaker_boost: bool | None = None
    speed: float | None = Field(None, ge=0.7, le=1.2)


class ElevenLabsSettings(TTSSettings, cloud_http.HttpOptions):
    """Settings of the `elevenlabs` TTS."""

    voice: str = Field(
        "JBFqnCBsd6RMkjVDRZzb",
        pattern=r"^[A-Za-z0-9]+$",
        description="Voice id (GET /v1/voices lists them); the default is a premade voice.",
    )
    model_id: str = Field(
        "eleven_flash_v2_5",
        description="eleven_flash_v2_5 (fastest), eleven_turbo_v2_5, eleven_multilingual_v2, …",
    )
    output_format: Literal["ulaw_8000", "pcm_16000"] = Field(
        "ulaw_8000", description="ulaw_8000: telephone audio as is; pcm_16000: wider band."
    )
    language_code: str | None = Field(None, description="ISO 639-1 language to enforce (ru).")
    voice_settings: VoiceSettings = Field(default_factory=VoiceSettings)
    api_key_env: str = Field(
        "ELEVENLABS_API_KEY", description="NAME of the env var with the API key."
    )
    base_url: str = Field(BASE_URL, description="API root (tests point it at a fake server).")


@register("tts", "elevenlabs")
class ElevenLabsTTS(HttpProvider, TTS):
    Settings = ElevenLabsSettings
    settings: ElevenLabsSettings

    @property
    def _api_key(self) -> str:
        return self.env.get(self.settings.api_key_env, "").strip()

    @property
    def url(self) -> str:
        voice = quote(self.settings.voice, safe="")
        return f"{self.settings.base_url.rstrip('/')}/text-to-speech/{voice}/stream"

    def problems(self) -> list[str]:
        found = cloud_http.options_problems(self.settings, self.env)
        if not self._api_key:
            found.append(
                cloud_http.missing_env(self.settings.api_key_env, what="ElevenLabs API key")
            )
        return found

    def _secrets(self) -> list[str]:
        return [self._api_key]

    def _error_prefix(self) -> str:
        return f"ElevenLabs TTS (voice {self.settings.voice})"

    def body(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "model_id": self.settings.model_id}
        voice_settings = self.settings.voice_settings.model_dump(exclude_none=True)
        if voice_settings:
            body["voice_settings"] = voice_settings
        if self.settings.language_code:
            body["language_code"] = self.settings.language_code
        return body

    async def synthesize(self, text: str) -> AsyncIterator[Pcm]:
        if not speakable(text):
            return
        chunks = self._retrying_stream(lambda: self._attempt(text), first_what="audio")
        async with contextlib.aclosing(at_rate(chunks, self.settings.sample_rate)) as audio:
            async for pcm in audio:
                yield pcm

    async def _attempt(self, text: str) -> AsyncGenerator[Pcm, None]:
        client = self._http.get()
        request = client.build_request(
            "POST",
            self.url,
            params={"output_format": self.settings.output_format},
            json=self.body(text),
            headers={"xi-api-key": self._api_key, "Accept": "audio/*"},
        )
        response = await cloud_http.send(client, request)
        ulaw = self.settings.output_format == "ulaw_8000"
        rate = FORMAT_RATES[self.settings.output_format]
        try:
            if response.headers.get("content-type", "").startswith("application/json"):
                body = await cloud_http.read_limited(response, 1 << 16)
                raise cloud_http.HttpFailure(
                    f"expected audio, got {cloud_http.error_message(body)!r}"
                )
            carry = b""
            async for data in response.aiter_bytes():
                if ulaw:
                    yield Pcm(ulaw_decode(data), rate)  # one byte is one sample
                    continue
                data = carry + data
                cut = len(data) - len(data) % 2
                carry = data[cut:]
                if cut:
                    yield Pcm(data[:cut], rate)
        finally:
            await response.aclose()
