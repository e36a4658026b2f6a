"""`zvukogram` TTS: Zvukogram's quick synthesis of short texts, fetched and converted to 8 kHz.

Step 1: `POST https://zvukogram.com/index.php?r=api/text`, a form with `token`, `email`, `voice`,
`text` (at most 1000 characters), `format`, `speed` (0.1-2.0) and optionally `pitch` (-20..20),
`emotion` (good, evil, neutral; not every voice), `bitrate`. The JSON answer has `status`
(1 done, 0 in progress, -1 error), `file` (a link to the audio) or `error`.
Step 2: GET that file, decode it and resample it to `sample_rate` (8 kHz by default).

The file is asked for as WAV by default: it decodes with no extra package (audio_files.py). `mp3`
works too when `soundfile` (the `cloud` extra) is installed. Nothing is heard before the whole
file is there, so time to first audio is the service's synthesis time plus the download.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Literal
from urllib.parse import urljoin

from pydantic import Field

from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.audio.resample import resample
from voiceplat.providers import cloud_http
from voiceplat.providers.base import TTS, TTSSettings, register
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.tts import audio_files
from voiceplat.providers.tts.local_audio import speakable

API_URL = "https://zvukogram.com/index.php?r=api/text"
MAX_TEXT = 1000
MAX_FILE_BYTES = 20 << 20


class ZvukogramSettings(TTSSettings, cloud_http.HttpOptions):
    """Settings of the `zvukogram` TTS."""

    voice: str = Field("Владимир", min_length=1, description="Voice name, as Zvukogram lists it.")
    speed: float = Field(1.0, ge=0.1, le=2.0, description="Playback speed, 1.0 is normal.")
    pitch: float | None = Field(None, ge=-20, le=20, description="Voice pitch, 0 is normal.")
    emotion: Literal["good", "evil", "neutral"] | None = Field(
        None, description="Emotional colouring, for the voices that have it."
    )
    format: Literal["wav", "mp3"] = Field(
        "wav", description="File format asked for; mp3 needs soundfile (the `cloud` extra)."
    )
    bitrate: int | None = Field(None, gt=0, description="Zvukogram's `bitrate` (e.g. 48000).")
    sample_rate: int | None = Field(
        None, ge=8000, le=48000, description="Rate of the audio handed on; none: 8000."
    )
    timeout_s: float = Field(
        20.0, gt=0, description="Synthesis and download of one sentence, retries included."
    )
    token_env: str = Field("ZVUKOGRAM_TOKEN", description="NAME of the env var with the token.")
    email_env: str = Field(
        "ZVUKOGRAM_EMAIL", description="NAME of the env var with the account email."
    )
    api_url: str = Field(API_URL, description="Synthesis endpoint (tests point it elsewhere).")


@register("tts", "zvukogram")
class ZvukogramTTS(HttpProvider, TTS):
    Settings = ZvukogramSettings
    settings: ZvukogramSettings

    @property
    def _token(self) -> str:
        return self.env.get(self.settings.token_env, "").strip()

    @property
    def _email(self) -> str:
        return self.env.get(self.settings.email_env, "").strip()

    def problems(self) -> list[str]:
        found = cloud_http.options_problems(self.settings, self.env)
        if not self._token:
            found.append(
                cloud_http.missing_env(self.settings.token_env, what="Zvukogram API token")
            )
        if not self._email:
            found.append(
                cloud_http.missing_env(self.settings.email_env, what="Zvukogram account email")
            )
        if self.settings.format == "mp3" and not audio_files.mp3_supported():
            found.append(
                "format mp3 needs the soundfile package: pip install 'voiceplat[cloud]' "
                '(or use "format": "wav")'
            )
        return found

    def _secrets(self) -> list[str]:
        return [self._token]

    def _error_prefix(self) -> str:
        return f"Zvukogram TTS (voice {self.settings.voice})"

    def form(self, text: str) -> dict[str, str]:
        settings = self.settings
        form = {
            "token": self._token,
            "email": self._email,
            "voice": settings.voice,
            "text": text,
            "format": settings.format,
            "speed": f"{settings.speed:g}",
        }
        if settings.pitch is not None:
            form["pitch"] = f"{settings.pitch:g}"
        if settings.emotion:
            form["emotion"] = settings.emotion
        if settings.bitrate:
            form["bitrate"] = str(settings.bitrate)
        return form

    async def synthesize(self, text: str) -> AsyncIterator[Pcm]:
        if not speakable(text):
            return
        if len(text) > MAX_TEXT:
            raise self._error(f"text of {len(text)} characters; the API takes {MAX_TEXT}")
        pcm = await self._retrying_call(lambda: self._synthesize_once(text), what="audio")
        yield pcm

    async def _synthesize_once(self, text: str) -> Pcm:
        client = self._http.get()
        request = client.build_request("POST", self.settings.api_url, data=self.form(text))
        link = self._file_link(await cloud_http.read_body(client, request, 1 << 16))
        data = await cloud_http.read_body(client, client.build_request("GET", link), MAX_FILE_BYTES)
        rate = self.settings.sample_rate or CALL_RATE
        try:
            return await asyncio.to_thread(lambda: resample(audio_files.decode(data), rate))
        except audio_files.AudioFileError as exc:
            raise cloud_http.HttpFailure(f"bad audio file at {link}: {exc}") from None

    def _file_link(self, body: bytes) -> str:
        try:
            answer = json.loads(body)
        except ValueError:
            raise cloud_http.HttpFailure(f"malformed answer {body[:100]!r}") from None
        if not isinstance(answer, dict):
            raise cloud_http.HttpFailure(f"malformed answer {body[:100]!r}")
        status = str(answer.get("status", ""))
        if status == "1" and isinstance(answer.get("file"), str) and answer["file"]:
            return urljoin(self.settings.api_url, answer["file"])
        if status == "-1" or answer.get("error"):
            raise cloud_http.HttpFailure(f"synthesis failed: {answer.get('error') or 'status -1'}")
        raise cloud_http.HttpFailure(f"no file in the answer (status {status or 'missing'})")
