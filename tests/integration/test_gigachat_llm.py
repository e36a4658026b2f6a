"""The `gigachat` LLM against a local fake of GigaChat's OAuth and chat endpoints (HTTP and TLS)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fake_http import FakeServer, body, drop, error, hang, make_certs, sse
from voiceplat.providers.base import Message, ProviderError
from voiceplat.providers.llm.gigachat import GigaChatLLM

AUTH_KEY = "Y2xpZW50LWlkOmNsaWVudC1zZWNyZXQtMDEyMzQ1Njc4OQ=="
TOKEN = "eyJhY2Nlc3MiOiJ0b2tlbi0xIn0.secret-token-1"
TOKEN_2 = "eyJhY2Nlc3MiOiJ0b2tlbi0yIn0.secret-token-2"
NOW = 1_700_000_000.0
MESSAGES = [Message("system", "Ты вежливый робот."), Message("user", "Привет!")]
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def token(value: str = TOKEN, lifetime_s: float = 1800) -> Any:
    return body(200, {"access_token": value, "expires_at": int((NOW + lifetime_s) * 1000)})


def chunk(content: str, role: str | None = None) -> dict:
    delta = {"content": content} | ({"role": role} if role else {})
    return {
        "choices": [{"delta": delta, "index": 0}],
        "created": 1683034756,
        "model": "GigaChat-Pro:1.0.26.20",
        "object": "chat.completion",
    }


def answer(*pieces: str) -> Any:
    """The event stream as GigaChat's documentation shows it (no finish_reason, then [DONE])."""
    return sse([chunk(pieces[0], role="assistant"), *(chunk(p) for p in pieces[1:]), "[DONE]"])


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def make_llm(server: FakeServer, env: dict[str, str] | None = None, **settings: Any) -> GigaChatLLM:
    options = {
        "provider": "gigachat",
        "oauth_url": f"{server.url}/api/v2/oauth",
        "base_url": f"{server.url}/api/v1",
        "retry_backoff_s": 0,
        "temperature": 0.7,
        "max_tokens": 80,
    }
    llm = GigaChatLLM(
        GigaChatLLM.Settings(**(options | settings)),
        {"GIGACHAT_CREDENTIALS": AUTH_KEY} if env is None else env,
    )
    llm.clock = Clock()
    return llm


async def collect(llm: GigaChatLLM) -> list[str]:
    return [piece async for piece in llm.stream(MESSAGES)]


async def test_token_then_streamed_chat_with_the_documented_requests():
    async with FakeServer(token(), answer("Giga", "Chat", " спешит на помощь")) as server:
        llm = make_llm(server)
        assert await collect(llm) == ["Giga", "Chat", " спешит на помощь"]
        await llm.aclose()
    oauth, chat = server.requests
    assert (oauth.method, oauth.path) == ("POST", "/api/v2/oauth")
    assert oauth.headers["authorization"] == f"Basic {AUTH_KEY}"
    assert UUID4.match(oauth.headers["rquid"])
    assert oauth.headers["content-type"] == "application/x-www-form-urlencoded"
    assert oauth.form == {"scope": "GIGACHAT_API_PERS"}
    assert (chat.method, chat.path) == ("POST", "/api/v1/chat/completions")
    assert chat.headers["authorization"] == f"Bearer {TOKEN}"
    assert chat.json() == {
        "model": "GigaChat-Pro",
        "messages": [
            {"role": "system", "content": "Ты вежливый робот."},
            {"role": "user", "content": "Привет!"},
        ],
        "stream": True,
        "temperature": 0.7,
        "max_tokens": 80,
    }


async def test_the_token_is_cached_and_renewed_a_minute_before_it_expires():
    script = [token(TOKEN), answer("a"), answer("b"), token(TOKEN_2), answer("c")]
    async with FakeServer(*script) as server:
        llm = make_llm(server, scope="GIGACHAT_API_CORP")
        assert await collect(llm) == ["a"]
        llm.clock.now = NOW + 1800 - 61  # type: ignore[attr-defined]
        assert await collect(llm) == ["b"]  # still valid for 61 s: reused
        llm.clock.now = NOW + 1800 - 59  # type: ignore[attr-defined]
        assert await collect(llm) == ["c"]  # within the margin: renewed first
    assert llm.token_fetches == 2
    paths = [request.path for request in server.requests]
    assert paths == ["/api/v2/oauth", *["/api/v1/chat/completions"] * 2, "/api/v2/oauth", paths[-1]]
    assert server.requests[0].form == {"scope": "GIGACHAT_API_CORP"}
    assert server.requests[-1].headers["authorization"] == f"Bearer {TOKEN_2}"


async def test_a_401_renews_the_token_once_and_sends_again():
    expired = error(401, {"status": 401, "message": "Token has expired"})
    async with FakeServer(token(TOKEN), expired, token(TOKEN_2), answer("ок")) as server:
        assert await collect(make_llm(server)) == ["ок"]
    auth = [request.headers["authorization"] for request in server.requests]
    assert auth == [
        f"Basic {AUTH_KEY}",
        f"Bearer {TOKEN}",
        f"Basic {AUTH_KEY}",
        f"Bearer {TOKEN_2}",
    ]

    script = [token(TOKEN), expired, token(TOKEN_2), expired]
    async with FakeServer(*script) as server:
        with pytest.raises(ProviderError, match="HTTP 401: Token has expired") as caught:
            await collect(make_llm(server))
    assert TOKEN_2 not in str(caught.value) and AUTH_KEY not in str(caught.value)


