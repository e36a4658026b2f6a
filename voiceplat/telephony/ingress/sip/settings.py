"""The `sip` section of a robot's config.json: where the robot listens for SIP and who may call it.

Only the shape is checked when the config is parsed. What depends on the machine (a TLS file that
exists, a password variable that is set) is `SipSettings.problems`, which `voiceplat check` prints
and the endpoint calls before it starts: a config stays valid when copied to a machine whose
secrets live elsewhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

Transport = Literal["udp", "tcp", "tls"]
Codec = Literal["PCMA", "PCMU", "G722"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_TRANSPORTS: list[Transport] = ["udp", "tcp"]
DEFAULT_CODECS: list[Codec] = ["PCMA", "PCMU", "G722"]

PRIVATE_NETWORKS = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
]
"""Loopback and private ranges: a PBX in the same LAN reaches the robot, the Internet does not."""

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SIP_URI = re.compile(r"sips?:[^\s@]+(@[^\s@]+)?", re.IGNORECASE)
CONFIG_ENV_PREFIX = (
    "VOICEPLAT_"  # voiceplat/config_sources.py reads every such variable as a config value
)


def _error(message: str) -> PydanticCustomError:
    # voiceplat/config_errors.py prints the message after "<path>: <value> is not allowed; " and
    # lowercases it, so messages are written in lower case and name no upper-case values.
    return PydanticCustomError("sip_setting", message)


def _cidr(value: str) -> str:
    if value.strip().lower() in {"any", "all", "*"}:
        raise _error('to accept any source say so explicitly: write "0.0.0.0/0" and "::/0"')
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise _error(
            'must be an address or network in CIDR form, e.g. "192.168.0.0/16" or "10.0.0.5"'
        ) from None
    return value.strip()


def _env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise _error(
            "must be the name of an environment variable that holds the password "
            "(letters, digits and _), not the password itself"
        )
    if value.upper().startswith(CONFIG_ENV_PREFIX):
        raise _error(
            "variables named voiceplat_* are read as config values; "
            "name the password variable otherwise, e.g. sip_auth_password"
        )
    return value


def _sip_uri(value: str) -> str:
    if not SIP_URI.fullmatch(value):
        raise _error('must be a sip: or sips: uri, e.g. "sip:pbx.example.com"')
    return value


def _ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise _error(
            'must be an ip address to listen on, e.g. "0.0.0.0", "::" or "10.0.0.5"'
        ) from None
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise _error("lists a value twice")
    return values


Cidr = Annotated[str, AfterValidator(_cidr)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _secret(env: Mapping[str, str], name: str | None) -> str | None:
    """The variable's value; None when it is unset or empty (an empty password is a mistake)."""
    return (env.get(name) or None) if name else None


def _unset(path: str, name: str) -> str:
    return f"{path}: the variable {name} is not set (put it in the environment or the robot's .env)"


class TlsSettings(Strict):
    port: Port = 5061
    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    ca_file: str | None = Field(None, min_length=1)

    def paths(self, base_dir: Path) -> tuple[Path, Path, Path | None]:
        """cert, key and CA files; relative names are in the robot folder."""

        def resolve(name: str) -> Path:
            return base_dir / Path(name).expanduser()

        return (
            resolve(self.cert_file),
            resolve(self.key_file),
            resolve(self.ca_file) if self.ca_file else None,
        )

    def problems(self, base_dir: Path) -> list[str]:
        cert, key, ca = self.paths(base_dir)
        named = {"cert_file": cert, "key_file": key, "ca_file": ca}
        return [
            f"sip.tls.{name}: {path} is not a readable file"
            for name, path in named.items()
            if path is not None and not _readable(path)
        ]


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return path.is_file()
    except OSError:
        return False


class InboundAuth(Strict):
    """Digest authentication a caller outside `allow_from` must pass."""

    user: str = Field(min_length=1)
    password_env: EnvName
    realm: str = Field("voiceplat", min_length=1)

    def password(self, env: Mapping[str, str]) -> str | None:
        return _secret(env, self.password_env)


class Registration(Strict):
    """The robot registers as an extension on a PBX and receives the calls sent to it."""

    registrar: Annotated[str, AfterValidator(_sip_uri)]
    user: str = Field(min_length=1)
    password_env: EnvName | None = None
    expires: int = Field(300, ge=30, le=86400, description="seconds a registration lasts")
    domain: str | None = Field(None, min_length=1, description="the AOR's host; the registrar's")
    retry_s: PositiveFloat = Field(30, description="wait before registering again after a failure")

    def password(self, env: Mapping[str, str]) -> str | None:
        return _secret(env, self.password_env)


