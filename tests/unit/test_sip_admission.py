"""Admission of INVITEs: allow_from, digest auth for the others, the per-source INVITE rate,
max_calls, and counters; a scan from many addresses takes bounded memory."""

from __future__ import annotations

import ipaddress
import re
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_sip_digest import answer
from voiceplat.telephony.ingress.sip.admission import Admission, Verdict, parse_source
from voiceplat.telephony.ingress.sip.digest import DigestAuthenticator
from voiceplat.telephony.ingress.sip.settings import SipSettings


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def admission(clock: Clock | None = None, **sip: Any) -> Admission:
    return Admission(SipSettings.model_validate(sip), clock=clock or Clock())


def with_auth(clock: Clock, **sip: Any) -> tuple[Admission, DigestAuthenticator]:
    settings = SipSettings.model_validate(
        {"auth": {"user": "pbx", "password_env": "PW"}, "allow_from": ["10.0.0.0/8"], **sip}
    )
    auth = DigestAuthenticator("voiceplat", "pbx", "s3cret pass", clock=clock)
    return Admission(settings, authenticator=auth, clock=clock), auth


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("10.0.0.5:5060", "10.0.0.5"),
        ("[2001:db8::1]:5060", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.168.1.2", "192.168.1.2"),
        ("[::ffff:192.168.1.2]:5062", "192.168.1.2"),
        ("pbx.example.com:5060", None),
        ("[::1", None),
        ("", None),
        ("10.0.0.5:5060:1", None),
    ],
)
def test_parse_source(source: str, expected: str | None) -> None:
    address = parse_source(source)
    assert (str(address) if address else None) == expected


FUZZ_GATE = Admission(
    SipSettings.model_validate({"allow_from": ["0.0.0.0/0", "::/0"], "invite_burst": 10**9})
)


@given(st.text() | st.ip_addresses().map(str) | st.ip_addresses().map(lambda a: f"[{a}]:5060"))
def test_any_source_text_gets_a_verdict(source: str) -> None:
    verdict = FUZZ_GATE.check(source)
    address = parse_source(source)
    assert verdict.allowed == (address is not None)
    assert verdict.status in (200, 403)


def test_defaults_let_private_networks_in_and_refuse_the_internet() -> None:
    gate = admission()
    for source in ("127.0.0.1:5060", "10.1.2.3", "172.31.0.9", "192.168.7.7", "[::1]:5060"):
        assert gate.check(source).allowed, source
    refused = gate.check("203.0.113.9:5060")
    assert refused == Verdict(False, 403, "Forbidden", "not in allow_from")
    assert refused.headers == {}
    assert gate.check("[2001:db8::9]:5060").status == 403
    assert gate.check("garbage").status == 403
    counts = gate.counters()
    assert (counts["accepted"], counts["rejected_forbidden"]) == (5, 3)


def test_an_ipv4_mapped_source_is_judged_as_ipv4() -> None:
    gate = admission(allow_from=["192.168.0.0/16"])
    assert gate.check("[::ffff:192.168.1.2]:5060").allowed
    assert not gate.check("[::ffff:8.8.8.8]:5060").allowed


def test_everyone_only_when_said() -> None:
    gate = admission(allow_from=["0.0.0.0/0", "::/0"])
    assert gate.check("203.0.113.9").allowed and gate.check("2001:db8::9").allowed
    assert not admission(allow_from=["0.0.0.0/0"]).check("2001:db8::9").allowed


def test_invite_rate_per_source_with_retry_after() -> None:
    clock = Clock()
    gate = admission(clock, invites_per_s=0.5, invite_burst=3)
    assert [gate.check("10.0.0.1").allowed for _ in range(3)] == [True] * 3
    limited = gate.check("10.0.0.1:5060")
    assert (limited.status, limited.reason) == (503, "Service Unavailable")
    assert limited.headers == {"Retry-After": "2"}  # one INVITE per 2 s
    assert gate.check("10.0.0.2").allowed  # another source has its own bucket
    clock.now += 1.0
    assert gate.check("10.0.0.1").headers == {"Retry-After": "1"}
    clock.now += 1.0
    assert gate.check("10.0.0.1").allowed
    assert not gate.check("10.0.0.1").allowed
    clock.now += 3600  # refills up to the burst, not beyond
    assert [gate.check("10.0.0.1").allowed for _ in range(4)] == [True] * 3 + [False]
    assert gate.counters()["rejected_rate"] == 4


def test_one_ipv6_host_cannot_spread_over_its_64_to_escape_the_rate() -> None:
    gate = admission(allow_from=["2001:db8::/32"], invites_per_s=1, invite_burst=2)
    assert gate.check("[2001:db8:0:1::1]:5060").allowed
    assert gate.check("[2001:db8:0:1::ffff]:5060").allowed
    assert gate.check("[2001:db8:0:1:abcd::7]:5060").status == 503
    assert gate.check("[2001:db8:0:2::1]:5060").allowed  # another /64


def test_a_refused_source_costs_no_bucket() -> None:
    gate = admission(allow_from=["10.0.0.0/8"])
    for n in range(500):
        gate.check(f"203.0.{n // 256}.{n % 256}")
    assert gate.counters()["tracked_sources"] == 0


