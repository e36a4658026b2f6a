"""The media ingresses' sans-I/O codecs under any input: a valid event or their own error.

Properties: whatever a peer sends (any text, any JSON, JSON built of the protocol's own words, any
bytes in any pieces) the decoder returns events or raises CallProtocolError / EslProtocolError,
never another exception (which would end the call as a crash with a traceback, not as a protocol
error); and what our encoders write decodes back to what they were given.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from tests.fuzz.profiles import FUZZ
from tests.fuzz.strategies import chunked, json_texts
from voiceplat.config import DTMF_KEYS
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn, MarkReply
from voiceplat.telephony.ingress.asterisk_ws import codec as asterisk
from voiceplat.telephony.ingress.audio_fork import codec as audio_fork
from voiceplat.telephony.ingress.audio_stream import codec as audio_stream
from voiceplat.telephony.ingress.audio_stream import esl
from voiceplat.telephony.ingress.audiosocket import codec as audiosocket
from voiceplat.telephony.ingress.twilio import codec as twilio

DEEP_JSON = ["[" * 100_000, '{"a":' * 100_000]
"""Nesting past Python's recursion limit: json.loads raises RecursionError, not ValueError."""

MESSAGES = st.lists(st.one_of(json_texts(), st.binary(max_size=64)), max_size=6)


def _feed(decoder: object, messages: list[str | bytes]) -> list[object]:
    """Feeds a WebSocket decoder its messages; stops at the first CallProtocolError (the call ends)."""
    events: list[object] = []
    try:
        for message in messages:
            if isinstance(message, str):
                events += decoder.text(message)  # type: ignore[attr-defined]
            else:
                events += decoder.binary(message)  # type: ignore[attr-defined]
    except CallProtocolError:
        pass
    return events


def _audio(events: Sequence[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, AudioIn))


# -- mod_audio_fork ---------------------------------------------------------------------------
FORK_WORDS = ["callId", "call_id", "uuid", "from", "to", "source", "type", "mark", "data", "name"]
FORK_WORDS += ["event", "playout", "cleared", "web", "sip"]
FORK_METADATA = {"callId": "c1", "from": "+100", "to": "200", "source": "sip", "x": 1}
FORK_TEMPLATES = [
    FORK_METADATA,
    {"type": "mark", "data": {"name": "m1", "event": "playout"}},
    {"type": "mark", "data": {"name": "m2", "event": "cleared"}},
    {"type": "transcription", "data": {"text": "hi"}},
]
FORK_TEXT = json_texts(FORK_WORDS, FORK_TEMPLATES)


@FUZZ
@given(
    first=st.just(json.dumps(FORK_METADATA)) | FORK_TEXT,
    rest=st.lists(FORK_TEXT | st.binary(max_size=64), max_size=4),
)
def test_audio_fork_any_messages(first: str, rest: list[str | bytes]) -> None:
    events = _feed(audio_fork.AudioForkDecoder(), [first, *rest])
    for event in events:
        assert isinstance(event, CallMetadata | AudioIn | MarkReply)
        if isinstance(event, AudioIn):
            assert len(event.data) % 2 == 0 and event.data


def test_audio_fork_mark_reply_of_the_wrong_shape_is_ignored() -> None:
    decoder = audio_fork.AudioForkDecoder()
    decoder.text(json.dumps(FORK_METADATA))
    assert decoder.text('{"type": "mark", "data": [null]}') == []


@FUZZ
@given(audio=st.binary(max_size=2000), data=st.data())
def test_audio_fork_audio_in_any_pieces_is_the_same_audio(
    audio: bytes, data: st.DataObject
) -> None:
    decoder = audio_fork.AudioForkDecoder()
    decoder.text('{"callId": "c"}')
    pieces = data.draw(chunked(audio))
    got = _audio([e for piece in pieces for e in decoder.binary(piece)])
    assert got == audio[: len(audio) - len(audio) % 2]


@FUZZ
@given(name=st.text())
def test_audio_fork_commands_are_json_holding_their_argument(name: str) -> None:
    assert json.loads(audio_fork.mark(name)) == {"type": "mark", "data": {"name": name}}
    assert json.loads(audio_fork.transfer(name))["data"]["target"] == name


