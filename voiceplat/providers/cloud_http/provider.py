"""`HttpProvider`: what a cloud provider class shares, a mixin listed before its ASR/LLM/TTS base.

It holds the provider's one pooled client (made on first use, so tests may skip `start`; closed by
`aclose`), turns a failure message into a ProviderError that names the provider and never holds a
secret, and runs attempts under providers/cloud_http's retry rules with the provider's own settings.
A provider says what to mask (`_secrets`) and how to name itself (`_error_prefix`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from voiceplat.providers import cloud_http
from voiceplat.providers.base import ProviderError

T = TypeVar("T")


class HttpProvider:
    settings: Any
    """A `cloud_http.HttpOptions` with the provider's `timeout_s`."""
    env: Mapping[str, str]

    def __init__(self, settings: Any, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)  # type: ignore[call-arg]
        self._http = cloud_http.ClientHolder(
            lambda: cloud_http.make_client(settings, env, read_timeout_s=settings.timeout_s)
        )

    async def start(self) -> None:
        self._http.get()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _secrets(self) -> list[str]:
        """The provider's own secrets (keys, tokens); the proxy URL's are added to them."""
        return []

    def _error_prefix(self) -> str:
        raise NotImplementedError

    def _error(self, message: str) -> ProviderError:
        secrets = [*self._secrets(), *cloud_http.option_secrets(self.settings, self.env)]
        message = cloud_http.mask(message, secrets)
        return ProviderError(f"{self._error_prefix()}: {message}")

    def _retrying_stream(
        self, attempt: Callable[[], AsyncGenerator[T, None]], *, first_what: str = "first token"
    ) -> AsyncGenerator[T, None]:
        """`cloud_http.retrying_stream` with this provider's retries and timeout; close it after."""
        return cloud_http.retrying_stream(
            attempt,
            retries=self.settings.retries,
            backoff_s=self.settings.retry_backoff_s,
            first_timeout_s=self.settings.timeout_s,
            fail=self._error,
            first_what=first_what,
        )

    async def _retrying_call(self, call: Callable[[], Awaitable[T]], *, what: str) -> T:
        """`cloud_http.retrying_call` with this provider's retries and timeout."""
        return await cloud_http.retrying_call(
            call,
            retries=self.settings.retries,
            backoff_s=self.settings.retry_backoff_s,
            timeout_s=self.settings.timeout_s,
            fail=self._error,
            what=what,
        )