async def test_a_rejected_authorization_key_is_explained_without_the_key():
    rejected = error(401, {"code": 6, "message": f"credentials doesn't match db data ({AUTH_KEY})"})
    async with FakeServer(rejected) as server:
        with pytest.raises(ProviderError) as caught:
            await collect(make_llm(server))
    message = str(caught.value)
    assert "authorization failed (HTTP 401: credentials doesn't match db data" in message
    assert "check GIGACHAT_CREDENTIALS and scope GIGACHAT_API_PERS" in message
    assert AUTH_KEY not in message
    assert len(server.requests) == 1


async def test_up_to_three_retries_on_5xx_and_network_errors():
    script = [token(), error(503, "overloaded"), drop(), error(500, "oops"), answer("наконец")]
    async with FakeServer(*script) as server:
        assert await collect(make_llm(server)) == ["наконец"]
    assert len(server.requests) == 5  # one token, four chat attempts

    # The token fetch is part of an attempt: its 5xx counts among the four.
    script = [error(500, "oauth down"), token(), *(error(502, "bad gateway") for _ in range(3))]
    async with FakeServer(*script) as server:
        with pytest.raises(ProviderError, match=r"HTTP 502: bad gateway \(after 4 attempts\)"):
            await collect(make_llm(server))
    assert len(server.requests) == 5


async def test_malformed_streams_and_timeouts():
    async with FakeServer(token(), sse(["{not json"])) as server:
        with pytest.raises(ProviderError, match="bad stream data"):
            await collect(make_llm(server))
    async with FakeServer(body(200, "<html>captive portal</html>", "text/html")) as server:
        with pytest.raises(ProviderError, match="malformed token answer"):
            await collect(make_llm(server))
    async with FakeServer(token(), hang()) as server:
        with pytest.raises(ProviderError, match=r"no first token within 0\.3 s"):
            await collect(make_llm(server, timeout_s=0.3))


def test_problems_and_settings():
    settings = GigaChatLLM.Settings(provider="gigachat")
    assert settings.model == "GigaChat-Pro" and settings.retries == 3
    assert GigaChatLLM(settings, {}).problems() == [
        "GIGACHAT_CREDENTIALS (GigaChat authorization key) is not set: put "
        "GIGACHAT_CREDENTIALS=... in robots/<robot>/.env or the root .env"
    ]
    with pytest.raises(ValueError, match="scope"):
        GigaChatLLM.Settings(provider="gigachat", scope="GIGACHAT_API_FREE")
    mtls = GigaChatLLM.Settings(provider="gigachat", client_cert="/nowhere/cert.pem")
    assert GigaChatLLM(mtls, {}).problems() == ["client_cert: file /nowhere/cert.pem not found"]


# TLS: the Russian root CA via ca_bundle, and mutual TLS with a client certificate

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@needs_openssl
async def test_ca_bundle_and_client_certificate(tmp_path: Path):
    certs = make_certs(tmp_path)
    tls = certs.server_context(require_client_cert=True)
    async with FakeServer(token(), answer("защищено"), tls=tls) as server:
        llm = make_llm(
            server,
            ca_bundle=str(certs.ca),
            client_cert=str(certs.client_cert),
            client_key=str(certs.client_key),
        )
        assert llm.problems() == []
        assert await collect(llm) == ["защищено"]
        await llm.aclose()
    assert len(server.requests) == 2

    async with FakeServer(tls=certs.server_context(require_client_cert=False)) as server:
        with pytest.raises(ProviderError, match="CERTIFICATE_VERIFY_FAILED"):
            await collect(make_llm(server))  # the test CA is unknown without ca_bundle
    assert server.requests == []


@needs_openssl
async def test_mtls_alone_sends_no_token_and_verify_off(tmp_path: Path):
    certs = make_certs(tmp_path)
    tls = certs.server_context(require_client_cert=True)
    async with FakeServer(answer("по сертификату"), tls=tls) as server:
        llm = make_llm(
            server,
            env={},
            verify=False,  # the server's certificate is not checked (not recommended)
            client_cert=str(certs.client_cert),
            client_key=str(certs.client_key),
        )
        assert llm.problems() == []
        assert await collect(llm) == ["по сертификату"]
    (chat,) = server.requests
    assert chat.path == "/api/v1/chat/completions"
    assert "authorization" not in chat.headers


async def test_a_model_the_host_does_not_serve_names_base_url():
    # GigaChat answers 404 "No such model" for a model its host does not serve.
    script = [token(), error(404, {"status": 404, "message": "No such model"})]
    async with FakeServer(*script) as server:
        with pytest.raises(ProviderError) as caught:
            await collect(make_llm(server, model="GigaChat-2-Max"))
    message = str(caught.value)
    assert "No such model" in message
    assert "GigaChat-2-Max" in message and "base_url" in message
    assert len(server.requests) == 2  # not retried