@FUZZ
@given(audio=st.binary(max_size=400))
def test_without_markers_leaves_no_marker_sample_and_changes_only_them(audio: bytes) -> None:
    fixed = audio_fork.without_markers(audio)
    assert len(fixed) == len(audio)
    for i in range(0, len(audio) - 1, 2):
        sample, before = fixed[i : i + 2], audio[i : i + 2]
        assert sample != audio_fork.MARKER
        assert sample == (b"\x00\x00" if before == audio_fork.MARKER else before)


# -- Asterisk AudioSocket -----------------------------------------------------------------------
@FUZZ
@given(stream=st.binary(max_size=600), data=st.data())
def test_audiosocket_any_bytes(stream: bytes, data: st.DataObject) -> None:
    decoder = audiosocket.AudioSocketDecoder()
    try:
        for piece in data.draw(chunked(stream)):
            for event in decoder.feed(piece):
                assert isinstance(event, AudioIn | DtmfIn | Hangup | uuid.UUID)
        decoder.end_of_stream()
    except CallProtocolError:
        pass


FRAMES = st.one_of(
    st.binary(max_size=400).map(audiosocket.audio_frame),
    st.sampled_from(DTMF_KEYS).map(audiosocket.dtmf_frame),
)


@FUZZ
@given(call_id=st.uuids(), frames=st.lists(FRAMES, max_size=10), data=st.data())
def test_audiosocket_frames_decode_back_in_any_pieces(
    call_id: uuid.UUID, frames: list[bytes], data: st.DataObject
) -> None:
    stream = audiosocket.uuid_frame(call_id) + b"".join(frames)
    reader, decoder = audiosocket.FrameReader(), audiosocket.AudioSocketDecoder()
    events, parsed = [], []
    for piece in data.draw(chunked(stream)):
        parsed += reader.feed(piece)
        events += decoder.feed(piece)
    assert [audiosocket.frame(f.kind, f.payload) for f in parsed[1:]] == frames
    assert events[0] == call_id and decoder.end_of_stream().end_reason == "caller_hangup"
    sent = b"".join(f.payload for f in parsed if f.kind == audiosocket.KIND_AUDIO)
    assert _audio(events) == sent[: len(sent) - len(sent) % 2]
    assert [e.digit for e in events if isinstance(e, DtmfIn)] == [
        f.payload.decode() for f in parsed if f.kind == audiosocket.KIND_DTMF
    ]


# -- Asterisk chan_websocket ------------------------------------------------------------------
ASTERISK_WORDS = ["event", "MEDIA_START", "channel_id", "format", "slin", "slin16", "ulaw", "alaw"]
ASTERISK_WORDS += ["optimal_frame_size", "ptime", "connection_id", "channel", "channel_variables"]
ASTERISK_WORDS += ["MEDIA_MARK_PROCESSED", "correlation_id", "DTMF_END", "digit", "MEDIA_XOFF"]
ASTERISK_WORDS += ["MEDIA_XON", "ERROR", "error_text", "QUEUE_DRAINED", "VOICEPLAT_CALLER"]
PLAIN_LINES = st.builds(
    lambda name, pairs: " ".join([name, *(f"{k}:{v}" for k, v in pairs)]),
    st.sampled_from(ASTERISK_WORDS) | st.text(max_size=10),
    st.lists(
        st.tuples(st.sampled_from(ASTERISK_WORDS), st.sampled_from(ASTERISK_WORDS) | st.text()),
        max_size=5,
    ),
)
ASTERISK_JSON_START = {
    "event": "MEDIA_START",
    "connection_id": "a",
    "channel": "WebSocket/b",
    "channel_id": "c",
    "format": "slin16",
    "optimal_frame_size": 640,
    "ptime": 20,
    "channel_variables": {"VOICEPLAT_CALLER": "+100"},
}
ASTERISK_TEMPLATES = [
    ASTERISK_JSON_START,
    {"event": "MEDIA_MARK_PROCESSED", "correlation_id": "m1"},
    {"event": "DTMF_END", "digit": "5"},
    {"event": "MEDIA_XOFF"},
    {"event": "ERROR", "error_text": "bad command"},
]
ASTERISK_TEXT = json_texts(ASTERISK_WORDS, ASTERISK_TEMPLATES) | PLAIN_LINES
GOOD_START = st.sampled_from(
    [
        "MEDIA_START connection_id:a channel:b channel_id:c format:slin optimal_frame_size:320",
        "MEDIA_START channel_id:c format:ulaw optimal_frame_size:160 ptime:20",
        '{"event": "MEDIA_START", "channel_id": "c", "format": "slin16", "optimal_frame_size": 640}',
        '{"event": "MEDIA_START", "channel_id": "c", "format": "alaw", "optimal_frame_size": 160}',
    ]
)


