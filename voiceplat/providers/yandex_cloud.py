"""Yandex Cloud credentials, shared by the `yandex` ASR, TTS and LLM providers.

Yandex Cloud APIs take either an API key (`Authorization: Api-Key <key>`, a service account's,
the usual choice for a server) or an IAM token (`Authorization: Bearer <token>`, short-lived).
The folder id says whose quota is used: it is required with an IAM token of a user account and
for YandexGPT's `modelUri`; with a service account's API key it may be left out for SpeechKit.
All three come from the env files; their NAMES are settings, so one robot can use another account.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.providers import cloud_http


class YandexAuthOptions(BaseModel):
    """Which env variables hold the Yandex Cloud credentials (a mixin of the providers' Settings)."""

    model_config = ConfigDict(extra="forbid")

    api_key_env: str = Field("YANDEX_API_KEY", description="NAME of the env var with an API key.")
    iam_token_env: str = Field(
        "YANDEX_IAM_TOKEN", description="NAME of the env var with an IAM token (if no API key)."
    )
    folder_id_env: str = Field(
        "YANDEX_FOLDER_ID", description="NAME of the env var with the folder id."
    )


class YandexCredentials:
    """The credentials of one provider, read from its env mapping."""

    def __init__(self, options: YandexAuthOptions, env: Mapping[str, str]) -> None:
        self.options = options
        self.api_key = env.get(options.api_key_env, "").strip()
        self.iam_token = env.get(options.iam_token_env, "").strip()
        self.folder_id = env.get(options.folder_id_env, "").strip()

    @property
    def secrets(self) -> list[str]:
        return [self.api_key, self.iam_token]

    def headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"Api-Key {self.api_key}"}
        if self.iam_token:
            return {"Authorization": f"Bearer {self.iam_token}"}
        return {}

    def problems(self, *, folder_required: bool = False) -> list[str]:
        found = []
        if not self.api_key and not self.iam_token:
            found.append(
                cloud_http.missing_env(
                    self.options.api_key_env, alternative=self.options.iam_token_env
                )
            )
        if not self.folder_id and (folder_required or (self.iam_token and not self.api_key)):
            found.append(
                cloud_http.missing_env(self.options.folder_id_env, what="Yandex Cloud folder id")
            )
        return found
