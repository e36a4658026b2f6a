"""Who may stream to the Twilio ingress: X-Twilio-Signature and/or a shared token.

Twilio signs each request it makes, the Media Streams WebSocket handshake included, with the
account's Auth Token (https://www.twilio.com/docs/usage/webhooks/webhooks-security): HMAC-SHA1 over
the full URL followed by each POST parameter's name and value, sorted by name (a GET handshake has
none), base64 in `X-Twilio-Signature`. A <Stream> url takes no query string, so the signed URL is the
one in the TwiML (`public_url`), or wss:// + Host + path when the robot is reached directly.

Twilio cannot add headers of ours, so a shared token (other CPaaS, the simulator, a proxy) may come
as `Authorization: Bearer <token>`, as a Basic password, or in the start message's
`customParameters.token` (a <Parameter name="token"> in the TwiML), checked when it arrives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from websockets.http11 import Request

from voiceplat.telephony.ingress.twilio.settings import TwilioSettings
from voiceplat.telephony.media_auth import UNSET_MESSAGE, Refusal

SIGNATURE_HEADER = "X-Twilio-Signature"


def signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's request signature of `url` (and POST `params`) under `auth_token`."""
    params = params or {}
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(auth_token: str, url: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(signature(auth_token, url), given.strip())


def _header_token(request: Request) -> str | None:
    value = request.headers.get("Authorization")
    if not value:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""  # present but unreadable: a wrong token
        return decoded.partition(":")[2]
    return ""


@dataclass(frozen=True, slots=True)
class Verdict:
    refused: str | None = None
    """Why the handshake is refused (None: not refused)."""
    token_in_start: str | None = None
    """Not decided yet: the start message's customParameters.token must equal this."""
    failed: str = ""
    """What the handshake's own credentials lacked (said too if the start's token fails)."""
    reason: str = ""
    """With `refused`, the metric's label: unset (no method's secret is set: nobody gets in),
    wrong (a credential was sent and is not right), else missing."""


def check_request(
    settings: TwilioSettings, request: Request | None, env: Mapping[str, str] | None = None
) -> Verdict:
    """Whether this handshake may stream; either configured method admits it. `env`: the
    robot's (its .env and the environment); None: the process environment."""
    if settings.auth_token_env is None and settings.token_env is None:
        return Verdict()  # no auth configured: open, as mod_audio_fork's path is
    if request is None:
        return Verdict(refused="no handshake request", reason="missing")
    env = os.environ if env is None else env
    reasons, labels = [], set()
    if settings.auth_token_env is not None:
        auth_token = env.get(settings.auth_token_env) or None
        given_signature = request.headers.get(SIGNATURE_HEADER)
        if auth_token is None:
            reasons.append(f"the Auth Token variable {settings.auth_token_env} is not set")
            labels.add("unset")
        else:
            path = request.path.split("?")[0]
            url = settings.public_url or f"wss://{request.headers.get('Host', '')}{path}"
            if signature_valid(auth_token, url, given_signature):
                return Verdict()
            reasons.append(f"{SIGNATURE_HEADER} missing or not valid for {url}")
            labels.add("missing" if given_signature is None else "wrong")
    if settings.token_env is not None:
        token = env.get(settings.token_env) or None
        if token is None:
            reasons.append(f"the token variable {settings.token_env} is not set")
            labels.add("unset")
        else:
            given = _header_token(request)
            if given is None:
                # perhaps in customParameters.token
                return Verdict(token_in_start=token, failed="; ".join(reasons))
            if hmac.compare_digest(given.encode(), token.encode()):
                return Verdict()
            reasons.append("the Authorization token is wrong")
            labels.add("wrong")
    reason = "unset" if labels == {"unset"} else "wrong" if "wrong" in labels else "missing"
    return Verdict(refused="; ".join(reasons), reason=reason)


def handshake_check(
    settings: TwilioSettings, request: Request, env: Mapping[str, str]
) -> Refusal | None:
    """The handshake's refusal (a 401: `media_auth.HandshakeAuth`); None: let in, a token still
    awaited in the start message included (the channel checks it: the stream is open then)."""
    verdict = check_request(settings, request, env)
    if verdict.refused is None:
        return None
    if verdict.reason == "unset":
        return Refusal("unset", UNSET_MESSAGE, f"twilio: {verdict.refused}")
    # (the reasons name a header and the signed URL, never a secret)
    return Refusal(verdict.reason, f"not authorised: {verdict.refused}\n")


def start_token_valid(expected: str, custom_parameters: Mapping[str, object]) -> bool:
    given = custom_parameters.get("token")
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())