@FUZZ
@given(
    first=ASTERISK_TEXT | GOOD_START,
    rest=st.lists(ASTERISK_TEXT | st.binary(max_size=700), max_size=4),
    path=st.text() | st.lists(st.sampled_from(["/asterisk?", "//[", "a=1", "&", "#"])).map("".join),
)
@example(  # JSON's Infinity as a number: int() raises OverflowError, not ValueError
    first='{"event":"MEDIA_START","channel_id":"c","format":"slin","optimal_frame_size":1e999}',
    rest=[],
    path="/asterisk",
)
@example(first="MEDIA_START", rest=[], path="//[x?a=1")  # urlsplit refuses the host
@example(first="MEDIA_START", rest=[], path="/?" + "&".join(f"a{i}=1" for i in range(40)))
def test_asterisk_ws_any_messages(first: str, rest: list[str | bytes], path: str) -> None:
    params = asterisk.query_params(path)
    assert len(params) <= asterisk.MAX_QUERY_FIELDS
    for event in _feed(asterisk.AsteriskWsDecoder(params), [first, *rest]):
        assert isinstance(event, asterisk.Event)


@FUZZ
@given(mark=st.text(), json_format=st.booleans())
def test_asterisk_ws_marks_come_back_by_their_id(mark: str, json_format: bool) -> None:
    """Our MARK_MEDIA with `mark_id(name)` is answered MEDIA_MARK_PROCESSED with that id."""
    mark_id = asterisk.mark_id(mark)
    command = asterisk.AsteriskWsEncoder(json_format).mark(mark_id)
    assert len(command.encode()) <= asterisk.MAX_COMMAND_BYTES
    if json_format:
        reply = json.dumps({"event": "MEDIA_MARK_PROCESSED", "correlation_id": mark_id})
        start = '{"event":"MEDIA_START","channel_id":"c","format":"slin","optimal_frame_size":320}'
    else:
        reply = f"MEDIA_MARK_PROCESSED {mark_id}"
        start = "MEDIA_START channel_id:c format:slin optimal_frame_size:320"
    decoder = asterisk.AsteriskWsDecoder()
    decoder.text(start)
    assert decoder.text(reply) == [MarkReply(mark_id, "playout")]


# -- FreeSWITCH mod_audio_stream + ESL ----------------------------------------------------------
STREAM_WORDS = ["uuid", "from", "to", "sampleRate", "callId", "file", "type", "data"]
STREAM_METADATA = {"uuid": "u-1", "from": "+100", "to": "200", "sampleRate": 16000}
STREAM_TEXT = json_texts(STREAM_WORDS, [STREAM_METADATA])


@FUZZ
@given(
    first=st.just(json.dumps(STREAM_METADATA)) | STREAM_TEXT,
    rest=st.lists(STREAM_TEXT | st.binary(max_size=700), max_size=4),
)
def test_audio_stream_any_messages(first: str, rest: list[str | bytes]) -> None:
    for event in _feed(audio_stream.AudioStreamDecoder(), [first, *rest]):
        assert isinstance(event, CallMetadata | AudioIn)


ESL_HEADER_NAMES = ["Content-Type", "Content-Length", "Reply-Text", "Event-Name", "Unique-ID"]
ESL_HEADER_NAMES += ["Event-Subclass", "DTMF-Digit", "DTMF-Source"]
ESL_LINES = st.builds(
    "{}: {}".format,
    st.sampled_from(ESL_HEADER_NAMES) | st.text(max_size=8),
    st.text(max_size=12)
    | st.integers(-5, 200).map(str)
    | st.sampled_from(["²", "٣", "text/event-plain"]),
)
ESL_STREAMS = st.one_of(
    st.binary(max_size=300),
    st.lists(st.lists(ESL_LINES, max_size=4).map("\n".join), max_size=4).map(
        lambda blocks: "\n\n".join(blocks).encode()
    ),
)


