"""`yandex` ASR: Yandex SpeechKit synchronous recognition of short audio (API v1).

One `POST https://stt.api.cloud.yandex.net/speech/v1/stt:recognize?format=lpcm&sampleRateHertz=8000
&lang=ru-RU[&topic=…][&folderId=…]` per utterance, the body raw 16-bit little-endian PCM, the
answer `{"result": "<text>"}`. The call's 8 kHz audio is sent as it is (8000, 16000 and 48000 Hz
are accepted; anything else is resampled to 16 kHz). The service takes at most 30 s and 1 MB: a
longer utterance is cut to its first 30 s. Credentials: see providers/yandex_cloud.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.audio.resample import resample
from voiceplat.providers import cloud_http
from voiceplat.providers.base import ASR, ASRSettings, Transcript, register
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.yandex_cloud import YandexAuthOptions, YandexCredentials

URL = "https://stt.api.cloud.yandex.net/speech/v1/stt:recognize"
RATES = (8000, 16000, 48000)
MAX_SECONDS = 30
MAX_ANSWER_BYTES = 1 << 20


class YandexASRSettings(ASRSettings, YandexAuthOptions, cloud_http.HttpOptions):
    """Settings of the `yandex` ASR."""

    language: str | None = Field(
        "ru-RU", description="Recognition language: ru-RU, en-US, kk-KZ, … ('auto' is not v1)."
    )
    topic: str | None = Field(
        None, description="Language model (v1 `topic`): general (default), general:rc, …"
    )
    profanity_filter: bool = Field(False, description="Mask profanity in the transcript.")
    raw_results: bool = Field(False, description="Numbers as words (true) or digits (false).")
    url: str = Field(URL, description="Recognition endpoint (tests point it at a fake server).")


@register("asr", "yandex")
class YandexASR(HttpProvider, ASR):
    Settings = YandexASRSettings
    settings: YandexASRSettings

    def __init__(self, settings: YandexASRSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self.credentials = YandexCredentials(settings, env)

    def problems(self) -> list[str]:
        return self.credentials.problems() + cloud_http.options_problems(self.settings, self.env)

    def _secrets(self) -> list[str]:
        return self.credentials.secrets

    def _error_prefix(self) -> str:
        return f"Yandex SpeechKit ASR at {self.settings.url}"

    def params(self, rate: int, language: str | None) -> dict[str, str]:
        params = {
            "format": "lpcm",
            "sampleRateHertz": str(rate),
            "lang": language or self.settings.language or "ru-RU",
        }
        if self.settings.topic:
            params["topic"] = self.settings.topic
        if self.settings.profanity_filter:
            params["profanityFilter"] = "true"
        if self.settings.raw_results:
            params["rawResults"] = "true"
        if self.credentials.folder_id:
            params["folderId"] = self.credentials.folder_id
        return params

    async def transcribe(self, audio: Pcm, language: str | None) -> Transcript:
        if audio.rate not in RATES:
            audio = resample(audio, 16000)
        data = audio.data[: MAX_SECONDS * audio.rate * 2]
        params = self.params(audio.rate, language)

        async def recognize() -> str:
            client = self._http.get()
            request = client.build_request(
                "POST",
                self.settings.url,
                params=params,
                content=data,
                headers={**self.credentials.headers(), "Content-Type": "application/octet-stream"},
            )
            return self._text(await cloud_http.read_body(client, request, MAX_ANSWER_BYTES))

        text = await self._retrying_call(recognize, what="transcript")
        return Transcript(text=text, language=params["lang"])

    def _text(self, body: bytes) -> str:
        try:
            answer = json.loads(body)
        except ValueError:
            raise self._error(f"malformed answer {body[:100]!r}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("result"), str):
            problem = cloud_http.message_of(answer) if isinstance(answer, dict) else None
            raise self._error(problem or f"answer without a result: {body[:100]!r}")
        return answer["result"].strip()
