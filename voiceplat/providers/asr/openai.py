"""`openai` ASR: any OpenAI-compatible `POST {base_url}/audio/transcriptions` endpoint.

Works with OpenAI (whisper-1, gpt-4o-transcribe, gpt-4o-mini-transcribe), vLLM's Whisper serving,
speaches and the faster-whisper servers: one request per utterance, `multipart/form-data` with
`file` (the utterance as a 16-bit mono WAV, at the call's 8 kHz or resampled to 16 kHz:
`upload_rate`), `model`, `language` (ISO 639-1: "ru-RU" is sent as "ru"), `temperature`,
`prompt` (vocabulary hints) and `response_format`.

`verbose_json` (the default; whisper-1 and the Whisper servers) answers with `segments`, each with
Whisper's `avg_logprob` and `no_speech_prob`: they are pooled over the segments the way the local
`faster_whisper` provider pools its windows and put in `Transcript.details` under the same names,
so the utterance filter (voiceplat.turns.utterance_filter) tells words from noise alike for a
remote model. `json` (gpt-4o-*-transcribe take only json or text) gives the text alone, and the
filter then judges by the text.

The API key is read from the env under `api_key_env`; a server on loopback or a private network
may need none. Connection errors and 5xx answers are retried (`retries`), 4xx answers (401, 429,
a bad request) are not: a caller is waiting, and a rate-limited request would wait longer than
its turn lasts. `timeout_s` bounds the whole request, retries included.
"""

from __future__ import annotations

import io
import json
import time
import wave
from typing import Any, Literal

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.audio.resample import resample
from voiceplat.providers import cloud_http
from voiceplat.providers.asr.faster_whisper import Window, pooled_confidence
from voiceplat.providers.base import ASR, ASRSettings, Transcript, register
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.llm.openai import is_local_url

MAX_ANSWER_BYTES = 1 << 20


class OpenAIASRSettings(ASRSettings, cloud_http.HttpOptions):
    """Settings of the `openai` ASR (any OpenAI-compatible /audio/transcriptions endpoint)."""

    base_url: str = Field(
        "https://api.openai.com/v1", description="API root; /audio/transcriptions is appended."
    )
    model: str = Field(
        "whisper-1",
        description="whisper-1, gpt-4o-mini-transcribe, or the server's model name "
        "(speaches: Systran/faster-whisper-small, …).",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="NAME of the env variable (robot .env or .env) with the key."
    )
    response_format: Literal["verbose_json", "json"] = Field(
        "verbose_json",
        description="verbose_json: text plus Whisper's confidence per segment; json: text only "
        "(gpt-4o-*-transcribe accept only json).",
    )
    upload_rate: Literal[8000, 16000] = Field(
        8000,
        description="Sample rate of the uploaded WAV: 8000 sends the call audio as it is (half "
        "the bytes; Whisper servers resample), 16000 resamples here first.",
    )
    temperature: float = Field(0.0, ge=0, le=1, description="Decoding temperature (0: greedy).")
    prompt: str | None = Field(
        None, description="Text that guides spelling and vocabulary (names, terms)."
    )
    extra_headers: dict[str, str] = Field(
        default_factory=dict, description="Added to every request (e.g. a project id)."
    )
    extra_form: dict[str, str] = Field(
        default_factory=dict, description="Extra form fields for a server's own options."
    )


