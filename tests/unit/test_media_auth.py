"""media_auth's handshake check (sans-I/O): which credentials open which ingress, what a refused
peer reads, what is counted, and what `voiceplat check` warns of."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from websockets.datastructures import Headers
from websockets.http11 import Request

from voiceplat.telephony.media_auth import (
    MediaAuth,
    MediaAuthSettings,
    WsTlsSettings,
    check,
    exposure_warnings,
)

ENV = {"FORK_PASSWORD": "s3cret-pass", "MEDIA_TOKEN": "tok-123"}
BOTH = MediaAuthSettings(
    username="freeswitch", password_env="FORK_PASSWORD", token_env="MEDIA_TOKEN"
)


def basic(user: str, password: str) -> str:
    # What mod_audio_fork's dch_lws_http_basic_auth_gen writes: "Basic " + base64("user:pw").
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "path"),
    [
        (basic("freeswitch", "s3cret-pass"), "/"),
        (basic("freeswitch", "tok-123"), "/"),  # the token as a Basic password
        ("Bearer tok-123", "/web"),
        ("bearer  tok-123 ", "/web"),
        (None, "/web?token=tok-123"),
        (None, "/?a=1&token=tok-123"),
    ],
)
def test_right_credentials_open_the_handshake(authorization: str | None, path: str) -> None:
    assert check(BOTH, ENV, authorization, path) is None


@pytest.mark.parametrize(
    ("authorization", "path", "reason"),
    [
        (None, "/", "missing"),
        (None, "/web?other=1", "missing"),
        (basic("freeswitch", "wrong"), "/", "wrong"),
        (basic("intruder", "s3cret-pass"), "/", "wrong"),  # right password, wrong user
        ("Bearer s3cret-pass", "/", "wrong"),  # the Basic password is no token
        ("Bearer ", "/", "wrong"),
        (None, "/web?token=tok-12", "wrong"),
        (None, "/web?token=", "missing"),  # an empty value is no token at all
        ("Basic !!notbase64!!", "/", "malformed"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "/", "malformed"),
        ("Digest username=x", "/", "malformed"),
    ],
)
def test_wrong_or_missing_credentials_are_refused(
    authorization: str | None, path: str, reason: str
) -> None:
    refusal = check(BOTH, ENV, authorization, path)
    assert refusal is not None
    assert refusal.reason == reason
    assert "s3cret" not in refusal.message and "tok-123" not in refusal.message


def test_any_user_name_when_none_is_configured_and_no_token_without_token_env() -> None:
    settings = MediaAuthSettings(password_env="FORK_PASSWORD")
    assert check(settings, ENV, basic("whoever", "s3cret-pass"), "/") is None
    refusal = check(settings, ENV, "Bearer tok-123", "/")
    assert refusal is not None and refusal.reason == "wrong"


def test_a_secret_missing_from_the_env_refuses_everyone_and_check_names_it() -> None:
    settings = MediaAuthSettings(password_env="NOT_SET_ANYWHERE")
    refusal = check(settings, {}, basic("a", ""), "/")
    assert refusal is not None and refusal.reason == "unset"
    assert settings.problems({}) == [
        "media_auth.password_env: the variable NOT_SET_ANYWHERE is not set (in the robot's "
        ".env or the environment)"
    ]
    assert not MediaAuthSettings().enabled and settings.enabled


def request(path: str, authorization: str | None = None) -> Request:
    headers = Headers([("Host", "robot"), ("Upgrade", "websocket")])
    if authorization:
        headers["Authorization"] = authorization
    return Request(path, headers)


def refused_count(ingress: str, reason: str) -> float:
    labels = {"ingress": ingress, "reason": reason}
    return REGISTRY.get_sample_value("voiceplat_media_auth_refused_total", labels) or 0.0


def test_the_hook_answers_401_with_www_authenticate_counts_and_logs_without_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ingresses = {"/web": "web", "/asterisk": None}
    hook = MediaAuth(BOTH, ENV, lambda path: ingresses.get(path, "audio_fork"))
    before = refused_count("web", "wrong")
    with caplog.at_level("INFO", "voiceplat.telephony.media_auth"):
        response = hook(request("/web?token=guessed-token"), "192.0.2.7")
    assert response is not None and response.status_code == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert response.body == b"wrong token\n"
    assert refused_count("web", "wrong") == before + 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert "refused a web handshake from 192.0.2.7 on /web" in line
    assert "guessed-token" not in line
    assert hook(request("/", basic("freeswitch", "s3cret-pass")), None) is None
    assert hook(request("/asterisk"), None) is None  # that ingress checks its own credentials


def test_exposure_warnings_name_the_setting_to_add() -> None:
    tls = WsTlsSettings(cert_file="robot.pem", key_file="robot.key")
    for host in ("127.0.0.1", "::1", "localhost", "[::1]"):
        assert exposure_warnings(host, MediaAuthSettings(), None) == []
    (open_port,) = exposure_warnings("0.0.0.0", MediaAuthSettings(), tls)
    assert "media_auth is off" in open_port and '"password_env"' in open_port
    (clear_text,) = exposure_warnings("10.0.0.5", BOTH, None)
    assert "without TLS" in clear_text and '"tls"' in clear_text
    assert exposure_warnings("10.0.0.5", BOTH, tls) == []


def test_basic_credentials_too_long_for_mod_audio_fork_are_warned_of() -> None:
    settings = MediaAuthSettings(username="freeswitch", password_env="FORK_PASSWORD")
    tls = WsTlsSettings(cert_file="robot.pem", key_file="robot.key")
    fits = {"FORK_PASSWORD": "p" * (89 - len("freeswitch"))}
    assert exposure_warnings("127.0.0.1", settings, tls, fits) == []
    (warning,) = exposure_warnings("127.0.0.1", settings, tls, {"FORK_PASSWORD": "p" * 80})
    assert "90 bytes" in warning and "mod_audio_fork" in warning


def test_tls_files_are_relative_to_the_robot_folder(tmp_path: Path) -> None:
    (tmp_path / "robot.pem").write_text("not a certificate")
    tls = WsTlsSettings(cert_file="robot.pem", key_file="robot.key")
    assert tls.problems(tmp_path) == [
        f"tls.key_file: {tmp_path / 'robot.key'} is not a readable file"
    ]
    (tmp_path / "robot.key").write_text("not a key")
    assert tls.problems(tmp_path) == []
    from voiceplat.errors import RobotError

    with pytest.raises(RobotError, match="tls: cannot load"):
        tls.context(tmp_path)


def check_output(robot: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    import argparse

    from voiceplat.cli import cmd_check

    code = cmd_check(argparse.Namespace(robot=str(robot)))
    out, err = capsys.readouterr()
    return code, out, err


def test_voiceplat_check_warns_of_an_open_port_and_names_an_unset_secret(
    make_robot: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = check_output(make_robot("open", ws_host="0.0.0.0"), capsys)
    assert code == 0
    assert "warning: ws_host 0.0.0.0 is reachable from other machines and media_auth is off" in out
    code, out, _ = check_output(make_robot("local", ws_host="127.0.0.1"), capsys)
    assert code == 0 and "warning" not in out
    monkeypatch.delenv("UNSET_MEDIA_SECRET", raising=False)
    guarded = make_robot("guarded", media_auth={"password_env": "UNSET_MEDIA_SECRET"})
    code, _, err = check_output(guarded, capsys)
    assert code == 1
    assert "media_auth.password_env: the variable UNSET_MEDIA_SECRET is not set" in err
    monkeypatch.setenv("UNSET_MEDIA_SECRET", "now-set")
    tls = {"cert_file": "robot.pem", "key_file": "robot.key"}
    code, out, err = check_output(
        make_robot("tls", media_auth={"password_env": "UNSET_MEDIA_SECRET"}, tls=tls), capsys
    )
    assert code == 1 and "tls.cert_file:" in err and "robot.pem is not a readable file" in err
