"""`yandex` TTS: Yandex SpeechKit synthesis (API v1), raw LPCM straight at the call's rate.

`POST https://tts.api.cloud.yandex.net/speech/v1/tts:synthesize`, a URL-encoded form: `text`,
`lang`, `voice`, `emotion` (the voice's role or tone, e.g. good, neutral, friendly, strict — which
ones depend on the voice), `speed` (0.1-3.0), `format=lpcm`, `sampleRateHertz` (8000 by default, so
the audio needs no resampling; the seed's `sample_rate: 48000` is honoured), `folderId`. The answer
is headerless 16-bit little-endian mono PCM, yielded as it arrives. Credentials: see
providers/yandex_cloud.py.

A request's body may hold at most 15 KB, URL-encoded, and its text at most 5,000 characters; a
Cyrillic letter takes 6 bytes encoded, so about 2,500 of them fit. A longer text is split at
sentence ends (else at spaces) into pieces that fit, synthesised one after the other.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from functools import partial
from typing import Literal
from urllib.parse import urlencode

from pydantic import Field

from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.providers import cloud_http
from voiceplat.providers.base import TTS, TTSSettings, register
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.tts.local_audio import speakable
from voiceplat.providers.yandex_cloud import YandexAuthOptions, YandexCredentials

URL = "https://tts.api.cloud.yandex.net/speech/v1/tts:synthesize"
MAX_TEXT = 5000  # characters of `text`
MAX_BODY = 15_000  # bytes of the URL-encoded form ("15 KB"; the smaller reading of it)
_SENTENCE_END = re.compile(r"(?<=[.!?…;])\s+")


class YandexTTSSettings(TTSSettings, YandexAuthOptions, cloud_http.HttpOptions):
    """Settings of the `yandex` TTS."""

    voice: str = Field(
        "alena",
        pattern=r"^[a-z_]+$",
        description="SpeechKit voice: alena, jane, filipp, ermil, zahar, omazh, madirus, …",
    )
    language: str = Field("ru-RU", description="`lang` of the request.")
    emotion: str | None = Field(
        None, description="Role or tone where the voice has them: neutral, good, evil, friendly…"
    )
    speed: float = Field(1.0, ge=0.1, le=3.0, description="Speech rate, 1.0 is normal.")
    sample_rate: Literal[8000, 16000, 48000] | None = Field(
        None, description="Rate asked of the service; none: 8000, the call's own rate."
    )
    url: str = Field(URL, description="Synthesis endpoint (tests point it at a fake server).")


@register("tts", "yandex")
class YandexTTS(HttpProvider, TTS):
    Settings = YandexTTSSettings
    settings: YandexTTSSettings

    def __init__(self, settings: YandexTTSSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self.credentials = YandexCredentials(settings, env)

    @property
    def rate(self) -> int:
        return self.settings.sample_rate or CALL_RATE

    def problems(self) -> list[str]:
        return self.credentials.problems() + cloud_http.options_problems(self.settings, self.env)

    def _secrets(self) -> list[str]:
        return self.credentials.secrets

    def _error_prefix(self) -> str:
        return f"Yandex SpeechKit TTS (voice {self.settings.voice})"

    def form(self, text: str) -> dict[str, str]:
        settings = self.settings
        form = {
            "text": text,
            "lang": settings.language,
            "voice": settings.voice,
            "speed": f"{settings.speed:g}",
            "format": "lpcm",
            "sampleRateHertz": str(self.rate),
        }
        if settings.emotion:
            form["emotion"] = settings.emotion
        if self.credentials.folder_id:
            form["folderId"] = self.credentials.folder_id
        return form

    def fits(self, text: str) -> bool:
        """Whether one request can carry `text` (the service's limits)."""
        return len(text) <= MAX_TEXT and len(urlencode(self.form(text))) <= MAX_BODY

    async def synthesize(self, text: str) -> AsyncIterator[Pcm]:
        if not speakable(text):
            return
        for piece in split_to_fit(text.strip(), self.fits):
            if not speakable(piece):
                continue
            # Retried only before a piece's first audio, as any stream (cloud_http.retries).
            chunks = self._retrying_stream(partial(self._attempt, piece), first_what="audio")
            async with contextlib.aclosing(chunks):
                async for pcm in chunks:
                    yield pcm

    async def _attempt(self, text: str) -> AsyncGenerator[Pcm, None]:
        client = self._http.get()
        request = client.build_request(
            "POST", self.settings.url, data=self.form(text), headers=self.credentials.headers()
        )
        response = await cloud_http.send(client, request)
        try:
            kind = response.headers.get("content-type", "")
            if kind.startswith(("application/json", "text/")):
                # A 200 with a JSON or text body is an error report, not audio.
                body = await cloud_http.read_limited(response, 1 << 16)
                raise cloud_http.HttpFailure(
                    f"expected audio, got {cloud_http.error_message(body)!r}"
                )
            carry = b""
            async for data in response.aiter_bytes():
                data = carry + data
                cut = len(data) - len(data) % 2  # an odd byte waits for its partner
                carry = data[cut:]
                if cut:
                    yield Pcm(data[:cut], self.rate)
        finally:
            await response.aclose()


def split_to_fit(text: str, fits: Callable[[str], bool]) -> list[str]:
    """`text` as few pieces that each `fit`: whole sentences where possible, else words, else
    characters (a "word" too long for one request)."""
    if fits(text):
        return [text]
    pieces: list[str] = []
    for unit in _units(text, fits):
        joined = f"{pieces[-1]} {unit}" if pieces else unit
        if pieces and fits(joined):
            pieces[-1] = joined
        else:
            pieces.append(unit)
    return pieces


def _units(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Sentences of `text`, those too long for one request cut into words or characters."""
    units: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if fits(sentence):
            units.append(sentence)
            continue
        for word in sentence.split():
            while not fits(word):
                cut = _longest_fitting_prefix(word, fits)
                units.append(word[:cut])
                word = word[cut:]
            units.append(word)
    return [unit for unit in units if unit]


def _longest_fitting_prefix(word: str, fits: Callable[[str], bool]) -> int:
    low, high = 1, len(word)  # a single character always fits
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(word[:middle]) else (low, middle - 1)
    return low
