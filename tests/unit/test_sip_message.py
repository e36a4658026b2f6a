"""Reading caller, callee and headers off an INVITE's text: what ends up in the call record."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voiceplat.telephony.ingress.sip import message

INVITE = (
    "INVITE sip:4951234567@robot.example.com:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    'f: "Иван Петров" <sip:79161234567@pbx.local>;tag=1\r\n'
    "To: <sip:4951234567@robot.example.com>\r\n"
    "Call-ID: abc@10.0.0.1\r\n"
    "P-Asserted-Identity: <tel:+79161234567>\r\n"
    "Subject: first line\r\n"
    " continued\r\n"
    "\r\n"
    "v=0\r\nSubject: not a header\r\n"
)


def test_headers_with_compact_names_and_folding() -> None:
    start, headers = message.split_message(INVITE)
    assert message.request_uri(start) == "sip:4951234567@robot.example.com:5060"
    assert message.header(headers, "From") == '"Иван Петров" <sip:79161234567@pbx.local>;tag=1'
    assert message.header(headers, "subject") == "first line continued"
    assert headers["subject"] == ["first line continued"]  # the body's lines are not headers
    assert message.header(headers, "call-id") == "abc@10.0.0.1"


def test_users_and_display_names() -> None:
    _, headers = message.split_message(INVITE)
    assert message.uri_user(message.header(headers, "p-asserted-identity")) == "+79161234567"
    assert message.uri_user(message.header(headers, "from")) == "79161234567"
    assert message.display_name(message.header(headers, "from")) == "Иван Петров"
    assert message.display_name("Bob <sip:bob@x>") == "Bob"
    assert message.display_name("<sip:bob@x>") is None
    assert message.uri_user("sip:pbx.local") is None  # a URI with no user part
    assert message.uri_user("<sips:alice:secret@pbx.local;transport=tls>") == "alice"
    assert message.uri_user(None) is None


def test_source_host_strips_the_port() -> None:
    assert message.source_host("10.0.0.1:5060") == "10.0.0.1"
    assert message.source_host("[::1]:5060") == "::1"
    assert message.source_host("::1") == "::1"


@given(st.text())
def test_any_text_never_raises(text: str) -> None:
    start, headers = message.split_message(text)
    message.request_uri(start)
    for values in headers.values():
        for value in values:
            message.uri_user(value)
            message.display_name(value)
    message.source_host(text)
