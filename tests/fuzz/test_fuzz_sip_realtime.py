"""The SIP text helpers, the SDP codec filter and the Realtime protocol under any input.

Properties: reading an INVITE's text never raises (PJSIP accepted the message; we only pick values
out of it); the SDP filter never raises and keeps only what it says it keeps; any server message
of a Realtime service parses into a typed event or RealtimeProtocolError, never another exception
(the session would die with a traceback instead of ending the call with its reason).
"""

from __future__ import annotations

import base64
import json
import math

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.profiles import FUZZ
from tests.fuzz.strategies import NUMBERS, json_texts, json_values
from voiceplat.providers.realtime import protocol, server_events
from voiceplat.providers.realtime.protocol import AudioFormat, RealtimeProtocolError
from voiceplat.telephony.ingress.sip import message, sdp_codecs

# -- SIP messages --------------------------------------------------------------------------------
SIP_PIECES = st.sampled_from(
    [
        "INVITE sip:100@robot SIP/2.0",
        "From: ",
        "f: ",
        "To: ",
        "Call-ID: ",
        '"Bob" ',
        "<sip:",
        "sips:",
        "tel:+7",
        "@",
        ">",
        ";tag=1",
        ":5060",
        "\r\n",
        "\n",
        " ",
        "\t",
        "[::1]:5060",
    ]
)
SIP_TEXT = st.lists(SIP_PIECES | st.text(max_size=6), max_size=20).map("".join) | st.text()


@FUZZ
@given(text=SIP_TEXT)
def test_sip_message_reading_never_raises(text: str) -> None:
    start, headers = message.split_message(text)
    assert all(name == name.lower() for name in headers)
    values = [message.request_uri(start) or "", *(v for vs in headers.values() for v in vs), text]
    for value in values:
        user = message.uri_user(value)
        assert user is None or (user and user in value)
        name = message.display_name(value)
        assert name is None or name == name.strip()
    host = message.source_host(text)
    assert host in text


# -- SDP -------------------------------------------------------------------------------------
CODECS = ["PCMU", "PCMA", "G722", "opus", "telephone-event", "speex"]
SDP_LINES = st.one_of(
    st.builds(
        "m=audio {} RTP/AVP {}".format,
        st.integers(0, 65535),
        st.lists(
            st.sampled_from(["0", "8", "9", "96", "101"]) | st.integers(0, 127).map(str), max_size=6
        ).map(" ".join),
    ),
    st.builds("m=video {} RTP/AVP 96".format, st.integers(0, 65535)),
    st.builds("a=rtpmap:{} {}/8000".format, st.integers(0, 127), st.sampled_from(CODECS)),
    st.builds("a=fmtp:{} 0-16".format, st.integers(0, 127)),
    st.sampled_from(["v=0", "c=IN IP4 127.0.0.1", "a=sendrecv", "a=rtpmap:", "a=fmtp:", "m="]),
    st.text(max_size=12),
)
SDP = st.builds(
    lambda lines, newline: newline.join(lines),
    st.lists(SDP_LINES, max_size=12),
    st.sampled_from(["\r\n", "\n"]),
)


@FUZZ
@given(offer=SDP, local=SDP, order=st.lists(st.sampled_from(CODECS), max_size=4))
@example(offer="", local="m=audio 1 RTP/AVP 0\r\na=rtpmap:\r\n", order=[])  # no payload type
def test_sdp_codec_filter_never_raises_and_keeps_one_codec(
    offer: str, local: str, order: list[str]
) -> None:
    offered = {name for _, name in sdp_codecs.audio_codecs(offer)}
    chosen = sdp_codecs.choose(offer, order)
    assert chosen is None or chosen.upper() in offered
    codec = chosen or "PCMU"
    restricted = sdp_codecs.restrict(local, codec)
    names = {name for _, name in sdp_codecs.audio_codecs(restricted)}
    if codec.upper() in {name for _, name in sdp_codecs.audio_codecs(local)}:
        assert names <= {codec.upper(), *sdp_codecs.KEEP_ALWAYS}
    else:
        assert restricted == local  # we do not have the codec: PJSIP's SDP is left alone


