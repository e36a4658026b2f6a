"""Inbound digest authentication: the answers a real SIP client computes are accepted, everything
else is refused with a reason, and no header text makes the parser raise."""

from __future__ import annotations

import hashlib
import random
import re
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceplat.telephony.ingress.sip.digest import (
    NONCE_TTL_S,
    AuthResult,
    DigestAuthenticator,
    digest_response,
    parse_authorization,
)

REALM, USER, PASSWORD = "voiceplat", "pbx", "s3cret pass"
URI = "sip:robot@10.99.0.1:5060"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def answer(
    challenge: str,
    *,
    user: str = USER,
    password: str = PASSWORD,
    method: str = "INVITE",
    uri: str = URI,
    qop: bool = True,
    nc: str = "00000001",
    cnonce: str = "0a4f113b",
) -> str:
    """What a SIP client sends back, computed here from RFC 2617 with hashlib alone."""
    nonce = re.search(r'nonce="([^"]+)"', challenge)
    realm = re.search(r'realm="([^"]+)"', challenge)
    assert nonce and realm
    ha1 = md5(f"{user}:{realm[1]}:{password}")
    ha2 = md5(f"{method}:{uri}")
    if qop:
        response = md5(f"{ha1}:{nonce[1]}:{nc}:{cnonce}:auth:{ha2}")
        extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = md5(f"{ha1}:{nonce[1]}:{ha2}")
        extra = ""
    return (
        f'Digest username="{user}", realm="{realm[1]}", nonce="{nonce[1]}", uri="{uri}", '
        f'response="{response}", algorithm=MD5{extra}'
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(clock: Clock) -> DigestAuthenticator:
    return DigestAuthenticator(REALM, USER, PASSWORD, secret=b"k" * 32, clock=clock)


RFC2617_EXAMPLE = """Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41\""""


def test_the_rfc_2617_example() -> None:
    params = parse_authorization(RFC2617_EXAMPLE)
    assert params is not None
    assert params["username"] == "Mufasa" and params["qop"] == "auth"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    computed = digest_response(
        user="Mufasa",
        realm=params["realm"],
        password="Circle Of Life",
        method="GET",
        uri=params["uri"],
        nonce=params["nonce"],
        qop=params["qop"],
        nc=params["nc"],
        cnonce=params["cnonce"],
    )
    assert computed == params["response"] == "6629fae49393a05397450978507c4ef1"


def test_the_challenge_asks_for_md5_with_qop_auth(auth: DigestAuthenticator) -> None:
    challenge = auth.challenge()
    params = parse_authorization(challenge)
    assert params is not None and "stale" not in params
    assert params["realm"] == REALM and params["algorithm"] == "MD5" and params["qop"] == "auth"
    assert parse_authorization(auth.challenge())["nonce"] != params["nonce"]  # type: ignore[index]
    assert parse_authorization(auth.challenge(stale=True))["stale"] == "true"  # type: ignore[index]


@pytest.mark.parametrize("qop", [True, False])
def test_a_right_answer_is_accepted(auth: DigestAuthenticator, qop: bool) -> None:
    assert auth.verify("INVITE", answer(auth.challenge(), qop=qop)) == AuthResult(True)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"password": "guess"}, "wrong password"),
        ({"method": "ACK"}, "wrong password"),  # computed for another method
        ({"user": "admin"}, "unknown user"),
        ({"uri": ""}, "Authorization lacks uri"),
    ],
)
def test_a_wrong_answer_is_refused(auth: DigestAuthenticator, change: dict, reason: str) -> None:
    result = auth.verify("INVITE", answer(auth.challenge(), **change))
    assert result == AuthResult(False, stale=False, reason=reason)


def test_another_realm_is_refused(auth: DigestAuthenticator) -> None:
    other = DigestAuthenticator("elsewhere", USER, PASSWORD, secret=b"k" * 32)
    assert auth.verify("INVITE", answer(other.challenge())).reason == "wrong realm"


def test_a_nonce_this_process_did_not_issue_is_refused(auth: DigestAuthenticator) -> None:
    other = DigestAuthenticator(REALM, USER, PASSWORD, secret=b"x" * 32)
    assert auth.verify("INVITE", answer(other.challenge())).reason == "nonce not issued here"
    challenge = auth.challenge()
    nonce = re.search(r'nonce="([^"]+)"', challenge)
    assert nonce
    issued, salt, signature = nonce[1].split("-")
    forged = f"{int(issued, 16) + 1000:x}-{salt}-{signature}"  # a younger time, same signature
    result = auth.verify("INVITE", answer(challenge.replace(nonce[1], forged)))
    assert result == AuthResult(False, reason="nonce not issued here")


def test_an_old_nonce_is_stale_only_for_a_right_answer(
    auth: DigestAuthenticator, clock: Clock
) -> None:
    challenge = auth.challenge()
    clock.now += NONCE_TTL_S - 1
    assert auth.verify("INVITE", answer(challenge, cnonce="a")).ok
    clock.now += 2
    assert auth.verify("INVITE", answer(challenge, cnonce="b")) == AuthResult(
        False, stale=True, reason="nonce expired"
    )
    wrong = auth.verify("INVITE", answer(challenge, cnonce="c", password="guess"))
    assert (wrong.ok, wrong.stale) == (False, False)


