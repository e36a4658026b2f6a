"""`openai` TTS: any OpenAI-compatible `POST {base_url}/audio/speech` endpoint, read as it streams.

Works with OpenAI (gpt-4o-mini-tts, tts-1), Kokoro-FastAPI (`model` "kokoro", voices like
"af_heart") and speaches. The request is JSON `{"model", "input", "voice", "response_format"}`
plus `speed` and `instructions` when set (and `extra_body`, e.g. Kokoro-FastAPI's
`lang_code`). `response_format`:

- `pcm` (default): headerless 16-bit little-endian mono samples at `pcm_rate` (24 kHz for
  OpenAI and Kokoro-FastAPI; speaches sends what its `sample_rate` asks for);
- `wav`: the same with a WAV header, whose rate is read from the header (streamed WAVs carry
  placeholder sizes, see wav_stream.py).

The body is read as it arrives and every piece becomes an audio chunk at once, so a caller hears
the first words while the server still synthesises the rest (servers that stream: OpenAI,
Kokoro-FastAPI, speaches; others send the whole clip, which then arrives as one burst). The
session resamples to the call's 8 kHz (`sample_rate` resamples here instead).

Errors: 4xx answers (401 bad key, 429 rate limit, 400 bad voice) end the sentence with the
provider's ProviderError and are not retried; connection errors and 5xx are retried up to
`retries` times, but only before the first audio (a caller must not hear half a sentence twice).
A 200 answer that is JSON, not audio, or holds no audio at all, is an error too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.providers import cloud_http
from voiceplat.providers.base import TTS, TTSSettings, register
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.llm.openai import is_local_url
from voiceplat.providers.tts.local_audio import at_rate, speakable
from voiceplat.providers.tts.wav_stream import WavStream, WavStreamError


class OpenAITTSSettings(TTSSettings, cloud_http.HttpOptions):
    """Settings of the `openai` TTS (any OpenAI-compatible /audio/speech endpoint)."""

    base_url: str = Field(
        "https://api.openai.com/v1", description="API root; /audio/speech is appended."
    )
    model: str = Field(
        "gpt-4o-mini-tts", description="gpt-4o-mini-tts, tts-1, kokoro, or the server's model."
    )
    voice: str = Field("alloy", min_length=1, description="alloy, nova, … or af_heart (Kokoro).")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="NAME of the env variable (robot .env or .env) with the key."
    )
    response_format: Literal["pcm", "wav"] = Field(
        "pcm", description="pcm: raw 16-bit samples at pcm_rate; wav: the rate from the header."
    )
    pcm_rate: int = Field(
        24000, ge=8000, le=48000, description="Sample rate of `pcm` answers (OpenAI: 24000)."
    )
    speed: float | None = Field(None, ge=0.25, le=4.0, description="Speaking rate (1 = normal).")
    instructions: str | None = Field(
        None, description="How to speak (tone, accent); gpt-4o-mini-tts only."
    )
    extra_headers: dict[str, str] = Field(
        default_factory=dict, description="Added to every request (e.g. a project id)."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Merged into the request JSON (a server's own options)."
    )


@register("tts", "openai")
class OpenAITTS(HttpProvider, TTS):
    Settings = OpenAITTSSettings
    settings: OpenAITTSSettings

    @property
    def _api_key(self) -> str:
        return self.env.get(self.settings.api_key_env, "").strip()

    @property
    def url(self) -> str:
        return f"{self.settings.base_url.rstrip('/')}/audio/speech"

    def problems(self) -> list[str]:
        found = cloud_http.options_problems(self.settings, self.env)
        if not self._api_key and not is_local_url(self.settings.base_url):
            found.append(cloud_http.missing_env(self.settings.api_key_env, what="speech API key"))
        return found

    def _secrets(self) -> list[str]:
        return [self._api_key]

    def _error_prefix(self) -> str:
        return f"OpenAI-compatible TTS at {self.url} (voice {self.settings.voice})"

    def body(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "input": text,
            "voice": self.settings.voice,
            "response_format": self.settings.response_format,
        }
        if self.settings.speed is not None:
            body["speed"] = self.settings.speed
        if self.settings.instructions:
            body["instructions"] = self.settings.instructions
        return body | self.settings.extra_body

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "audio/*", **self.settings.extra_headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

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
            "POST", self.url, json=self.body(text), headers=self._headers()
        )
        try:
            response = await cloud_http.send(client, request)
        except cloud_http.HttpFailure as failure:
            if not self._api_key and failure.status in (401, 403):
                failure.message += f" ({self.settings.api_key_env} is not set)"
            raise
        try:
            if response.headers.get("content-type", "").startswith("application/json"):
                body = await cloud_http.read_limited(response, 1 << 16)
                raise cloud_http.HttpFailure(
                    f"expected audio, got {cloud_http.error_message(body)!r}"
                )
            decoder = _Decoder(self.settings.response_format, self.settings.pcm_rate)
            async for data in response.aiter_bytes():
                if pcm := decoder.feed(data):
                    yield pcm
            if not decoder.samples:
                raise cloud_http.HttpFailure("the answer held no audio")
        finally:
            await response.aclose()


class _Decoder:
    """The body's bytes → Pcm chunks, for either format (an odd byte waits for its pair)."""

    def __init__(self, response_format: str, pcm_rate: int) -> None:
        self._wav = WavStream() if response_format == "wav" else None
        self._rate = pcm_rate
        self._carry = b""
        self.samples = 0

    def feed(self, data: bytes) -> Pcm | None:
        if self._wav is not None:
            try:
                pcm = self._wav.feed(data)
            except WavStreamError as exc:
                raise cloud_http.HttpFailure(f"bad WAV answer: {exc}") from None
        else:
            data = self._carry + data
            cut = len(data) - len(data) % 2
            self._carry = data[cut:]
            pcm = Pcm(data[:cut], self._rate) if cut else None
        if pcm is not None:
            self.samples += pcm.samples
        return pcm
