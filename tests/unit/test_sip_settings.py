"""The `sip` section of config.json: what a robot author may write, and the errors they read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from voiceplat.config import RobotConfig
from voiceplat.config_errors import describe_errors
from voiceplat.telephony.ingress.sip.settings import PRIVATE_NETWORKS, SipSettings


def errors_of(sip: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        RobotConfig.model_validate({"sip": sip})
    return describe_errors(caught.value, model=RobotConfig)


def test_absent_means_no_sip_and_an_empty_section_means_the_defaults() -> None:
    assert RobotConfig.model_validate({}).sip is None
    sip = RobotConfig.model_validate({"sip": {}}).sip
    assert sip is not None and sip.enabled
    assert (sip.host, sip.port, sip.transports) == ("0.0.0.0", 5060, ["udp", "tcp"])
    assert sip.codecs == ["PCMA", "PCMU", "G722"]
    assert sip.allow_from == PRIVATE_NETWORKS
    assert sip.auth is None and sip.registration is None and sip.tls is None
    assert (sip.max_calls, sip.invites_per_s, sip.invite_burst) == (100, 5.0, 10)


def test_the_full_example_of_the_docs_parses() -> None:
    sip = SipSettings.model_validate(
        {
            "enabled": True,
            "host": "::",
            "port": 5070,
            "transports": ["udp", "tcp", "tls"],
            "tls": {"port": 5071, "cert_file": "cert.pem", "key_file": "key.pem"},
            "srtp": "optional",
            "public_address": "203.0.113.7",
            "rtp_port": 20000,
            "rtp_port_range": 200,
            "codecs": ["G722", "PCMU"],
            "allow_from": ["10.0.0.5", "2001:db8::/32"],
            "auth": {"user": "pbx", "password_env": "SIP_AUTH_PASSWORD"},
            "register": {
                "registrar": "sip:pbx.example.com;transport=tcp",
                "user": "1001",
                "password_env": "SIP_REGISTER_PASSWORD",
                "expires": 600,
            },
            "max_calls": 5,
            "invites_per_s": 0.5,
            "invite_burst": 2,
        }
    )
    assert sip.registration is not None and sip.registration.user == "1001"
    assert sip.auth is not None and sip.auth.realm == "voiceplat"
    assert [str(n) for n in sip.networks()] == ["10.0.0.5/32", "2001:db8::/32"]


@pytest.mark.parametrize("word", ["any", "ANY", "*"])
def test_any_is_refused_with_how_to_say_it(word: str) -> None:
    (line,) = errors_of({"allow_from": ["10.0.0.0/8", word]})
    assert line.startswith(f'sip.allow_from[1]: "{word}" is not allowed;')
    assert 'write "0.0.0.0/0" and "::/0"' in line


def test_any_written_as_networks_is_accepted_and_the_summary_says_so() -> None:
    sip = SipSettings.model_validate({"allow_from": ["0.0.0.0/0", "::/0"]})
    assert "calls from ANY address" in sip.summary()


@pytest.mark.parametrize("bad", ["10.1.2.3/33", "10.0.0", "pbx.example.com", ""])
def test_an_allow_from_entry_that_is_no_network_is_named(bad: str) -> None:
    (line,) = errors_of({"allow_from": ["127.0.0.1", bad]})
    assert line.startswith("sip.allow_from[1]:")
    assert "cidr form" in line


def test_host_bits_in_a_network_are_allowed() -> None:
    sip = SipSettings.model_validate({"allow_from": ["192.168.1.77/24"]})
    assert [str(n) for n in sip.networks()] == ["192.168.1.0/24"]


@pytest.mark.parametrize(
    ("codecs", "expected"),
    [
        (["PCMA", "opus"], "sip.codecs[1]: \"opus\" is not allowed; must be one of: 'PCMA'"),
        ([], "sip.codecs: [] is not allowed; must have at least 1 item(s)"),
        (["PCMU", "PCMU"], 'sip.codecs: ["PCMU", "PCMU"] is not allowed; lists a value twice'),
    ],
)
def test_codecs(codecs: list[str], expected: str) -> None:
    (line,) = errors_of({"codecs": codecs})
    assert line.startswith(expected)


@pytest.mark.parametrize(
    ("sip", "expected"),
    [
        ({"transports": ["udp", "sctp"]}, 'sip.transports[1]: "sctp" is not allowed'),
        ({"transports": []}, "sip.transports: [] is not allowed; must have at least 1"),
        ({"transports": ["tcp", "tcp"]}, "lists a value twice"),
        ({"transports": ["tls"]}, 'sip.tls: null is not allowed; transports has "tls": add a'),
        (
            {"tls": {"cert_file": "c.pem", "key_file": "k.pem"}},
            'there is a "tls" section but transports lacks "tls"',
        ),
        (
            {
                "transports": ["tcp", "tls"],
                "tls": {"port": 5060, "cert_file": "c", "key_file": "k"},
            },
            "tls.port must differ from port",
        ),
        ({"transports": ["tls"], "tls": {"cert_file": "c.pem"}}, "sip.tls.key_file: is required"),
    ],
)
def test_transports_and_tls(sip: dict[str, Any], expected: str) -> None:
    (line,) = errors_of(sip)
    assert expected in line


def test_tls_alone_on_the_sip_port_is_fine() -> None:
    sip = SipSettings.model_validate(
        {"transports": ["tls"], "tls": {"port": 5060, "cert_file": "c", "key_file": "k"}}
    )
    assert sip.summary().startswith("sip: tls 0.0.0.0:5060;")


def test_the_tls_files_are_checked_when_asked_not_when_parsed(tmp_path: Path) -> None:
    sip = SipSettings.model_validate(
        {"transports": ["tls"], "tls": {"cert_file": "cert.pem", "key_file": "/nowhere/key.pem"}}
    )
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert sip.tls is not None
    cert, key, ca = sip.tls.paths(tmp_path)
    assert (cert, key, ca) == (tmp_path / "cert.pem", Path("/nowhere/key.pem"), None)
    assert sip.problems({}, tmp_path) == [
        "sip.tls.key_file: /nowhere/key.pem is not a readable file"
    ]
    (tmp_path / "cert.pem").unlink()
    assert len(sip.problems({}, tmp_path)) == 2


@pytest.mark.parametrize("host", ["localhost", "0.0.0.0:5060", "10.0.0.256"])
def test_host_must_be_an_ip_address(host: str) -> None:
    (line,) = errors_of({"host": host})
    assert line.startswith(f'sip.host: "{host}" is not allowed; must be an ip address')


@pytest.mark.parametrize("registrar", ["pbx.example.com", "http://pbx", "sip:", "sip:a b"])
def test_the_registrar_must_be_a_sip_uri(registrar: str) -> None:
    (line,) = errors_of({"register": {"registrar": registrar, "user": "1001"}})
    assert "sip.register.registrar:" in line and "must be a sip: or sips: uri" in line


@pytest.mark.parametrize("registrar", ["sip:pbx.example.com", "SIPS:1001@pbx:5061", "sip:[::1]"])
def test_sip_and_sips_registrars(registrar: str) -> None:
    sip = SipSettings.model_validate({"register": {"registrar": registrar, "user": "1001"}})
    assert sip.registration is not None and sip.registration.registrar == registrar


def test_an_unknown_key_inside_register_is_named() -> None:
    (line,) = errors_of({"register": {"registrar": "sip:pbx", "user": "1", "expire": 60}})
    assert line.startswith("sip.register.expire: unknown key (a typo?)")


def test_a_password_written_where_its_variable_name_belongs_is_refused() -> None:
    (line,) = errors_of({"auth": {"user": "pbx", "password_env": "hunter 2!"}})
    assert line.startswith("sip.auth.password_env:")
    assert "not the password itself" in line


def test_a_password_variable_in_the_config_namespace_is_refused() -> None:
    # config.py reads VOICEPLAT_* variables as config keys: this one would break the config.
    (line,) = errors_of(
        {"register": {"registrar": "sip:pbx", "user": "1", "password_env": "VOICEPLAT_SIP_PW"}}
    )
    assert "sip.register.password_env:" in line and "read as config values" in line


def test_passwords_come_from_the_environment() -> None:
    sip = SipSettings.model_validate(
        {
            "auth": {"user": "pbx", "password_env": "IN_PW"},
            "register": {"registrar": "sip:pbx", "user": "1001", "password_env": "REG_PW"},
        }
    )
    assert sip.auth is not None and sip.registration is not None
    env = {"IN_PW": "s3cret", "REG_PW": ""}
    assert sip.auth.password(env) == "s3cret"
    assert sip.registration.password(env) is None  # empty is as good as unset
    assert sip.problems(env, Path(".")) == [
        "sip.register.password_env: the variable REG_PW is not set "
        "(put it in the environment or the robot's .env)"
    ]
    assert sip.problems({"IN_PW": "a", "REG_PW": "b"}, Path(".")) == []


def test_a_registration_without_a_password_needs_none() -> None:
    sip = SipSettings.model_validate({"register": {"registrar": "sip:pbx", "user": "1001"}})
    assert sip.registration is not None and sip.registration.password({}) is None
    assert sip.problems({}, Path(".")) == []


def test_nobody_can_call_is_a_problem_and_disabled_sip_has_none() -> None:
    assert SipSettings.model_validate({"allow_from": []}).problems({}, Path(".")) == [
        "sip.allow_from: is empty and there is no auth: every call is refused"
    ]
    disabled = SipSettings.model_validate(
        {"enabled": False, "auth": {"user": "pbx", "password_env": "UNSET_PW"}}
    )
    assert disabled.problems({}, Path(".")) == []
    assert disabled.summary() == "sip: disabled"


def test_rtp_ports_must_exist() -> None:
    (line,) = errors_of({"rtp_port": 60000})
    assert line.startswith("sip.rtp_port_range: 10000 is not allowed; rtp_port + rtp_port_range")
    assert SipSettings.model_validate({"rtp_port": 60000, "rtp_port_range": 5000}).rtp_port == 60000


def test_numbers_are_bounded() -> None:
    lines = errors_of({"port": 0, "max_calls": 0, "invites_per_s": 0, "invite_burst": -1})
    assert [line.split(":")[0] for line in lines] == [
        "sip.port",
        "sip.max_calls",
        "sip.invites_per_s",
        "sip.invite_burst",
    ]


def test_the_summary_names_what_listens_and_who_may_call() -> None:
    sip = SipSettings.model_validate(
        {
            "host": "::",
            "transports": ["udp", "tls"],
            "tls": {"cert_file": "c", "key_file": "k"},
            "auth": {"user": "pbx", "password_env": "PW"},
            "register": {"registrar": "sip:pbx.example.com", "user": "1001"},
        }
    )
    assert sip.summary() == (
        "sip: udp [::]:5060, tls [::]:5061; codecs PCMA PCMU G722; calls from 6 networks; "
        "others with digest auth as pbx; registers as 1001 at sip:pbx.example.com; max 100 calls"
    )
