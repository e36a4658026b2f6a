"""Digest authentication of inbound INVITEs, the server side (RFC 2617 / RFC 3261 section 22,
MD5 with qop="auth" as RFC 8760 keeps it for SIP).

A caller outside `allow_from` gets `401 Unauthorized` with `challenge()` in WWW-Authenticate and
sends the INVITE again with an Authorization header that `verify` checks. The nonce carries its
own issue time, signed with a per-process key (HMAC-SHA256), so the server keeps no table of
nonces it gave out: a nonce is good when its signature is and it is younger than `NONCE_TTL_S`.
The one state kept is a bounded set of answers already accepted, so that a captured INVITE
replayed within those seconds is sent back to be challenged afresh (it cannot answer that).

Everything a caller sends is untrusted text: parsing and verifying never raise; they say no.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

NONCE_TTL_S = 300.0
MAX_HEADER_CHARS = 8192
MAX_PARAMS = 32
REPLAY_CACHE_SIZE = 8192

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
WHITESPACE = " \t\r\n"
HEX32 = re.compile(r"[0-9a-fA-F]{32}")
NONCE = re.compile(r"([0-9a-f]{1,16})-([0-9a-f]{16})-([0-9a-f]{32})")
NONCE_COUNT = re.compile(r"[0-9a-fA-F]{8}")


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    stale: bool = False
    """The answer was right for a nonce that expired (or was used): challenge again with
    stale=true, so the caller retries with the same password without asking anyone."""
    reason: str = ""


def parse_authorization(value: str) -> dict[str, str] | None:
    """The parameters of a `Digest ...` credentials value, names in lower case; None for another
    scheme, a duplicate parameter or anything that is not auth-param syntax (RFC 7235)."""
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS:
        return None
    text = value.strip(WHITESPACE)
    scheme = TOKEN.match(text)
    if scheme is None or scheme.group().lower() != "digest":
        return None
    pos, end = scheme.end(), len(text)
    if pos < end and text[pos] not in WHITESPACE:
        return None
    params: dict[str, str] = {}
    while True:
        pos = _skip(text, pos, WHITESPACE + ",")
        if pos >= end:
            return params or None
        name = TOKEN.match(text, pos)
        if name is None:
            return None
        key = name.group().lower()
        pos = _skip(text, name.end(), WHITESPACE)
        if pos >= end or text[pos] != "=":
            return None
        pos = _skip(text, pos + 1, WHITESPACE)
        if pos < end and text[pos] == '"':
            parsed = _quoted(text, pos)
            if parsed is None:
                return None
            item, pos = parsed
        else:
            token = TOKEN.match(text, pos)
            if token is None:
                return None
            item, pos = token.group(), token.end()
        if key in params or len(params) >= MAX_PARAMS:
            return None
        params[key] = item
        pos = _skip(text, pos, WHITESPACE)
        if pos < end and text[pos] != ",":
            return None


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _quoted(text: str, pos: int) -> tuple[str, int] | None:
    """The quoted-string starting at text[pos] == '"', unescaped, and the index after it."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            pos += 1
            if pos >= len(text):
                return None
            char = text[pos]
        out.append(char)
        pos += 1
    return None  # no closing quote


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bytes(value: str) -> bytes:
    # surrogatepass: a caller's text may hold lone surrogates; encoding must neither fail nor
    # make two different strings equal.
    return value.encode("utf-8", "surrogatepass")


def md5_hex(*parts: str) -> str:
    return hashlib.md5(_bytes(":".join(parts))).hexdigest()


def digest_response(
    *,
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
) -> str:
    """request-digest of RFC 2617 section 3.2.2.1 for algorithm MD5 (qop "auth" or none)."""
    ha1 = md5_hex(user, realm, password)
    ha2 = md5_hex(method, uri)
    if qop is None:
        return md5_hex(ha1, nonce, ha2)  # RFC 2069 compatibility: callers that ignore qop
    return md5_hex(ha1, nonce, nc, cnonce, qop, ha2)


