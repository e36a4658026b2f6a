"""`yandex` LLM: YandexGPT through the native Foundation Models API, streamed.

`POST https://llm.api.cloud.yandex.net/foundationModels/v1/completion` with
`{"modelUri": "gpt://<folder>/yandexgpt-lite/latest", "completionOptions": {"stream": true,
"temperature": …, "maxTokens": "…"}, "messages": [{"role", "text"}]}`. The answer is a series of
JSON objects, one per line, each holding the WHOLE text so far in
`result.alternatives[0].message.text` with a `status` (…_PARTIAL until …_FINAL); only the new
suffix is yielded. An `{"error": …}` object in the stream is a failure.

The same models are reachable through Yandex's OpenAI-compatible endpoint with the `openai`
provider (`base_url` https://llm.api.cloud.yandex.net/v1, `model` gpt://<folder>/yandexgpt-lite/latest,
`api_key_env` YANDEX_API_KEY); this native provider exists because the seed's config names it and
it needs no model URI in config.json. Both share providers/cloud_http (client, retries, masking).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

from pydantic import Field

from voiceplat.providers import cloud_http
from voiceplat.providers.base import LLM, LLMSettings, Message, ProviderError, register
from voiceplat.providers.cloud_http.provider import HttpProvider
from voiceplat.providers.yandex_cloud import YandexAuthOptions, YandexCredentials

URL = "https://llm.api.cloud.yandex.net/foundationModels/v1/completion"
FINAL_STATUSES = {
    "ALTERNATIVE_STATUS_FINAL",
    "ALTERNATIVE_STATUS_TRUNCATED_FINAL",  # max_tokens reached: a complete, if short, answer
    "ALTERNATIVE_STATUS_CONTENT_FILTER",  # the service's own refusal text is the answer
}


class YandexLLMSettings(LLMSettings, YandexAuthOptions, cloud_http.HttpOptions):
    """Settings of the `yandex` LLM (YandexGPT)."""

    model: str = Field(
        "yandexgpt-lite/latest",
        description="yandexgpt-lite/latest, yandexgpt/latest, yandexgpt/rc, … (the folder is "
        "taken from the env), or a full gpt://<folder>/<model>/<version> URI.",
    )
    timeout_s: float = Field(
        20.0, gt=0, description="Wait for the first token, then for each following chunk."
    )
    url: str = Field(URL, description="Completion endpoint (tests point it at a fake server).")


def cumulative_suffixes(
    objects: AsyncIterable[Any], fail: Callable[[str], ProviderError]
) -> AsyncIterator[str]:
    """The new part of each cumulative `result.alternatives[0].message.text`, until a final status."""

    async def suffixes() -> AsyncIterator[str]:
        sent = ""
        finished = False
        async for data in objects:
            if not isinstance(data, dict):
                raise fail(f"unexpected stream item {str(data)[:100]!r}")
            if "error" in data:
                raise fail(f"error in stream: {cloud_http.message_of(data)}")
            try:
                alternative = data["result"]["alternatives"][0]
                text = alternative["message"].get("text", "")
            except (KeyError, IndexError, TypeError, AttributeError):
                raise fail(f"unexpected stream item {json.dumps(data)[:100]!r}") from None
            if not text.startswith(sent):
                # Should not happen; what was said cannot be unsaid, so go on after the
                # common prefix rather than repeat or drop text.
                common = 0
                while common < min(len(text), len(sent)) and text[common] == sent[common]:
                    common += 1
                sent = sent[:common]
            if len(text) > len(sent):
                yield text[len(sent) :]
                sent = text
            if alternative.get("status") in FINAL_STATUSES:
                finished = True
        if not finished:
            raise fail("stream ended before the answer was complete (no final status)")

    return suffixes()


async def json_objects(
    chunks: AsyncIterable[str], fail: Callable[[str], ProviderError]
) -> AsyncIterator[Any]:
    """JSON values from a text stream of concatenated / newline-separated objects."""
    decoder = json.JSONDecoder()
    buffer = ""
    async for chunk in chunks:
        buffer += chunk
        while True:
            buffer = buffer.lstrip()
            if not buffer:
                break
            try:
                value, end = decoder.raw_decode(buffer)
            except ValueError:
                break  # incomplete: wait for more text
            buffer = buffer[end:]
            yield value
    if buffer.strip():
        raise fail(f"malformed stream data {buffer.strip()[:100]!r}")


@register("llm", "yandex")
class YandexLLM(HttpProvider, LLM):
    Settings = YandexLLMSettings
    settings: YandexLLMSettings

    def __init__(self, settings: YandexLLMSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self.credentials = YandexCredentials(settings, env)

    @property
    def model_uri(self) -> str:
        model = self.settings.model
        if model.startswith("gpt://"):
            return model
        if "/" not in model:
            model += "/latest"
        return f"gpt://{self.credentials.folder_id or '<folder>'}/{model}"

    def problems(self) -> list[str]:
        folder_required = not self.settings.model.startswith("gpt://")
        return self.credentials.problems(folder_required=folder_required) + (
            cloud_http.options_problems(self.settings, self.env)
        )

    def _secrets(self) -> list[str]:
        return self.credentials.secrets

    def _error_prefix(self) -> str:
        return f"YandexGPT {self.model_uri}"

    def body(self, messages: list[Message]) -> dict[str, Any]:
        return {
            "modelUri": self.model_uri,
            "completionOptions": {
                "stream": True,
                "temperature": self.settings.temperature,
                "maxTokens": str(self.settings.max_tokens),  # int64 is a string in the REST API
            },
            "messages": [{"role": m.role, "text": m.content} for m in messages],
        }

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.credentials.headers()}
        if self.credentials.folder_id:
            headers["x-folder-id"] = self.credentials.folder_id
        return headers

    async def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        body = self.body(messages)
        pieces = self._retrying_stream(lambda: self._attempt(body))
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                yield piece

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[str, None]:
        client = self._http.get()
        request = client.build_request("POST", self.settings.url, json=body, headers=self.headers())
        response = await cloud_http.send(client, request)
        try:
            objects = json_objects(response.aiter_text(), self._error)
            async for piece in cumulative_suffixes(objects, self._error):
                yield piece
        finally:
            await response.aclose()