class SipSettings(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enabled: bool = True
    host: Annotated[str, AfterValidator(_ip_address)] = "0.0.0.0"
    port: Port = 5060
    transports: Annotated[list[Transport], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(DEFAULT_TRANSPORTS), min_length=1
    )
    tls: TlsSettings | None = Field(None, validate_default=True)
    srtp: Literal["off", "optional", "mandatory"] = "off"
    public_address: str | None = Field(
        None, min_length=1, description="NAT: the address peers reach, in Contact and SDP"
    )
    rtp_port: Port = 10000
    rtp_port_range: int = Field(10000, ge=0, le=65534, validate_default=True)
    codecs: Annotated[list[Codec], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(DEFAULT_CODECS),
        min_length=1,
        description="priority order; codecs not listed are disabled",
    )
    allow_from: list[Cidr] = Field(default_factory=lambda: list(PRIVATE_NETWORKS))
    auth: InboundAuth | None = None
    # "register" in config.json; the attribute is `registration` because pydantic models (ABCs)
    # already have a `register` method.
    registration: Registration | None = Field(None, alias="register")
    max_calls: PositiveInt = 100
    invites_per_s: PositiveFloat = Field(5.0, description="per source; beyond it 503")
    invite_burst: PositiveInt = 10
    rtp_timeout_s: PositiveFloat = 30
    answer_after_ms: int = Field(
        0, ge=0, le=60000, description="ring (180) this long before answering; 0 answers at once"
    )
    transfer_timeout_s: PositiveFloat = 30
    user_agent: str = "voiceplat"

    # Field validators rather than one model validator, so that an error names the key at fault;
    # info.data holds the fields declared above the one being checked.
    @field_validator("tls")
    @classmethod
    def _tls_matches_transports(
        cls, tls: TlsSettings | None, info: ValidationInfo
    ) -> TlsSettings | None:
        transports = info.data.get("transports", [])
        if "tls" in transports and tls is None:
            raise _error('transports has "tls": add a "tls" section with cert_file and key_file')
        if tls is not None and "tls" not in transports:
            raise _error('there is a "tls" section but transports lacks "tls"')
        if tls and "tcp" in transports and tls.port == info.data.get("port"):
            raise _error("tls.port must differ from port: tcp listens there")
        return tls

    @field_validator("rtp_port_range")
    @classmethod
    def _rtp_ports_exist(cls, span: int, info: ValidationInfo) -> int:
        if info.data.get("rtp_port", 0) + span > 65535:
            raise _error("rtp_port + rtp_port_range must stay below 65536")
        return span

    def networks(self) -> list[IpNetwork]:
        return [ipaddress.ip_network(cidr, strict=False) for cidr in self.allow_from]

    def problems(self, env: Mapping[str, str], base_dir: Path) -> list[str]:
        """What stops SIP from working on this machine: a missing password or TLS file."""
        if not self.enabled:
            return []
        lines = self.tls.problems(base_dir) if self.tls else []
        if self.auth and self.auth.password(env) is None:
            lines.append(_unset("sip.auth.password_env", self.auth.password_env))
        reg = self.registration
        if reg and reg.password_env and reg.password(env) is None:
            lines.append(_unset("sip.register.password_env", reg.password_env))
        if not self.allow_from and self.auth is None:
            lines.append("sip.allow_from: is empty and there is no auth: every call is refused")
        return lines

    def summary(self) -> str:
        """One line for `voiceplat check`."""
        if not self.enabled:
            return "sip: disabled"
        where = f"[{self.host}]" if ":" in self.host else self.host
        listening = [
            f"{t} {where}:{self.tls.port if t == 'tls' and self.tls else self.port}"
            for t in self.transports
        ]
        parts = [", ".join(listening), f"codecs {' '.join(self.codecs)}"]
        everyone = {"0.0.0.0/0", "::/0"} & {str(n) for n in self.networks()}
        parts.append(
            "calls from ANY address" if everyone else f"calls from {len(self.allow_from)} networks"
        )
        if self.auth:
            parts.append(f"others with digest auth as {self.auth.user}")
        if reg := self.registration:
            parts.append(f"registers as {reg.user} at {reg.registrar}")
        parts.append(f"max {self.max_calls} calls")
        return "sip: " + "; ".join(parts)
