"""Who may start a call: the first thing the SIP endpoint asks about every new INVITE.

SIP scanners find an open port 5060 within minutes, so a refusal must be cheap and say little:

1. a source outside `allow_from` is refused with 403, unless `auth` is set: then it must answer
   a digest challenge (401) first, and a wrong answer is 403;
2. each source (an IPv4 address, or an IPv6 /64, what one host can easily spread over) has a
   token bucket of `invite_burst` INVITEs refilled at `invites_per_s`; beyond it 503 with
   Retry-After;
3. with `max_calls` calls up, 486 Busy Here; 503 when the caller says the models are overloaded;
   then the process's own admission control (`admission` in config.json, all ingresses
   together): 486 at its max_calls, 503 with Retry-After when the model queues are over budget.

The rate is checked before the digest, so nobody can guess passwords faster than the bucket
allows. Sources refused by `allow_from` get no bucket: they cost neither memory nor time. The
buckets are an LRU of `max_sources`, so a scan from many addresses takes bounded memory (an evicted
source starts again with a full bucket, the same as one never seen).

All methods are thread-safe: PJSIP's thread calls them, metrics may read counters from another.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from voiceplat.telephony import admission
from voiceplat.telephony.ingress.sip.digest import DigestAuthenticator
from voiceplat.telephony.ingress.sip.settings import SipSettings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_SOURCES = 10_000
OVERLOAD_RETRY_S = 5
IPV6_SOURCE_PREFIX = 64
COUNTERS = (
    "accepted",
    "challenged",
    "rejected_forbidden",
    "rejected_auth",
    "rejected_rate",
    "rejected_busy",
    "rejected_overload",
)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    status: int
    """200 when allowed; otherwise the SIP final response to send."""
    reason: str
    """The SIP reason phrase."""
    detail: str = ""
    """Why, for the log line; never sent to the caller."""
    retry_after_s: int | None = None
    challenge: str | None = None
    """401: the WWW-Authenticate value."""

    @property
    def headers(self) -> dict[str, str]:
        """Header fields the response must carry."""
        headers: dict[str, str] = {}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        if self.challenge is not None:
            headers["WWW-Authenticate"] = self.challenge
        return headers


ACCEPTED = Verdict(True, 200, "OK")


def parse_source(source: str) -> IpAddress | None:
    """The address in "10.0.0.5", "10.0.0.5:5060", "[2001:db8::1]:5060" or "2001:db8::1"
    (pjsua2's srcAddress is "host:port"); IPv4-mapped IPv6 is given as IPv4. None for garbage."""
    text = source.strip() if isinstance(source, str) else ""
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _bucket_key(address: IpAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_SOURCE_PREFIX}", strict=False))
    return str(address)


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class Admission:
    def __init__(
        self,
        settings: SipSettings,
        *,
        authenticator: DigestAuthenticator | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        if settings.auth is not None and authenticator is None:
            # Fail closed: without it everyone outside allow_from would be refused silently
            # while the config says they may authenticate.
            raise ValueError("sip.auth is set: Admission needs its DigestAuthenticator")
        self._networks = settings.networks()
        self._authenticator = authenticator
        self._rate = settings.invites_per_s
        self._burst = float(settings.invite_burst)
        self._max_calls = settings.max_calls
        self._clock = clock
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._active = 0
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: SipSettings,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Admission:
        """With the authenticator `settings.auth` asks for; ValueError if its password is unset."""
        authenticator = None
        if settings.auth is not None:
            password = settings.auth.password(env)
            if password is None:
                raise ValueError(f"sip.auth: the variable {settings.auth.password_env} is not set")
            auth = settings.auth
            authenticator = DigestAuthenticator(auth.realm, auth.user, password, clock=clock)
        return cls(settings, authenticator=authenticator, clock=clock)

    def trusted(self, address: IpAddress) -> bool:
        return any(address in network for network in self._networks)

    def check(
        self,
        source: str,
        *,
        authorization: str | None = None,
        method: str = "INVITE",
        overloaded: bool = False,
    ) -> Verdict:
        """The verdict on a new INVITE from `source` ("ip" or "ip:port") carrying the given
        Authorization header value (None: none). An allowed verdict reserves nothing: call
        `call_started` when the call is answered (from the same thread, so that two INVITEs
        cannot both take the last place)."""
        address = parse_source(source)
        if address is None:
            return self._refuse("rejected_forbidden", 403, "Forbidden", f"source {source!r}")
        trusted = self.trusted(address)
        if not trusted and self._authenticator is None:
            return self._refuse("rejected_forbidden", 403, "Forbidden", "not in allow_from")
        wait_s = self._take_token(_bucket_key(address))
        if wait_s is not None:
            # 503, not 429: SIP has no 429 (RFC 3261 section 21 has no such code). 503 with
            # Retry-After is SIP's "not now, come back in N s" (RFC 3261 21.5.4); RFC 6357
            # explains why it is a blunt overload tool, but per source it only slows that source.
            return self._refuse(
                "rejected_rate", 503, "Service Unavailable", "INVITE rate", retry_after_s=wait_s
            )
        if not trusted:
            verdict = self._authenticate(method, authorization)
            if verdict is not None:
                return verdict
        with self._lock:
            busy = self._active >= self._max_calls
        if busy:
            return self._refuse("rejected_busy", 486, "Busy Here", f"{self._max_calls} calls up")
        if overloaded:
            return self._refuse(
                "rejected_overload",
                503,
                "Service Unavailable",
                "model queues full",
                retry_after_s=OVERLOAD_RETRY_S,
            )
        verdict = self._process_verdict()
        if verdict is not None:
            return verdict
        self._count("accepted")
        return ACCEPTED

    def _process_verdict(self) -> Verdict | None:
        """The process's admission control (telephony/admission.py: all ingresses' calls, the
        model queues' wait): 486 at its max_calls, 503 + Retry-After over its queue budget."""
        process = admission.current()
        if process is None:
            return None
        decision = process.decide()
        if decision.admitted:
            return None
        process.count_refusal(decision)
        if decision.reason == "max_calls":
            return self._refuse("rejected_busy", 486, "Busy Here", decision.detail)
        return self._refuse(
            "rejected_overload",
            503,
            "Service Unavailable",
            decision.detail,
            retry_after_s=decision.retry_after_s or OVERLOAD_RETRY_S,
        )

    def _authenticate(self, method: str, authorization: str | None) -> Verdict | None:
        """None when the credentials are good; else the 401 or 403 to send."""
        assert self._authenticator is not None
        if authorization is None:
            self._count("challenged")
            return Verdict(
                False, 401, "Unauthorized", "challenged", challenge=self._authenticator.challenge()
            )
        result = self._authenticator.verify(method, authorization)
        if result.ok:
            return None
        if result.stale:  # right password, old nonce: the client retries by itself
            self._count("challenged")
            challenge = self._authenticator.challenge(stale=True)
            return Verdict(False, 401, "Unauthorized", result.reason, challenge=challenge)
        # A wrong answer is not challenged again: 403 ends the attempt, so a guesser pays a
        # full INVITE per try and the rate limit above holds.
        return self._refuse("rejected_auth", 403, "Forbidden", result.reason)

    def _take_token(self, key: str) -> int | None:
        """None if `key` may send an INVITE now; else whole seconds until it may."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self._burst, now)
                if len(self._buckets) > self._max_sources:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.at)
                bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
                bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))

    def _refuse(
        self, counter: str, status: int, reason: str, detail: str, retry_after_s: int | None = None
    ) -> Verdict:
        self._count(counter)
        return Verdict(False, status, reason, detail, retry_after_s=retry_after_s)

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counts[counter] += 1

    def limit_calls(self, max_calls: int) -> None:
        """Lowers max_calls to what the SIP stack can take (beyond it, 486 as for max_calls)."""
        with self._lock:
            self._max_calls = min(self._max_calls, max_calls)

    def call_started(self) -> None:
        with self._lock:
            self._active += 1

    def call_ended(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)

    @property
    def active_calls(self) -> int:
        with self._lock:
            return self._active

    def counters(self) -> dict[str, int]:
        """A snapshot for logs and metrics: every counter, active_calls and tracked_sources."""
        with self._lock:
            return {
                **self._counts,
                "active_calls": self._active,
                "tracked_sources": len(self._buckets),
            }
