"""Who may open a WebSocket on the robot's port (`media_auth`), and TLS for that port (`tls`).

Credentials, checked in the HTTP handshake before any call exists (a refusal is a 401 with
`WWW-Authenticate`, counted in `voiceplat_media_auth_refused_total{ingress,reason}` and logged in
one line without the secret):

- Basic, as mod_audio_fork sends it: the channel variables `MOD_AUDIO_BASIC_AUTH_USERNAME` and
  `MOD_AUDIO_BASIC_AUTH_PASSWORD` become `Authorization: Basic base64(user:password)` (its
  audio_pipe.cpp, LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER; both must be non-empty, and
  user + password at most 89 bytes: the header is built in a 128-byte buffer, and past that the
  module sends no header, or a cut one);
- `Authorization: Bearer <token>`, or `?token=<token>` in the URL for peers that cannot set
  headers (a browser's WebSocket).

An ingress with credentials of its own configured (asterisk_ws.password_env, audio_stream.token_env,
twilio.auth_token_env / token_env) keeps its own check, run in the same handshake hook (same 401,
counter and log line, with that ingress's name); `media_auth` covers every other one:
mod_audio_fork's default path, `/web`, and the others while they have none. Which check guards
which path is `ingress/paths.py`'s `media_auth`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field
from websockets.http11 import Request, Response

from voiceplat.errors import RobotError
from voiceplat.telephony.ingress.sip.settings import EnvName

log = logging.getLogger(__name__)

REFUSED = Counter(
    "voiceplat_media_auth_refused",
    "WebSocket handshakes refused for their credentials (reason: missing, malformed, wrong, "
    "unset).",
    ["ingress", "reason"],
)
REALM = 'Basic realm="voiceplat", Bearer realm="voiceplat"'
BASIC_REALM = 'Basic realm="voiceplat"'
BEARER_REALM = 'Bearer realm="voiceplat"'
UNSET_MESSAGE = "media auth is configured but its secret is not set\n"
"""A stranger reads this, not which variable is missing (that goes to the log)."""


class MediaAuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(
        None,
        min_length=1,
        description="Basic auth user name (mod_audio_fork: MOD_AUDIO_BASIC_AUTH_USERNAME); "
        "None: any name",
    )
    password_env: EnvName | None = Field(
        None,
        description="variable holding the Basic password (MOD_AUDIO_BASIC_AUTH_PASSWORD); "
        "set = credentials required",
    )
    token_env: EnvName | None = Field(
        None,
        description="variable holding a token: 'Authorization: Bearer <token>', ?token=<token> "
        "or a Basic password; set = credentials required",
    )

    @property
    def enabled(self) -> bool:
        return self.password_env is not None or self.token_env is not None

    def problems(self, env: Mapping[str, str]) -> list[str]:
        return [
            f"media_auth.{key}: the variable {name} is not set (in the robot's .env or the "
            "environment)"
            for key, name in (("password_env", self.password_env), ("token_env", self.token_env))
            if name is not None and not env.get(name)
        ]


class WsTlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cert_file: str = Field(
        min_length=1, description="PEM certificate (chain); relative to the robot folder"
    )
    key_file: str = Field(min_length=1, description="PEM private key; relative to the robot folder")

    def paths(self, robot_dir: Path) -> tuple[Path, Path]:
        return robot_dir / self.cert_file, robot_dir / self.key_file

    def problems(self, robot_dir: Path) -> list[str]:
        named = zip(("cert_file", "key_file"), self.paths(robot_dir), strict=True)
        return [
            f"tls.{key}: {path} is not a readable file" for key, path in named if not _is_file(path)
        ]

    def context(self, robot_dir: Path) -> ssl.SSLContext:
        """The server's TLS context; RobotError naming the files when they do not load."""
        cert, key = self.paths(robot_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise RobotError(f"tls: cannot load {cert} / {key}: {exc}") from None
        return context


def _is_file(path: Path) -> bool:
    try:
        with path.open("rb"):
            return path.is_file()
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    """The metric's label: missing, malformed, wrong, unset."""
    message: str
    """What the peer reads in the 401's body (never a secret)."""
    detail: str = ""
    """For the log line only: what the operator must fix (a variable's name, never its value)."""


def _matches(given: str, secret: str | None) -> bool:
    return secret is not None and hmac.compare_digest(given.encode(), secret.encode())


def _query_token(path: str) -> str | None:
    _, _, query = path.partition("?")
    values = parse_qs(query).get("token") if query else None
    return values[0] if values else None


def check(
    settings: MediaAuthSettings, env: Mapping[str, str], authorization: str | None, path: str
) -> Refusal | None:
    """Whether a handshake with this Authorization header and request path may open; None: yes."""
    password = (env.get(settings.password_env) or None) if settings.password_env else None
    token = (env.get(settings.token_env) or None) if settings.token_env else None
    if password is None and token is None:
        names = " / ".join(n for n in (settings.password_env, settings.token_env) if n)
        return Refusal("unset", UNSET_MESSAGE, f"media_auth: the variable {names} is not set")
    query = _query_token(path)
    if not authorization:
        if query is None:
            return Refusal("missing", "credentials required: Basic, Bearer or ?token=\n")
        return None if _matches(query, token) else Refusal("wrong", "wrong token\n")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return None if _matches(credentials.strip(), token) else Refusal("wrong", "wrong token\n")
    if scheme.lower() != "basic":
        return Refusal("malformed", f"unsupported Authorization scheme {scheme[:20]!r}\n")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return Refusal("malformed", "malformed Basic credentials\n")
    user, colon, given = decoded.partition(":")
    if not colon:
        return Refusal("malformed", "malformed Basic credentials\n")
    good_user = settings.username is None or _matches(user, settings.username)
    # A Basic password may be the token too: mod_audio_fork can send nothing but Basic.
    good_secret = _matches(given, password) or _matches(given, token)
    return None if good_user and good_secret else Refusal("wrong", "wrong user name or password\n")


IngressOf = Callable[[str], str | None]
"""The ingress a request path opens (`audio_fork`, `web`, ...), or None where the ingress checks
credentials of its own."""

Check = Callable[[Request], Refusal | None]
"""One ingress's credentials check of a handshake request; None: let in."""


@dataclass(frozen=True, slots=True)
class Guard:
    """Who guards one request path: the ingress's name (the metric's label), its check, and the
    `WWW-Authenticate` challenge naming the schemes that check takes."""

    ingress: str
    check: Check
    challenge: str = REALM


class HandshakeAuth:
    """The connection's `authorize` hook: a 401 response for a refused handshake, else None.
    `guard_of(path)` says which check guards a request path (None: an open path)."""

    def __init__(self, guard_of: Callable[[str], Guard | None]) -> None:
        self.guard_of = guard_of

    def __call__(self, request: Request, peer: str | None) -> Response | None:
        path = request.path.split("?", 1)[0]
        guard = self.guard_of(path)
        if guard is None:
            return None
        refusal = guard.check(request)
        if refusal is None:
            return None
        REFUSED.labels(ingress=guard.ingress, reason=refusal.reason).inc()
        log.info(
            "media auth: refused a %s handshake from %s on %s: %s%s",
            guard.ingress,
            peer or "?",
            path,  # (never the query: it may hold a token)
            refusal.message.strip(),
            f" ({refusal.detail})" if refusal.detail else "",
        )
        from voiceplat.telephony.http_routes import response  # (it imports the recorder)

        return response(401, refusal.message, WWW_Authenticate=guard.challenge)


class MediaAuth(HandshakeAuth):
    """`media_auth`'s check on every path `ingress_of` names an ingress for."""

    def __init__(
        self, settings: MediaAuthSettings, env: Mapping[str, str], ingress_of: IngressOf
    ) -> None:
        self.settings = settings
        self.env = env
        self.ingress_of = ingress_of
        super().__init__(self._guard)

    def check_request(self, request: Request) -> Refusal | None:
        authorization = request.headers.get("Authorization")
        return check(self.settings, self.env, authorization, request.path)

    def _guard(self, path: str) -> Guard | None:
        ingress = self.ingress_of(path)
        return None if ingress is None else Guard(ingress, self.check_request)


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


MOD_AUDIO_FORK_MAX_CREDENTIALS = 89
"""Bytes of user name + password mod_audio_fork can send (see the module docstring)."""


def exposure_warnings(
    host: str,
    media_auth: MediaAuthSettings,
    tls: WsTlsSettings | None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """What `voiceplat check` and the start warn of for a robot listening on `host` (with `env`:
    Basic credentials too long for mod_audio_fork)."""
    found = []
    secret = env.get(media_auth.password_env) if env and media_auth.password_env else None
    if secret and media_auth.username:
        size = len(media_auth.username.encode()) + len(secret.encode())
        if size > MOD_AUDIO_FORK_MAX_CREDENTIALS:
            found.append(
                f"media_auth: username + password are {size} bytes; mod_audio_fork sends no "
                f"Basic credentials past {MOD_AUDIO_FORK_MAX_CREDENTIALS} (use a shorter password)"
            )
    return found + _open_port_warnings(host, media_auth, tls)


def _open_port_warnings(
    host: str, media_auth: MediaAuthSettings, tls: WsTlsSettings | None
) -> list[str]:
    if is_loopback_host(host):
        return []
    if not media_auth.enabled:
        return [
            f"ws_host {host} is reachable from other machines and media_auth is off: anyone who "
            'reaches the port can place calls; add "media_auth": {"password_env": "<VAR>"} '
            "(or token_env), or listen on 127.0.0.1"
        ]
    if tls is None:
        return [
            f"ws_host {host} is reachable from other machines without TLS: credentials and audio "
            'travel in clear text; add "tls": {"cert_file": ..., "key_file": ...}'
        ]
    return []
