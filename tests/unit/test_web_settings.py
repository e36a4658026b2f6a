"""The web service's settings and access rules: when it may listen, what counts as the token."""

from __future__ import annotations

import base64

import pytest

from voiceplat.web.auth import cross_origin, presented_token, token_matches
from voiceplat.web.routes_robots import histogram
from voiceplat.web.settings import WebSettings, is_loopback

TOKEN = "s3cret-token-0123456789"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_defaults_listen_on_loopback_without_a_token() -> None:
    settings = WebSettings.from_env({})
    assert (settings.host, settings.port, settings.token) == ("127.0.0.1", 8000, None)
    assert settings.problems() == []


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "web.example.org"])
def test_another_host_without_a_token_is_refused_with_what_to_do(host: str) -> None:
    problems = WebSettings.from_env({}, host=host).problems()
    assert len(problems) == 1
    assert problems[0].startswith(f"refusing to listen on {host}: ")
    assert "set VOICEPLAT_WEB_TOKEN" in problems[0]
    assert "personal data" in problems[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    assert WebSettings.from_env({}, host=host).problems() == []


def test_a_token_allows_another_host_and_stays_secret() -> None:
    settings = WebSettings.from_env({"VOICEPLAT_WEB_TOKEN": f"  {TOKEN}\n"}, host="0.0.0.0")
    assert settings.problems() == []
    assert settings.token_value() == TOKEN
    assert TOKEN not in repr(settings)  # logs and tracebacks never show it


def test_an_empty_token_is_no_token() -> None:
    settings = WebSettings.from_env({"VOICEPLAT_WEB_TOKEN": "  "}, host="0.0.0.0")
    assert settings.token is None
    assert settings.problems()[0].startswith("refusing to listen on 0.0.0.0")


def test_a_short_token_is_refused() -> None:
    problems = WebSettings.from_env({"VOICEPLAT_WEB_TOKEN": "abc123"}).problems()
    assert problems == [
        "VOICEPLAT_WEB_TOKEN is 6 characters long; use at least 16 (e.g. `openssl rand -hex 24`)"
    ]


def test_token_in_bearer_or_basic_password() -> None:
    assert presented_token(f"Bearer {TOKEN}") == TOKEN
    assert presented_token(basic("anyone", TOKEN)) == TOKEN
    assert presented_token(basic("", TOKEN)) == TOKEN
    assert token_matches(f"bearer {TOKEN}", TOKEN)
    assert not token_matches(f"Bearer {TOKEN}x", TOKEN)
    assert not token_matches(basic(TOKEN, "wrong"), TOKEN)  # the token as the user name is not it
    assert not token_matches("Basic not-base64!", TOKEN)
    assert not token_matches(None, TOKEN)
    assert not token_matches(TOKEN, TOKEN)  # no scheme


def test_cross_origin_requests() -> None:
    same = {"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}
    assert cross_origin(same) is None
    assert cross_origin({"host": "127.0.0.1:8000"}) is None  # curl, scripts: no Origin
    assert cross_origin({"host": "127.0.0.1:8000", "origin": "http://evil.example"}) == (
        "Origin http://evil.example is not this service (127.0.0.1:8000)"
    )
    assert cross_origin({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:9000"})
    assert cross_origin({"host": "h", "origin": "null"}) == "Origin: null"
    assert cross_origin({"host": "h", "sec-fetch-site": "cross-site"})


def test_v2v_histogram_bins() -> None:
    bins = histogram([120.0, 480.0, 510.0, 990.0])
    assert [(b.from_ms, b.to_ms, b.count) for b in bins] == [
        (0, 100, 0),
        (100, 200, 1),
        (200, 300, 0),
        (300, 400, 0),
        (400, 500, 1),
        (500, 600, 1),
        (600, 700, 0),
        (700, 800, 0),
        (800, 900, 0),
        (900, 1000, 1),
    ]
    assert histogram([]) == []
    tail = histogram([100.0, 60_000.0])  # a 60 s outlier: fixed bins, the last open-ended
    assert len(tail) == 16
    assert (tail[-1].from_ms, tail[-1].to_ms, tail[-1].count) == (30_000, None, 1)
    assert sum(b.count for b in tail) == 2


def test_host_names_without_their_port() -> None:
    from voiceplat.web.auth import host_name

    assert host_name("127.0.0.1:8000") == "127.0.0.1"
    assert host_name("localhost") == "localhost"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("evil.example:80") == "evil.example"
