"""`voiceplat check` on a robot with a `sip` section: what it says and its exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from voiceplat.cli import main

AUTH_VAR = "VP_TEST_SIP_AUTH_PASSWORD"
REGISTER_VAR = "VP_TEST_SIP_REGISTER_PASSWORD"
SIP = {
    "port": 5099,
    "auth": {"user": "pbx", "password_env": AUTH_VAR},
    "register": {"registrar": "sip:pbx.example.com", "user": "1001", "password_env": REGISTER_VAR},
}


@pytest.fixture(autouse=True)
def no_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTH_VAR, raising=False)
    monkeypatch.delenv(REGISTER_VAR, raising=False)


def test_check_prints_where_sip_listens(make_robot: Callable[..., Path], capsys) -> None:
    robot = make_robot(sip={"transports": ["udp"], "allow_from": ["10.0.0.0/8"]})
    assert main(["check", str(robot)]) == 0
    out = capsys.readouterr().out
    assert ": OK (" in out
    assert "sip: udp 0.0.0.0:5060; codecs PCMA PCMU G722; calls from 1 networks" in out


def test_missing_credentials_fail_check_and_name_the_variables(
    make_robot: Callable[..., Path], capsys
) -> None:
    robot = make_robot(sip=SIP)
    assert main(["check", str(robot)]) == 1
    captured = capsys.readouterr()
    assert "OK" not in captured.out
    lines = captured.err.splitlines()
    config = robot / "config.json"
    assert f"{config}: sip.auth.password_env: the variable {AUTH_VAR} is not set" in lines[0]
    assert (
        f"{config}: sip.register.password_env: the variable {REGISTER_VAR} is not set" in (lines[1])
    )


def test_credentials_from_the_robots_env_file_pass(
    make_robot: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    robot = make_robot(sip=SIP)
    (robot / ".env").write_text(f"{AUTH_VAR}=pw-Zq81\n")
    monkeypatch.setenv(REGISTER_VAR, "pw-Xk27")
    assert main(["check", str(robot)]) == 0
    out = capsys.readouterr().out
    assert "others with digest auth as pbx; registers as 1001 at sip:pbx.example.com" in out
    assert "pw-" not in out  # no password is printed


def test_an_empty_password_is_missing(
    make_robot: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    robot = make_robot(sip={"auth": SIP["auth"]})
    monkeypatch.setenv(AUTH_VAR, "")
    assert main(["check", str(robot)]) == 1
    assert f"the variable {AUTH_VAR} is not set" in capsys.readouterr().err


def test_a_missing_tls_certificate_fails_check(make_robot: Callable[..., Path], capsys) -> None:
    robot = make_robot(
        sip={"transports": ["tls"], "tls": {"cert_file": "cert.pem", "key_file": "key.pem"}}
    )
    (robot / "key.pem").write_text("key")
    assert main(["check", str(robot)]) == 1
    err = capsys.readouterr().err
    assert f"sip.tls.cert_file: {robot / 'cert.pem'} is not a readable file" in err
    assert "key_file" not in err


def test_a_bad_sip_section_is_a_config_error(make_robot: Callable[..., Path], capsys) -> None:
    robot = make_robot(sip={"allow_from": ["any"]})
    assert main(["check", str(robot)]) == 1
    err = capsys.readouterr().err
    assert 'sip.allow_from[0]: "any" is not allowed' in err and "Traceback" not in err
