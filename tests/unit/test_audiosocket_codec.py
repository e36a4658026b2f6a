"""The AudioSocket codec (telephony/ingress/audiosocket/codec.py), the listener's registration
and allow_from, and the simulated Asterisk's side: bytes in, events out, every bad input."""

from __future__ import annotations

import uuid

import pytest

from voiceplat.simulator.peers.audiosocket import AudioSocketPeer
from voiceplat.simulator.peers.base import CallInfo, PeerWarning, RobotAudio, RobotHangup
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallProtocolError, DtmfIn
from voiceplat.telephony.ingress.audiosocket.codec import (
    HANGUP_FRAME,
    MAX_PAYLOAD,
    AudioSocketDecoder,
    audio_frame,
    dtmf_frame,
    frame,
    uuid_frame,
)
from voiceplat.telephony.ingress.audiosocket.server import CallDirectory, registration

CALL = uuid.UUID("0f6bb1c2-1e3a-4c5d-9e8f-0a1b2c3d4e5f")
PCM = bytes(range(256)) + bytes(64)  # 320 bytes: one 20 ms frame


def started() -> AudioSocketDecoder:
    decoder = AudioSocketDecoder()
    assert decoder.feed(uuid_frame(CALL)) == [CALL]
    return decoder


def test_frames_are_a_kind_a_big_endian_length_and_the_payload() -> None:
    assert uuid_frame(CALL) == b"\x01\x00\x10" + CALL.bytes
    assert audio_frame(b"\x01\x02") == b"\x10\x00\x02\x01\x02"
    assert dtmf_frame("#") == b"\x03\x00\x01#"
    assert HANGUP_FRAME == b"\x00\x00\x00"
    assert frame(0x10, bytes(0x0140))[:3] == b"\x10\x01\x40"  # 320 = 0x0140
    with pytest.raises(ValueError, match="at most 65535"):
        frame(0x10, bytes(65536))


def test_the_uuid_then_audio_and_keys() -> None:
    decoder = started()
    events = decoder.feed(audio_frame(PCM) + dtmf_frame("5") + audio_frame(PCM))
    assert events == [AudioIn(PCM), DtmfIn("5", "other"), AudioIn(PCM)]


def test_any_split_of_the_stream_gives_the_same_events() -> None:
    stream = uuid_frame(CALL) + audio_frame(PCM) + dtmf_frame("*") + audio_frame(PCM[:6])
    whole = AudioSocketDecoder().feed(stream)
    for size in (1, 2, 3, 7, 100):
        decoder = AudioSocketDecoder()
        events = [
            e for i in range(0, len(stream), size) for e in decoder.feed(stream[i : i + size])
        ]
        audio = b"".join(e.data for e in events if isinstance(e, AudioIn))
        assert audio == PCM + PCM[:6]
        assert [e for e in events if not isinstance(e, AudioIn)] == [CALL, DtmfIn("*", "other")]
    assert whole[0] == CALL


def test_an_odd_byte_is_carried_to_the_next_audio_frame() -> None:
    decoder = started()
    assert decoder.feed(audio_frame(b"\x01\x02\x03")) == [AudioIn(b"\x01\x02")]
    assert decoder.feed(audio_frame(b"\x04")) == [AudioIn(b"\x03\x04")]


def test_the_end_of_the_stream_is_the_caller_hanging_up() -> None:
    decoder = started()
    hangup = decoder.end_of_stream()
    assert isinstance(hangup, Hangup) and hangup.end_reason == "caller_hangup"


def test_a_hangup_frame_from_asterisk_ends_the_call() -> None:
    (event,) = started().feed(HANGUP_FRAME)
    assert isinstance(event, Hangup) and event.end_reason == "caller_hangup"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (audio_frame(PCM), "a frame of kind 0x10 before the UUID frame"),
        (dtmf_frame("1"), "a frame of kind 0x03 before the UUID frame"),
        (frame(0x01, b"short"), "the UUID frame holds 5 bytes, not 16"),
        (b"\x10\xff\xff", "frame of kind 0x10 with 65535 bytes (at most 8192)"),
        (b"GARBAGE!", "with 16722 bytes"),  # 'A' 'R': a length no frame has
        (frame(0xFF, b"\x07"), "Asterisk reported an error (code 07)"),
        (frame(0xFF), "Asterisk reported an error"),
    ],
)
def test_bad_input_before_the_call_starts(data: bytes, message: str) -> None:
    with pytest.raises(CallProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AudioSocketDecoder().feed(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (frame(0x42, b"x"), "unknown frame kind 0x42"),
        (frame(0x02), "unknown frame kind 0x02"),
        (uuid_frame(CALL), "a second UUID frame"),
        (dtmf_frame("x"), "DTMF frame with b'x'"),
        (frame(0x03, b"12"), "DTMF frame with b'12'"),
        (frame(0x12, PCM), r"slin16 audio \(kind 0x12\): only 8 kHz slin"),
        (frame(0x10, bytes(MAX_PAYLOAD + 1)), "at most 8192"),
    ],
)
def test_bad_input_during_the_call(data: bytes, message: str) -> None:
    decoder = started()
    with pytest.raises(CallProtocolError, match=message):
        decoder.feed(data)


