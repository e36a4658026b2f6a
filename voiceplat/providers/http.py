"""What every cloud (HTTP) provider shares: connection options, the client, retries, masking.

- `HttpOptions`: a settings mixin (timeouts, retries, proxy, CA bundle, mTLS client certificate).
- `make_client`: one pooled `httpx.AsyncClient` per provider, built from those options.
- `send`: sends a request and turns what went wrong into an `HttpFailure` that says whether it is
  safe to retry (connection errors and 5xx answers are; 4xx answers are not).
- `retrying_stream` / `retrying_call`: run an attempt, retrying with exponential backoff, but only
  until the first item (a text piece, an audio chunk) was produced: a caller must never hear half
  an answer twice. One time limit covers all attempts up to that first item.
- `read_body`: `send`, then the whole (size-limited) body.
- `mask`: removes secrets from any text that may reach a log, a call record or an exception.
- `missing_env`: the `check` line for a secret that is not set.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from voiceplat.providers.base import ROBOT_ENV_PLACEHOLDER, ProviderError

T = TypeVar("T")

ERROR_TEXT_LIMIT = 300
MASK = "***"
ENV_FILES = f"{ROBOT_ENV_PLACEHOLDER} or the root .env"

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


def backoff_delays(retries: int, base_s: float) -> list[float]:
    """Pauses before retries 1..n: base, 2*base, 4*base, ..."""
    return [base_s * 2**n for n in range(retries)]


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


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by ***; longest first, so no fragment survives."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def missing_env(name: str, *, alternative: str | None = None, what: str = "") -> str:
    """The `check` line for an unset env variable, saying where to put it."""
    names = f"{name} (or {alternative})" if alternative else name
    about = f" ({what})" if what else ""
    return f"{names}{about} is not set: put {name}=... in {ENV_FILES}"


# Errors


class HttpFailure(Exception):
    """A request failed; `retryable` when sending it again is safe and may help."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


def error_message(body: bytes) -> str:
    """The human part of an error body: {"error": {"message"}}, {"error_message"}, {"detail"}…"""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:ERROR_TEXT_LIMIT]
    return message_of(data) or text[:ERROR_TEXT_LIMIT]


def message_of(data: Any) -> str | None:
    """The message inside a JSON error object, in the shapes the cloud APIs use."""
    if not isinstance(data, dict):
        return None
    for key in ("error", "detail"):
        inner = data.get(key)
        if isinstance(inner, dict):
            found = message_of(inner)
            return (found or json.dumps(inner, ensure_ascii=False))[:ERROR_TEXT_LIMIT]
        if isinstance(inner, str) and inner:
            return inner[:ERROR_TEXT_LIMIT]
    for key in ("message", "error_message", "msg", "code", "status"):
        if data.get(key):
            return str(data[key])[:ERROR_TEXT_LIMIT]
    return None


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


# Retries


class _End:
    """The attempt finished without producing anything."""


_END = _End()


async def retrying_stream(
    attempt: Callable[[], AsyncIterator[T]],
    *,
    retries: int,
    backoff_s: float,
    first_timeout_s: float,
    fail: Callable[[str], ProviderError],
    first_what: str = "first token",
    gap_timeout_s: float | None = None,
) -> AsyncIterator[T]:
    """Yields the items of `attempt()`, retrying it while nothing was yielded yet.

    An attempt is retried when it raises a retryable `HttpFailure` or a transport error before its
    first item; `first_timeout_s` bounds everything up to that item (retries and pauses included).
    Afterwards a failure ends the stream with `fail(message)`; `gap_timeout_s` is only named in
    the message (the client's read timeout enforces it). `ProviderError`s pass through unchanged;
    any other exception becomes one, so what leaves here is always a `fail(...)` (masked) error.
    """
    items, first = await _first_item(attempt, retries, backoff_s, first_timeout_s, fail, first_what)
    try:
        if first is _END:
            return
        yield first  # type: ignore[misc]
        while True:
            try:
                item = await anext(items)
            except StopAsyncIteration:
                return
            except httpx.TimeoutException as exc:
                gap = gap_timeout_s if gap_timeout_s is not None else first_timeout_s
                raise fail(f"no data for {gap:g} s mid-answer") from exc
            except HttpFailure as exc:
                raise fail(exc.message) from exc
            except httpx.HTTPError as exc:
                raise fail(f"stream broken mid-answer ({exc!r})") from exc
            except ProviderError:
                raise
            except Exception as exc:
                raise _unexpected(exc, fail) from None
            yield item
    finally:
        await items.aclose()


def _unexpected(exc: Exception, fail: Callable[[str], ProviderError]) -> ProviderError:
    """Any other failure, as a masked ProviderError: its own text might hold a secret (a proxy
    URL, say), so it is not chained to the error the session records."""
    return fail(f"{type(exc).__name__}: {exc}")


async def _first_item(
    attempt: Callable[[], AsyncIterator[T]],
    retries: int,
    backoff_s: float,
    first_timeout_s: float,
    fail: Callable[[str], ProviderError],
    first_what: str,
) -> tuple[AsyncIterator[T], T | _End]:
    delays = backoff_delays(retries, backoff_s)
    last: HttpFailure | None = None
    try:
        async with asyncio.timeout(first_timeout_s):
            for number in range(retries + 1):
                if number:
                    await asyncio.sleep(delays[number - 1])
                items = attempt()
                try:
                    first = await anext(items, _END)
                except HttpFailure as failure:
                    await items.aclose()
                    if not failure.retryable:
                        raise fail(failure.message) from failure
                    last = failure
                    continue
                except RETRYABLE_ERRORS as exc:
                    await items.aclose()
                    last = HttpFailure(f"connection broken before the {first_what} ({exc!r})")
                    continue
                except httpx.TimeoutException:
                    await items.aclose()
                    raise
                except httpx.HTTPError as exc:
                    await items.aclose()
                    raise fail(f"request failed ({exc!r})") from exc
                except ProviderError:
                    await items.aclose()
                    raise
                except Exception as exc:
                    await items.aclose()
                    raise _unexpected(exc, fail) from None
                except BaseException:
                    await items.aclose()
                    raise
                return items, first
            assert last is not None
            raise fail(f"{last.message} (after {retries + 1} attempts)")
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise fail(f"no {first_what} within {first_timeout_s:g} s") from exc


async def retrying_call(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff_s: float,
    timeout_s: float,
    fail: Callable[[str], ProviderError],
    what: str = "answer",
) -> T:
    """`call()` with the retry rules of `retrying_stream` (its one result is the first item)."""

    async def once() -> AsyncIterator[T]:
        yield await call()

    stream = retrying_stream(
        once,
        retries=retries,
        backoff_s=backoff_s,
        first_timeout_s=timeout_s,
        fail=fail,
        first_what=what,
    )
    async with contextlib.aclosing(stream):
        async for result in stream:
            return result
    raise fail(f"no {what}")  # unreachable: `once` always yields or raises