def test_a_replayed_answer_is_stale_and_a_counted_reuse_is_fine(
    auth: DigestAuthenticator,
) -> None:
    challenge = auth.challenge()
    header = answer(challenge)
    assert auth.verify("INVITE", header).ok
    assert auth.verify("INVITE", header) == AuthResult(
        False, stale=True, reason="credentials already used"
    )
    assert auth.verify("INVITE", answer(challenge, nc="00000002")).ok  # the client counts on
    no_qop = answer(challenge, qop=False)
    assert auth.verify("INVITE", no_qop).ok
    assert auth.verify("INVITE", no_qop).stale


def test_only_one_of_many_threads_replaying_one_answer_gets_in(
    auth: DigestAuthenticator,
) -> None:
    header = answer(auth.challenge())
    start = threading.Barrier(8)
    results: list[AuthResult] = []

    def attempt() -> None:
        start.wait()
        results.append(auth.verify("INVITE", header))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r.ok for r in results) == [False] * 7 + [True]


def test_the_uri_must_be_the_requests_when_given(auth: DigestAuthenticator) -> None:
    header = answer(auth.challenge())
    assert auth.verify("INVITE", header, request_uri="sip:other@10.99.0.1").reason == (
        "digest uri is not the request's"
    )
    assert auth.verify("INVITE", header, request_uri=URI).ok


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("algorithm=MD5", "algorithm=SHA-256"), "unsupported algorithm 'SHA-256'"),
        (("algorithm=MD5", "algorithm=md5"), ""),
        (("qop=auth", "qop=auth-int"), "unsupported qop 'auth-int'"),
        (("nc=00000001", "nc=1"), "qop=auth without a valid nc and cnonce"),
        ((', cnonce="0a4f113b"', ""), "qop=auth without a valid nc and cnonce"),
        (('realm="voiceplat", ', ""), "Authorization lacks realm"),
        (('username="pbx", ', ""), "Authorization lacks username"),
        (("Digest ", "Basic "), "malformed Authorization header"),
    ],
)
def test_header_variants(auth: DigestAuthenticator, edit: tuple[str, str], reason: str) -> None:
    header = answer(auth.challenge())
    assert edit[0] in header
    result = auth.verify("INVITE", header.replace(edit[0], edit[1]))
    assert (result.ok, result.reason) == (reason == "", reason)


def test_a_response_that_is_no_digest_is_refused(auth: DigestAuthenticator) -> None:
    header = re.sub(r'response="[^"]+"', 'response="zz"', answer(auth.challenge()))
    assert auth.verify("INVITE", header).reason == "response is not an MD5 digest"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('Digest a="x, y=z", b=tok', {"a": "x, y=z", "b": "tok"}),
        ('digest  A = "q\\"uote\\\\" ,, b="" ', {"a": 'q"uote\\', "b": ""}),
        ('DIGEST a="line\r\n folded"', {"a": "line\r\n folded"}),
        ('Digest a="ü", b=1', {"a": "ü", "b": "1"}),
    ],
)
def test_parser_reads_quoted_strings_tokens_and_odd_spacing(
    value: str, expected: dict[str, str]
) -> None:
    assert parse_authorization(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Digest",
        "Digest ",
        'Basic a="b"',
        'Digestive a="b"',
        'Digest a="unterminated',
        'Digest a="x\\',
        "Digest a=",
        'Digest a="1", a="2"',
        'Digest a="1" b="2"',
        'Digest ="1"',
        "Digest a b",
        'Digest a="1", ' * 40,
        'Digest a="' + "x" * 10_000 + '"',
    ],
)
def test_parser_refuses_what_is_not_digest_credentials(value: str) -> None:
    assert parse_authorization(value) is None


ALPHABET = 'Digest usernamrlmocqp=",\\ \t\r\n0123456789abcdef-:;@<>/\x00\udcff\u00e9\U0001f600'


FUZZ_AUTH = DigestAuthenticator(REALM, USER, PASSWORD, secret=b"k" * 32)


@given(st.text() | st.text(ALPHABET).map(lambda text: "Digest " + text))
def test_random_header_text_never_raises_and_never_gets_in(text: str) -> None:
    parse_authorization(text)
    result = FUZZ_AUTH.verify("INVITE", text)
    assert isinstance(result, AuthResult) and not result.ok


PARAM_NAME = st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)


@given(st.dictionaries(PARAM_NAME, st.text(), min_size=1, max_size=8))
def test_any_quoted_values_read_back_as_written(params: dict[str, str]) -> None:
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = "Digest " + ", ".join(f"{name}={quote(value)}" for name, value in params.items())
    assert parse_authorization(header) == params


def test_mutated_right_answers_never_raise(auth: DigestAuthenticator) -> None:
    rng = random.Random(7)
    header = answer(auth.challenge())
    accepted = 0
    for _ in range(3000):
        chars = list(header)
        for _ in range(rng.randrange(1, 4)):
            spot = rng.randrange(len(chars))
            action = rng.choice(("delete", "insert", "replace"))
            if action == "delete":
                del chars[spot]
            elif action == "insert":
                chars.insert(spot, rng.choice(ALPHABET))
            else:
                chars[spot] = rng.choice(ALPHABET)
        result = auth.verify("INVITE", "".join(chars))
        accepted += result.ok
    # A mutation may only touch spacing or the opaque parts; most must fail, and at most one
    # (the first that is still right) can get in, since the answer is then used up.
    assert accepted <= 1


def test_an_empty_password_is_a_setup_error() -> None:
    with pytest.raises(ValueError, match="needs a password"):
        DigestAuthenticator(REALM, USER, "")