class DigestAuthenticator:
    """Challenges and checks the one user an inbound SIP endpoint knows. Thread-safe."""

    def __init__(
        self,
        realm: str,
        user: str,
        password: str,
        *,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
        nonce_ttl_s: float = NONCE_TTL_S,
    ) -> None:
        if not password:
            raise ValueError("digest authentication needs a password")
        self.realm = realm
        self.user = user
        self._password = password
        self._key = secret if secret is not None else os.urandom(32)
        self._clock = clock
        self._ttl_s = nonce_ttl_s
        self._used: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._lock = threading.Lock()

    def challenge(self, *, stale: bool = False) -> str:
        """The value of a 401's WWW-Authenticate header, with a fresh nonce."""
        value = (
            f"Digest realm={_quote(self.realm)}, nonce={_quote(self._nonce())}, "
            'algorithm=MD5, qop="auth"'
        )
        return value + ", stale=true" if stale else value

    def _nonce(self) -> str:
        issued = format(max(0, int(self._clock() * 1000)), "x")
        salt = os.urandom(8).hex()
        return f"{issued}-{salt}-{self._sign(issued, salt)}"

    def _sign(self, issued: str, salt: str) -> str:
        message = _bytes(f"{issued}-{salt}-{self.realm}")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def _nonce_age_s(self, nonce: str) -> float | None:
        """Seconds since this process issued the nonce; None if it did not."""
        parts = NONCE.fullmatch(nonce)
        if parts is None:
            return None
        issued, salt, signature = parts.groups()
        if not hmac.compare_digest(signature, self._sign(issued, salt)):
            return None
        return self._clock() - int(issued, 16) / 1000

    def verify(
        self, method: str, authorization: str, *, request_uri: str | None = None
    ) -> AuthResult:
        """Whether the Authorization header value answers one of our challenges for `method`
        (with `request_uri`, the digest's uri must be it too). Never raises."""
        params = parse_authorization(authorization)
        if params is None:
            return AuthResult(False, reason="malformed Authorization header")
        for name in ("username", "realm", "nonce", "uri", "response"):
            if not params.get(name):
                return AuthResult(False, reason=f"Authorization lacks {name}")
        if params.get("algorithm", "MD5").upper() != "MD5":
            return AuthResult(False, reason=f"unsupported algorithm {params['algorithm']!r}")
        if not hmac.compare_digest(_bytes(params["username"]), _bytes(self.user)):
            return AuthResult(False, reason="unknown user")
        if params["realm"] != self.realm:
            return AuthResult(False, reason="wrong realm")
        if request_uri is not None and params["uri"] != request_uri:
            return AuthResult(False, reason="digest uri is not the request's")
        nonce = params["nonce"]
        age_s = self._nonce_age_s(nonce)
        if age_s is None or age_s < -1.0:
            return AuthResult(False, reason="nonce not issued here")
        qop = params.get("qop")
        if qop is not None:
            if qop.lower() != "auth":
                return AuthResult(False, reason=f"unsupported qop {qop!r}")
            nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
            if not NONCE_COUNT.fullmatch(nc) or not cnonce:
                return AuthResult(False, reason="qop=auth without a valid nc and cnonce")
        response = params["response"]
        if not HEX32.fullmatch(response):
            return AuthResult(False, reason="response is not an MD5 digest")
        expected = digest_response(
            user=self.user,
            realm=self.realm,
            password=self._password,
            method=method,
            uri=params["uri"],
            nonce=nonce,
            qop=qop.lower() if qop else None,
            nc=params.get("nc", ""),
            cnonce=params.get("cnonce", ""),
        )
        if not hmac.compare_digest(expected, response.lower()):
            return AuthResult(False, reason="wrong password")
        if age_s > self._ttl_s:
            return AuthResult(False, stale=True, reason="nonce expired")
        if not self._first_use(nonce, params, age_s):
            return AuthResult(False, stale=True, reason="credentials already used")
        return AuthResult(True)

    def _first_use(self, nonce: str, params: dict[str, str], age_s: float) -> bool:
        if "qop" in params:
            key = (nonce, params["nc"].lower(), params["cnonce"])
        else:
            key = (nonce, params["uri"], params["response"].lower())
        now = self._clock()
        with self._lock:
            while self._used and next(iter(self._used.values())) < now:
                self._used.popitem(last=False)  # expired nonces cannot be replayed anyway
            if key in self._used:
                return False
            self._used[key] = now + (self._ttl_s - age_s)
            if len(self._used) > REPLAY_CACHE_SIZE:
                self._used.popitem(last=False)
            return True