def test_a_huge_frame_is_refused_from_its_header_alone() -> None:
    with pytest.raises(CallProtocolError, match="65535 bytes"):
        started().feed(b"\x10\xff\xff")  # no payload needed: nothing is buffered for it


def test_an_early_close_is_a_protocol_error() -> None:
    with pytest.raises(CallProtocolError, match="before the UUID frame"):
        AudioSocketDecoder().end_of_stream()
    decoder = started()
    decoder.feed(audio_frame(PCM)[:100])
    with pytest.raises(CallProtocolError, match="in the middle of a frame"):
        decoder.end_of_stream()


def test_lowercase_dtmf_letters_are_the_keys() -> None:
    assert started().feed(dtmf_frame("a")) == [DtmfIn("A", "other")]


# --- the dialplan's registration (server.py) -----------------------------------------------


def test_a_registration_gives_caller_and_callee_to_that_call_once() -> None:
    status, _, what = registration(
        f"GET /calls/{CALL}?caller=%2B79991112233&callee=700 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status == 200 and what == (str(CALL), {"caller": "+79991112233", "callee": "700"})
    now = [100.0]
    directory = CallDirectory(60.0, clock=lambda: now[0])
    directory.register(*what)
    meta = directory.metadata(str(CALL), "10.0.0.5:4000")
    assert (meta.call_id, meta.caller, meta.callee, meta.source) == (
        str(CALL),
        "+79991112233",
        "700",
        "asterisk",
    )
    assert meta.extra == {"peer": "10.0.0.5:4000", "registered": True}
    assert directory.metadata(str(CALL), "p").caller is None  # used once


def test_a_registration_expires() -> None:
    now = [0.0]
    directory = CallDirectory(60.0, clock=lambda: now[0])
    directory.register(str(CALL), {"caller": "1"})
    now[0] = 61.0
    meta = directory.metadata(str(CALL), "p")
    assert meta.caller is None and meta.extra["registered"] is False


@pytest.mark.parametrize(
    ("request_line", "status", "text"),
    [
        ("POST /calls/x HTTP/1.1", 400, "expected GET"),
        ("GET /other HTTP/1.1", 404, "/calls/<uuid>"),
        ("GET /calls/not-a-uuid HTTP/1.1", 400, "not a UUID"),
        (f"GET /calls/{CALL}?caller={'1' * 65} HTTP/1.1", 400, "at most 64"),
        ("garbage", 400, "expected GET"),
    ],
)
def test_bad_registrations_are_refused(request_line: str, status: int, text: str) -> None:
    got, message, what = registration(request_line.encode() + b"\r\n\r\n")
    assert (got, what) == (status, None) and text in message


# --- the simulated Asterisk (simulator/peers/audiosocket.py) --------------------------------


def test_the_peer_sends_the_uuid_audio_and_keys_and_plays_what_comes() -> None:
    peer = AudioSocketPeer()
    call = CallInfo(str(CALL), "+7999", "700")
    assert peer.start(call) == [uuid_frame(CALL)]
    assert peer.caller_audio(PCM) == [audio_frame(PCM)]
    assert peer.dtmf("1#") == [dtmf_frame("1"), dtmf_frame("#")]
    assert peer.hangup() == []  # Asterisk closes the socket
    stream = audio_frame(PCM) + HANGUP_FRAME
    assert peer.receive(stream[:5]) == []
    assert peer.receive(stream[5:]) == [RobotAudio(PCM), RobotHangup("hangup frame")]


@pytest.mark.parametrize(
    ("data", "what"), [(frame(0x03, b"1"), "kind 0x03"), (frame(0x10), "an empty")]
)
def test_the_peer_ends_the_call_on_what_asterisk_refuses(data: bytes, what: str) -> None:
    peer = AudioSocketPeer()
    warning, hangup = peer.receive(data)
    assert isinstance(warning, PeerWarning) and what in warning.text
    assert isinstance(hangup, RobotHangup)
    assert peer.receive(audio_frame(PCM)) == []  # the call is over
