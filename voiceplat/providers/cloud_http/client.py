"""The HTTP client of a cloud provider: connection options, TLS, proxies, and sending requests.

- `HttpOptions`: a settings mixin (timeouts, retries, proxy, CA bundle, mTLS client certificate).
- `options_problems`: what stops those options from working (the `check` lines).
- `make_client`: one pooled `httpx.AsyncClient` per provider, built from those options;
  `ClientHolder` makes it on first use and closes it.
- `send`: sends a request and turns what went wrong into an `HttpFailure` that says whether it is
  safe to retry (connection errors and 5xx answers are; 4xx answers are not).
- `read_body`: `send`, then the whole (size-limited) body.
"""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from voiceplat.providers.base import ProviderError
from voiceplat.providers.cloud_http.errors import ENV_FILES, HttpFailure, error_message

# Transport failures before an answer: the request can safely be sent again. A pooled keep-alive
# connection that the server already closed shows up as RemoteProtocolError.
RETRYABLE_ERRORS = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class HttpOptions(BaseModel):
    """Connection settings shared by the cloud providers (a mixin of their Settings)."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout_s: float = Field(5.0, gt=0, description="TCP/TLS connect timeout.")
    retries: int = Field(
        2, ge=0, le=5, description="Retries on connection errors and 5xx, before any output."
    )
    retry_backoff_s: float = Field(
        0.25, ge=0, description="Pause before the first retry; doubled before each next one."
    )
    proxy: str | None = Field(
        None,
        description="Proxy URL: http://, https://, socks5:// or socks5h:// (SOCKS needs the "
        "`cloud` extra). A URL with a password belongs in the env: use `proxy_env`.",
    )
    proxy_env: str | None = Field(
        None, description="NAME of an env variable holding the proxy URL (overrides `proxy`)."
    )
    ca_bundle: str | None = Field(
        None, description="PEM file of extra CA certificates to trust (e.g. Russian root CA)."
    )
    client_cert: str | None = Field(None, description="PEM client certificate for mutual TLS.")
    client_key: str | None = Field(
        None, description="PEM private key of `client_cert` (if not inside that file)."
    )
    verify: bool = Field(True, description="Verify the server's TLS certificate.")


def proxy_url(options: HttpOptions, env: Mapping[str, str]) -> str | None:
    if options.proxy_env:
        return env.get(options.proxy_env, "").strip() or None
    return options.proxy


def option_secrets(options: HttpOptions, env: Mapping[str, str]) -> list[str]:
    """Secrets inside the options: a proxy URL may carry a password."""
    url = proxy_url(options, env)
    if not url:
        return []
    return [url, urlsplit(url).password or ""]


def _is_socks(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme.lower().startswith("socks")


def options_problems(options: HttpOptions, env: Mapping[str, str]) -> list[str]:
    """What stops these options from working: missing files, a missing SOCKS package or proxy."""
    found = []
    if options.client_key and not options.client_cert:
        found.append("client_key is set but client_cert is not; set both")
    if options.proxy and urlsplit(options.proxy).password:
        # Checked here rather than by validation, which would echo the password in its message.
        found.append(
            "proxy contains a password, and secrets never go in config.json: put the proxy URL "
            f"in {ENV_FILES} and name that variable in proxy_env"
        )
    for name in ("ca_bundle", "client_cert", "client_key"):
        path = getattr(options, name)
        if path and not Path(path).is_file():
            found.append(f"{name}: file {path} not found")
    if options.proxy_env and not proxy_url(options, env):
        found.append(f"{options.proxy_env} (the proxy URL) is not set in {ENV_FILES}")
    proxy = proxy_url(options, env)
    if _is_socks(proxy) and importlib.util.find_spec("socksio") is None:
        found.append(
            "a SOCKS proxy needs the socksio package: pip install 'voiceplat[cloud]' "
            "(or pip install 'httpx[socks]')"
        )
    return found


def tls_verify(options: HttpOptions) -> ssl.SSLContext | bool:
    """httpx's `verify`: True (system CAs via certifi) unless a CA bundle, mTLS or no-verify."""
    if options.verify and not options.ca_bundle and not options.client_cert:
        return True
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if options.ca_bundle:
        # In addition to the public roots: GigaChat's hosts need the Russian root CA, the OAuth
        # and API hosts alike, so one bundle with just that root must be enough.
        context.load_verify_locations(cafile=options.ca_bundle)
    if options.client_cert:
        context.load_cert_chain(options.client_cert, options.client_key)
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def make_client(
    options: HttpOptions, env: Mapping[str, str], *, read_timeout_s: float
) -> httpx.AsyncClient:
    """One client per provider: its connection pool keeps TLS sessions warm across calls.

    `read_timeout_s` bounds each wait for data (the gap between streamed chunks).
    """
    timeout = httpx.Timeout(
        read_timeout_s, connect=options.connect_timeout_s, pool=options.connect_timeout_s
    )
    proxy = proxy_url(options, env)
    try:
        return httpx.AsyncClient(timeout=timeout, verify=tls_verify(options), proxy=proxy)
    except ImportError as exc:  # httpx imports socksio only when a SOCKS proxy is used
        raise ProviderError(
            "a SOCKS proxy needs the socksio package: pip install 'voiceplat[cloud]'"
        ) from exc
    except (OSError, ssl.SSLError) as exc:
        raise ProviderError(f"cannot load TLS files: {exc}") from exc


class ClientHolder:
    """Creates the provider's client on first use (tests may skip `start`) and closes it."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Sends `request` (streamed); an error status is read, closed and raised as HttpFailure."""
    try:
        response = await client.send(request, stream=True)
    except RETRYABLE_ERRORS as exc:
        raise HttpFailure(f"cannot connect ({exc!r})", retryable=True) from exc
    except httpx.TimeoutException:
        raise
    except httpx.HTTPError as exc:
        raise HttpFailure(f"request failed ({exc!r})") from exc
    if response.status_code >= 400:
        try:
            body = await response.aread()
        except httpx.HTTPError:
            body = b""
        finally:
            await response.aclose()
        status = response.status_code
        raise HttpFailure(
            f"HTTP {status}: {error_message(body)}", retryable=status >= 500, status=status
        )
    return response


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes (a misbehaving server must not exhaust RAM)."""
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > limit:
            raise HttpFailure(f"response larger than {limit} bytes")
    return bytes(data)


async def read_body(client: httpx.AsyncClient, request: httpx.Request, limit: int) -> bytes:
    """Sends `request` and reads its whole body (at most `limit` bytes), closing the response."""
    response = await send(client, request)
    try:
        return await read_limited(response, limit)
    finally:
        await response.aclose()