def test_buckets_of_a_spray_from_many_addresses_are_capped() -> None:
    settings = SipSettings.model_validate({"allow_from": ["10.0.0.0/8"], "invite_burst": 1})
    gate = Admission(settings, clock=Clock(), max_sources=100)
    sources = [str(a) for a in list(ipaddress.ip_network("10.0.0.0/16").hosts())[:5000]]
    for source in sources:
        assert gate.check(source).allowed
    assert gate.counters()["tracked_sources"] == 100
    # The most recent sources are the ones remembered: their bucket is still empty.
    assert gate.check(sources[-1]).status == 503
    assert gate.check(sources[0]).allowed  # evicted long ago: a fresh bucket


def test_max_calls_gives_busy_here_until_a_call_ends() -> None:
    gate = admission(max_calls=2)
    for _ in range(2):
        assert gate.check("10.0.0.1").allowed
        gate.call_started()
    busy = gate.check("10.0.0.1")
    assert (busy.allowed, busy.status, busy.reason) == (False, 486, "Busy Here")
    gate.call_ended()
    assert gate.active_calls == 1
    assert gate.check("10.0.0.1").allowed
    assert gate.counters()["rejected_busy"] == 1


def test_call_ended_never_goes_below_zero() -> None:
    gate = admission()
    gate.call_ended()
    assert gate.active_calls == 0


def test_overloaded_models_give_503_with_retry_after() -> None:
    verdict = admission().check("10.0.0.1", overloaded=True)
    assert (verdict.status, verdict.headers) == (503, {"Retry-After": "5"})
    assert admission().check("203.0.113.9", overloaded=True).status == 403  # still forbidden


def test_outside_allow_from_a_caller_is_challenged_and_a_right_answer_gets_in() -> None:
    clock = Clock()
    gate, _ = with_auth(clock)
    assert gate.check("10.9.9.9").allowed  # inside allow_from: no challenge
    challenge = gate.check("203.0.113.9:5060")
    assert (challenge.status, challenge.reason) == (401, "Unauthorized")
    header = challenge.headers["WWW-Authenticate"]
    assert header.startswith('Digest realm="voiceplat", nonce="')
    assert gate.check("203.0.113.9:5060", authorization=answer(header)).allowed
    assert gate.counters() == {
        "accepted": 2,
        "challenged": 1,
        "rejected_forbidden": 0,
        "rejected_auth": 0,
        "rejected_rate": 0,
        "rejected_busy": 0,
        "rejected_overload": 0,
        "active_calls": 0,
        "tracked_sources": 2,
    }


def test_a_wrong_answer_is_forbidden_and_counted() -> None:
    gate, _ = with_auth(Clock())
    header = gate.check("203.0.113.9").headers["WWW-Authenticate"]
    wrong = gate.check("203.0.113.9", authorization=answer(header, password="guess"))
    assert wrong == Verdict(False, 403, "Forbidden", "wrong password")
    garbage = gate.check("203.0.113.9", authorization='Digest username="pbx", ","')
    assert garbage.status == 403
    assert gate.counters()["rejected_auth"] == 2


def test_a_stale_answer_is_challenged_again_with_stale_true() -> None:
    clock = Clock()
    gate, _ = with_auth(clock)
    header = gate.check("203.0.113.9").headers["WWW-Authenticate"]
    clock.now += 301
    again = gate.check("203.0.113.9", authorization=answer(header))
    assert again.status == 401 and again.headers["WWW-Authenticate"].endswith("stale=true")
    fresh = again.headers["WWW-Authenticate"]
    assert re.search(r'nonce="([^"]+)"', fresh) != re.search(r'nonce="([^"]+)"', header)
    assert gate.check("203.0.113.9", authorization=answer(fresh)).allowed


def test_password_guessing_is_held_to_the_invite_rate() -> None:
    clock = Clock()
    gate, _ = with_auth(clock, invites_per_s=1, invite_burst=3)
    header = gate.check("203.0.113.9").headers["WWW-Authenticate"]
    statuses = [
        gate.check("203.0.113.9", authorization=answer(header, password=f"guess{n}")).status
        for n in range(5)
    ]
    assert statuses == [403, 403, 503, 503, 503]


def test_auth_without_its_authenticator_is_a_setup_error() -> None:
    settings = SipSettings.model_validate({"auth": {"user": "pbx", "password_env": "PW"}})
    with pytest.raises(ValueError, match="needs its DigestAuthenticator"):
        Admission(settings)
    with pytest.raises(ValueError, match="the variable PW is not set"):
        Admission.from_settings(settings, {})
    clock = Clock()
    gate = Admission.from_settings(settings, {"PW": "s3cret pass"}, clock=clock)
    header = gate.check("203.0.113.9").headers["WWW-Authenticate"]
    assert gate.check("203.0.113.9", authorization=answer(header)).allowed


def test_counters_stay_exact_under_threads() -> None:
    gate = admission(max_calls=1_000_000, invite_burst=1_000_000)
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        for _ in range(2000):
            gate.check("10.0.0.1")
            gate.call_started()
            gate.check("198.51.100.1")
            gate.call_ended()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    counts = gate.counters()
    assert (counts["accepted"], counts["rejected_forbidden"]) == (8000, 8000)
    assert counts["active_calls"] == 0