# -- Realtime ------------------------------------------------------------------------------------
REALTIME_WORDS = ["type", "session", "audio", "input", "output", "format", "rate", "audio/pcm"]
REALTIME_WORDS += ["audio/pcmu", "pcm16", "g711_ulaw", "id", "item_id", "response_id", "delta"]
REALTIME_WORDS += ["response", "status", "status_details", "error", "message", "code", "failed"]
REALTIME_WORDS += ["transcript", "text", "audio_start_ms", "audio_end_ms", "content_index"]
AUDIO = base64.b64encode(b"\x00\x01" * 8).decode()
REALTIME_TEMPLATES = [
    {
        "type": "session.updated",
        "session": {
            "id": "s1",
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": 24000}},
                "output": {"format": {"type": "audio/pcmu"}},
            },
            "input_audio_format": "pcm16",
        },
    },
    {"type": "input_audio_buffer.speech_started", "item_id": "i1", "audio_start_ms": 100},
    {"type": "input_audio_buffer.speech_stopped", "item_id": "i1", "audio_end_ms": 900},
    {"type": "response.created", "response": {"id": "r1"}},
    {"type": "response.output_audio.delta", "response_id": "r1", "item_id": "i2", "delta": AUDIO},
    {"type": "response.audio.delta", "response_id": "r1", "content_index": 0, "delta": AUDIO},
    {"type": "response.output_audio.done", "response_id": "r1", "item_id": "i2"},
    {"type": "response.output_audio_transcript.delta", "response_id": "r1", "delta": "При"},
    {"type": "response.output_text.done", "response_id": "r1", "text": "Привет"},
    {"type": "conversation.item.input_audio_transcription.completed", "transcript": " да "},
    {"type": "conversation.item.input_audio_transcription.failed", "error": {"message": "x"}},
    {
        "type": "response.done",
        "response": {
            "id": "r1",
            "status": "failed",
            "status_details": {"type": "failed", "error": {"message": "overloaded"}},
        },
    },
    {"type": "error", "error": {"type": "server_error", "code": "c", "message": "oops"}},
]
REALTIME_TEXT = json_texts(REALTIME_WORDS, REALTIME_TEMPLATES)


@FUZZ
@given(text=REALTIME_TEXT, as_bytes=st.booleans(), noise=st.binary(max_size=20))
def test_realtime_server_events_parse_or_raise_their_error(
    text: str, as_bytes: bool, noise: bytes
) -> None:
    for raw in (text.encode() if as_bytes else text, noise):
        try:
            event = server_events.parse_server_event(raw)
        except RealtimeProtocolError:
            continue
        assert isinstance(event, server_events.ServerEvent)
        if isinstance(event, server_events.SessionInfo):
            for fmt in (event.input_format, event.output_format):
                assert fmt is None or (type(fmt.rate) is int and fmt.rate > 0)
        for name in ("audio_start_ms", "audio_end_ms", "content_index"):
            value = getattr(event, name, None)
            assert value is None or type(value) is int


def test_realtime_numbers_beyond_an_int_are_left_out() -> None:
    """JSON's Infinity and NaN (Python's json reads them) are no millisecond count."""
    for value in ("Infinity", "-Infinity", "NaN", "1e999"):
        text = f'{{"type": "input_audio_buffer.speech_started", "audio_start_ms": {value}}}'
        started = server_events.parse_server_event(text)
        assert isinstance(started, server_events.InputSpeechStarted)
        assert started.audio_start_ms is None


@FUZZ
@given(
    value=json_values(REALTIME_WORDS)
    | (NUMBERS | st.booleans()).map(lambda n: {"type": "audio/pcm", "rate": n})
)
@example(value={"type": "audio/pcm", "rate": True})  # a bool is an int to isinstance
@example(value={"type": "audio/pcm", "rate": 10**30})
def test_realtime_audio_formats_are_valid_or_none(value: object) -> None:
    fmt = AudioFormat.from_json(value)
    if fmt is not None:
        assert fmt.type in ("audio/pcm", "audio/pcmu")
        assert type(fmt.rate) is int and fmt.rate > 0
        assert math.isfinite(fmt.wire_ms(320))


@FUZZ
@given(
    fmt=st.sampled_from([AudioFormat("audio/pcm", 24000), AudioFormat("audio/pcmu")]),
    pcm=st.binary(max_size=400),
)
def test_realtime_audio_round_trip(fmt: AudioFormat, pcm: bytes) -> None:
    """What the robot sends decodes to the same number of samples (mu-law is lossy, PCM exact),
    and input_audio_append carries it as base64."""
    pcm = pcm[: len(pcm) - len(pcm) % 2]
    wire = fmt.encode(pcm)
    decoded = fmt.decode(wire)
    assert len(decoded) == len(pcm)
    if fmt.type == "audio/pcm":
        assert decoded == pcm
    else:
        # mu-law: a decoded sample encodes back to itself (-1..-3 and 0 share "zero", 0x7F/0xFF)
        assert fmt.decode(fmt.encode(decoded)) == decoded
    event = protocol.input_audio_append(wire)
    assert base64.b64decode(json.loads(json.dumps(event))["audio"]) == wire
