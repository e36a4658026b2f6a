"""The robot's codec order wins over the caller's: the local SDP keeps only our first choice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voiceplat.telephony.ingress.sip import sdp_codecs

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 9 0 8 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)
LOCAL = (
    "v=0\r\no=- 2 2 IN IP4 10.0.0.2\r\ns=pjmedia\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
    "m=audio 5000 RTP/AVP 8 0 9 96\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=sendrecv\r\n"
)


def test_offered_codecs_by_static_type_and_rtpmap() -> None:
    assert sdp_codecs.audio_codecs(OFFER) == [
        ("9", "G722"),
        ("0", "PCMU"),
        ("8", "PCMA"),
        ("101", "TELEPHONE-EVENT"),
    ]


def test_our_first_codec_that_the_caller_offers_is_chosen() -> None:
    assert sdp_codecs.choose(OFFER, ["PCMA", "PCMU", "G722"]) == "PCMA"
    assert sdp_codecs.choose(OFFER, ["G722", "PCMA"]) == "G722"
    assert sdp_codecs.choose("m=audio 1 RTP/AVP 3\r\n", ["PCMA"]) is None


def test_local_sdp_keeps_only_the_choice_and_telephone_event() -> None:
    restricted = sdp_codecs.restrict(LOCAL, "PCMU")
    assert "m=audio 5000 RTP/AVP 0 96\r\n" in restricted
    assert "a=rtpmap:0 PCMU/8000" in restricted
    assert "PCMA" not in restricted and "G722" not in restricted
    assert "a=fmtp:96 0-16" in restricted and "a=sendrecv" in restricted
    assert sdp_codecs.audio_codecs(restricted) == [("0", "PCMU"), ("96", "TELEPHONE-EVENT")]


def test_a_codec_we_do_not_have_leaves_the_sdp_alone() -> None:
    assert sdp_codecs.restrict(LOCAL, "OPUS") == LOCAL


@given(st.text(), st.text())
def test_any_text_never_raises(offer: str, local: str) -> None:
    codec = sdp_codecs.choose(offer, ["PCMA", "PCMU", "G722"])
    sdp_codecs.restrict(local, codec or "PCMA")