def wav_bytes(pcm: Pcm) -> bytes:
    """`pcm` as a complete mono 16-bit WAV file, in memory."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(pcm.rate)
        wav.writeframes(pcm.data)
    return buffer.getvalue()


def iso_language(language: str | None) -> str | None:
    """The ISO 639-1 code the API takes: "ru-RU" → "ru"; None or "auto" → None (detect)."""
    if not language or language.lower() == "auto":
        return None
    return language.split("-")[0].split("_")[0].lower()


def segment_windows(segments: Any) -> list[Window]:
    """verbose_json segments as the windows `pooled_confidence` weighs; malformed ones skipped."""
    windows = []
    for segment in segments if isinstance(segments, list) else []:
        if not isinstance(segment, dict):
            continue
        logprob, no_speech = segment.get("avg_logprob"), segment.get("no_speech_prob")
        if not isinstance(logprob, int | float) or not isinstance(no_speech, int | float):
            continue
        tokens = segment.get("tokens")
        start, end = segment.get("start", 0.0), segment.get("end", 0.0)
        duration = (
            end - start if isinstance(start, int | float) and isinstance(end, int | float) else 0.0
        )
        windows.append(
            Window(
                str(segment.get("text", "")).strip(),
                float(logprob),
                float(no_speech),
                len(tokens) if isinstance(tokens, list) else 0,
                float(duration),
            )
        )
    return windows


@register("asr", "openai")
class OpenAIASR(HttpProvider, ASR):
    Settings = OpenAIASRSettings
    settings: OpenAIASRSettings

    @property
    def _api_key(self) -> str:
        return self.env.get(self.settings.api_key_env, "").strip()

    @property
    def url(self) -> str:
        return f"{self.settings.base_url.rstrip('/')}/audio/transcriptions"

    def problems(self) -> list[str]:
        found = cloud_http.options_problems(self.settings, self.env)
        if not self._api_key and not is_local_url(self.settings.base_url):
            found.append(
                cloud_http.missing_env(self.settings.api_key_env, what="transcription API key")
            )
        return found

    def _secrets(self) -> list[str]:
        return [self._api_key]

    def _error_prefix(self) -> str:
        return f"OpenAI-compatible ASR at {self.url} (model {self.settings.model})"

    def form(self, language: str | None) -> dict[str, str]:
        fields = {
            "model": self.settings.model,
            "response_format": self.settings.response_format,
            "temperature": f"{self.settings.temperature:g}",
        }
        if code := iso_language(language or self.settings.language):
            fields["language"] = code
        if self.settings.prompt:
            fields["prompt"] = self.settings.prompt
        return fields | self.settings.extra_form

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.settings.extra_headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def transcribe(self, audio: Pcm, language: str | None) -> Transcript:
        if audio.rate != self.settings.upload_rate:
            audio = resample(audio, self.settings.upload_rate)
        upload = wav_bytes(audio)
        fields = self.form(language)

        async def recognize() -> bytes:
            client = self._http.get()
            request = client.build_request(
                "POST",
                self.url,
                data=fields,
                files={"file": ("utterance.wav", upload, "audio/wav")},
                headers=self._headers(),
            )
            try:
                return await cloud_http.read_body(client, request, MAX_ANSWER_BYTES)
            except cloud_http.HttpFailure as failure:
                if not self._api_key and failure.status in (401, 403):
                    failure.message += f" ({self.settings.api_key_env} is not set)"
                raise

        started = time.perf_counter()
        body = await self._retrying_call(recognize, what="transcript")
        request_ms = round((time.perf_counter() - started) * 1000, 1)
        return self._transcript(body, fields.get("language"), request_ms)

    def _transcript(self, body: bytes, language: str | None, request_ms: float) -> Transcript:
        try:
            answer = json.loads(body)
        except ValueError:
            raise self._error(f"malformed answer {body[:100]!r}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            problem = cloud_http.message_of(answer) if isinstance(answer, dict) else None
            raise self._error(problem or f"answer without a text: {body[:100]!r}")
        details: dict[str, Any] = {"request_ms": request_ms, "path": "remote"}
        details.update(pooled_confidence(segment_windows(answer.get("segments"))))
        detected = answer.get("language")
        # OpenAI names the language ("russian"), Whisper servers give the code ("ru").
        if not isinstance(detected, str) or len(detected) > 3:
            detected = language
        return Transcript(text=answer["text"].strip(), language=detected, details=details)
