"""The ingresses' own credentials checked in the handshake hook (sans-I/O): the reason each
refusal is counted under, what a refused peer reads (never a secret, nor which variable is
unset), which check guards which path, and the simulator's --auth / --token headers."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from websockets.datastructures import Headers
from websockets.http11 import Request

from voiceplat.robot import load_robot
from voiceplat.simulator.peers.cli import credential_headers
from voiceplat.telephony.ingress.asterisk_ws.settings import AsteriskWsSettings
from voiceplat.telephony.ingress.audio_stream.settings import AudioStreamSettings
from voiceplat.telephony.ingress.paths import media_auth
from voiceplat.telephony.ingress.twilio.auth import SIGNATURE_HEADER, handshake_check, signature
from voiceplat.telephony.ingress.twilio.settings import TwilioSettings
from voiceplat.telephony.media_auth import UNSET_MESSAGE

ENV = {"SECRET": "s3cret", "TOKEN": "t0ken"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(path: str, **headers: str) -> Request:
    return Request(path, Headers({"Host": "robot:8080", "Upgrade": "websocket", **headers}))


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing"),
        ("Bearer s3cret", "malformed"),
        ("Basic !!!", "malformed"),
        (basic("asterisk", "guess"), "wrong"),
        (basic("intruder", "s3cret"), "wrong"),
        (basic("asterisk", "s3cret"), None),
    ],
)
def test_asterisk_ws_reasons(authorization: str | None, reason: str | None) -> None:
    settings = AsteriskWsSettings(username="asterisk", password_env="SECRET")
    refusal = settings.check(authorization, ENV)
    assert (refusal.reason if refusal else None) == reason
    assert refusal is None or "s3cret" not in refusal.message


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing"),
        (basic("u", "t0ken"), "malformed"),  # mod_audio_stream sends what you give it: Bearer
        ("Bearer guess", "wrong"),
        ("Bearer ", "wrong"),
        ("Bearer t0ken", None),
    ],
)
def test_audio_stream_reasons(authorization: str | None, reason: str | None) -> None:
    refusal = AudioStreamSettings(token_env="TOKEN").check(authorization, ENV)
    assert (refusal.reason if refusal else None) == reason


URL = "wss://robot:8080/twilio"


@pytest.mark.parametrize(
    ("settings", "headers", "reason"),
    [
        (TwilioSettings(auth_token_env="SECRET"), {}, "missing"),
        (TwilioSettings(auth_token_env="SECRET"), {SIGNATURE_HEADER: "forged"}, "wrong"),
        (
            TwilioSettings(auth_token_env="SECRET"),
            {SIGNATURE_HEADER: signature("s3cret", URL)},
            None,
        ),
        (TwilioSettings(token_env="TOKEN"), {"Authorization": "Bearer guess"}, "wrong"),
        (TwilioSettings(token_env="TOKEN"), {"Authorization": basic("x", "t0ken")}, None),
        # No Authorization: the token may still come in the start message (the channel's check).
        (TwilioSettings(token_env="TOKEN"), {}, None),
        (TwilioSettings(auth_token_env="SECRET", token_env="TOKEN"), {}, None),
        (
            TwilioSettings(auth_token_env="SECRET", token_env="TOKEN"),
            {SIGNATURE_HEADER: "forged", "Authorization": "Bearer guess"},
            "wrong",
        ),
    ],
)
def test_twilio_reasons(
    settings: TwilioSettings, headers: dict[str, str], reason: str | None
) -> None:
    refusal = handshake_check(settings, request("/twilio", **headers), ENV)
    assert (refusal.reason if refusal else None) == reason
    assert refusal is None or ("s3cret" not in refusal.message and "t0ken" not in refusal.message)


def test_an_unset_secret_refuses_everyone_and_only_the_log_names_the_variable() -> None:
    for refusal in (
        AsteriskWsSettings(password_env="NOT_SET").check(basic("a", "b"), {}),
        AudioStreamSettings(token_env="NOT_SET").check("Bearer x", {}),
        handshake_check(TwilioSettings(auth_token_env="NOT_SET"), request("/twilio"), {}),
    ):
        assert refusal is not None and refusal.reason == "unset"
        assert refusal.message == UNSET_MESSAGE and "NOT_SET" in refusal.detail
    # The channel's fallback text (no hook ran) still names it, as before.
    assert "NOT_SET is not set" in str(AsteriskWsSettings(password_env="NOT_SET").refusal(None, {}))


def count(ingress: str, reason: str) -> float:
    labels = {"ingress": ingress, "reason": reason}
    return REGISTRY.get_sample_value("voiceplat_media_auth_refused_total", labels) or 0.0


def test_each_path_is_guarded_by_its_ingresss_own_check_else_by_media_auth(
    make_robot: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SECRET", "s3cret")
    monkeypatch.setenv("TOKEN", "t0ken")
    assert media_auth(load_robot(make_robot("open"))) is None  # nothing configured: no hook
    robot = load_robot(
        make_robot(
            "guarded",
            asterisk_ws={"password_env": "SECRET"},
            audio_stream={"token_env": "TOKEN"},
            twilio={"enabled": True},  # no credentials of its own: media_auth's path
            media_auth={"token_env": "TOKEN"},
        )
    )
    hook = media_auth(robot)
    assert hook is not None
    before = count("asterisk_ws", "wrong"), count("twilio", "missing")
    with caplog.at_level("INFO", "voiceplat.telephony.media_auth"):
        asterisk = hook(request("/asterisk", Authorization=basic("x", "t0ken")), "127.0.0.1")
        twilio = hook(request("/twilio"), "127.0.0.1")
    assert asterisk is not None and asterisk.status_code == 401
    assert asterisk.headers["WWW-Authenticate"] == 'Basic realm="voiceplat"'
    assert twilio is not None and "Bearer" in twilio.headers["WWW-Authenticate"]
    assert (count("asterisk_ws", "wrong"), count("twilio", "missing")) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "media auth",
        "media auth",
    ]
    assert "t0ken" not in caplog.text
    assert hook(request("/asterisk", Authorization=basic("x", "s3cret")), None) is None
    assert hook(request("/audio_stream", Authorization="Bearer t0ken"), None) is None
    assert hook(request("/", Authorization="Bearer t0ken"), None) is None  # media_auth's token
    assert hook(request("/twilio?token=t0ken"), None) is None


def test_only_the_ingresses_own_checks_without_media_auth(
    make_robot: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET", "s3cret")
    hook = media_auth(load_robot(make_robot(asterisk_ws={"password_env": "SECRET"})))
    assert hook is not None
    refused = hook(request("/asterisk"), None)
    assert refused is not None and refused.status_code == 401
    assert hook(request("/"), None) is None and hook(request("/web"), None) is None


def test_voiceplat_call_credentials_become_one_authorization_header() -> None:
    assert credential_headers("asterisk:pa:ss", None) == {
        "Authorization": basic("asterisk", "pa:ss")
    }
    assert credential_headers(None, "t0ken") == {"Authorization": "Bearer t0ken"}
    assert credential_headers(None, None) == {}