@FUZZ
@given(stream=ESL_STREAMS, data=st.data())
def test_esl_any_bytes(stream: bytes, data: st.DataObject) -> None:
    parser = esl.EslParser()
    try:
        for piece in data.draw(chunked(stream)):
            for message in parser.feed(piece):
                event = esl.parse_event(message)
                audio_stream.play_file(event)
                audio_stream.dtmf_key(event)
    except esl.EslProtocolError:
        pass


HEADER_NAMES = st.text(
    st.characters(blacklist_characters=":\r\n", blacklist_categories=["Cs"]), min_size=1
).filter(lambda name: name.strip() == name and name != "Content-Length")
HEADER_VALUES = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]))


@FUZZ
@given(
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES.map(str.strip), max_size=5),
    body=st.text(),
    data=st.data(),
)
def test_esl_messages_and_events_decode_back(
    headers: dict[str, str], body: str, data: st.DataObject
) -> None:
    stream = esl.encode_message(headers, body) + esl.encode_event(headers, body)
    parser, messages = esl.EslParser(), []
    for piece in data.draw(chunked(stream)):
        messages += parser.feed(piece)
    assert len(messages) == 2
    plain, event = messages
    assert plain.body == body and {k: plain.headers[k] for k in headers} == headers
    parsed = esl.parse_event(event)
    assert parsed.body == body and {k: parsed.headers[k] for k in headers} == headers


# -- Twilio Media Streams -----------------------------------------------------------------------
TWILIO_WORDS = ["event", "connected", "start", "media", "dtmf", "mark", "stop", "callSid"]
TWILIO_WORDS += ["streamSid", "accountSid", "tracks", "mediaFormat", "encoding", "sampleRate"]
TWILIO_WORDS += ["audio/x-mulaw", "customParameters", "from", "to", "payload", "track"]
TWILIO_WORDS += ["inbound", "digit", "name", "AAAA", "/w=="]
TWILIO_TEMPLATES = {
    path.stem: json.loads(path.read_text())
    for path in (FIXTURES / "twilio" / "from_twilio").glob("*.json")
}
TWILIO_TEXT = json_texts(TWILIO_WORDS, sorted(TWILIO_TEMPLATES.values(), key=str))


@FUZZ
@given(
    first=st.just(json.dumps(TWILIO_TEMPLATES["start"])) | TWILIO_TEXT,
    rest=st.lists(TWILIO_TEXT | st.binary(max_size=8), max_size=4),
)
def test_twilio_any_messages(first: str, rest: list[str | bytes]) -> None:
    for event in _feed(twilio.TwilioDecoder(), [first, *rest]):
        assert isinstance(event, CallMetadata | AudioIn | DtmfIn | MarkReply | Hangup)


@FUZZ
@given(stream_sid=st.text(min_size=1, max_size=128), pcm=st.binary(max_size=640), mark=st.text())
def test_twilio_outbound_messages_decode_back(stream_sid: str, pcm: bytes, mark: str) -> None:
    """What we send is what Twilio's side of the protocol reads (the simulator decodes it so)."""
    sent = json.loads(twilio.media(stream_sid, pcm[: len(pcm) - len(pcm) % 2]))
    assert sent["streamSid"] == stream_sid
    decoder = twilio.TwilioDecoder()
    start = {"callSid": "CA1", "streamSid": stream_sid}
    decoder.text(json.dumps({"event": "start", "start": start}))
    events = decoder.text(json.dumps({"event": "media", "media": sent["media"]}))
    assert len(_audio(events)) == len(pcm) - len(pcm) % 2
    assert json.loads(twilio.mark(stream_sid, mark))["mark"] == {"name": mark}


@pytest.mark.parametrize("text", DEEP_JSON, ids=["array", "object"])
@pytest.mark.parametrize(
    "decoder",
    [
        audio_fork.AudioForkDecoder,
        asterisk.AsteriskWsDecoder,
        audio_stream.AudioStreamDecoder,
        twilio.TwilioDecoder,
    ],
)
def test_deeply_nested_json_is_a_protocol_error(decoder: type, text: str) -> None:
    with pytest.raises(CallProtocolError):
        decoder().text(text)
