"""Asterisk chan_websocket ingress: the messages of chan_websocket.c, formats, bad input, the channel."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from tests.doubles.transport import FakeTransport, NoPacer
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn, MarkReply
from voiceplat.telephony.ingress.asterisk_ws import codec
from voiceplat.telephony.ingress.asterisk_ws.channel import AsteriskWsChannel
from voiceplat.telephony.ingress.asterisk_ws.media import alaw_decode, alaw_encode
from voiceplat.telephony.ingress.asterisk_ws.settings import AsteriskWsSettings

# Exactly as chan_websocket.c _create_event_MEDIA_START prints them.
PLAIN_START = (
    "MEDIA_START connection_id:voiceplat channel:WebSocket/voiceplat-00000001 "
    "channel_id:1733140000.7 format:ulaw optimal_frame_size:160 ptime:20"
)
JSON_START = json.dumps(
    {
        "event": "MEDIA_START",
        "connection_id": "voiceplat",
        "channel": "WebSocket/voiceplat-00000002",
        "channel_id": "1733140000.9",
        "format": "slin",
        "optimal_frame_size": 320,
        "ptime": 20,
        "channel_variables": {"VOICEPLAT_CALLER": "+79990001122", "VOICEPLAT_CALLEE": "100"},
    }
)


def test_plain_media_start_gives_the_call_with_caller_from_the_uri() -> None:
    decoder = codec.AsteriskWsDecoder(codec.query_params("/asterisk?caller=%2B7999&callee=100&x=1"))
    start, meta = decoder.text(PLAIN_START)
    assert isinstance(start, codec.MediaStart) and isinstance(meta, CallMetadata)
    assert (start.format.name, start.optimal_frame_size, start.ptime) == ("ulaw", 160, 20)
    assert not start.json_format
    assert (meta.call_id, meta.caller, meta.callee, meta.source) == (
        "1733140000.7",
        "+7999",
        "100",
        "asterisk",
    )
    assert meta.extra["channel"] == "WebSocket/voiceplat-00000001" and meta.extra["x"] == "1"


def test_json_media_start_takes_caller_from_channel_variables() -> None:
    start, meta = codec.AsteriskWsDecoder().text(JSON_START)
    assert isinstance(start, codec.MediaStart) and start.json_format
    assert isinstance(meta, CallMetadata)
    assert (meta.caller, meta.callee, meta.call_id) == ("+79990001122", "100", "1733140000.9")


def test_ulaw_audio_is_decoded_and_slin_keeps_an_odd_byte() -> None:
    decoder = codec.AsteriskWsDecoder()
    decoder.text(PLAIN_START)
    (audio,) = decoder.binary(b"\xff" * 160)
    assert isinstance(audio, AudioIn) and audio.data == bytes(320)  # ulaw 0xFF is silence
    slin = codec.AsteriskWsDecoder()
    slin.text(JSON_START)
    assert slin.binary(b"\x01\x02\x03") == [AudioIn(b"\x01\x02")]
    assert slin.binary(b"\x04") == [AudioIn(b"\x03\x04")]


@pytest.mark.parametrize(
    ("start", "event", "expected"),
    [
        (PLAIN_START, "DTMF_END digit:5 channel_id:1733140000.7", DtmfIn("5", "other")),
        (JSON_START, '{"event":"DTMF_END","channel_id":"1","digit":"#"}', DtmfIn("#", "other")),
        (PLAIN_START, "MEDIA_MARK_PROCESSED drain-1", MarkReply("drain-1", "playout")),
        (
            JSON_START,
            '{"event":"MEDIA_MARK_PROCESSED","channel_id":"1","correlation_id":"m2"}',
            MarkReply("m2", "playout"),
        ),
        (PLAIN_START, "MEDIA_XOFF", codec.FlowControl(paused=True)),
        (JSON_START, '{"event":"MEDIA_XON","channel_id":"1"}', codec.FlowControl(paused=False)),
        (
            PLAIN_START,
            "ERROR channel_id:1 error_text:MARK_MEDIA not supported in passthrough mode",
            codec.AsteriskError("MARK_MEDIA not supported in passthrough mode"),
        ),
    ],
)
def test_events_after_media_start(start: str, event: str, expected: object) -> None:
    decoder = codec.AsteriskWsDecoder()
    decoder.text(start)
    assert decoder.text(event) == [expected]


def test_unknown_and_status_events_are_ignored() -> None:
    decoder = codec.AsteriskWsDecoder()
    decoder.text(PLAIN_START)
    assert decoder.text("QUEUE_DRAINED") == []
    assert decoder.text("MEDIA_SOMETHING_NEW key:value") == []
    assert decoder.text(PLAIN_START) == []  # a second MEDIA_START changes nothing


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([b"\xff" * 160], "audio arrived before MEDIA_START"),
        (["hello"], "expected MEDIA_START first"),
        (["{not json"], "TEXT message is not JSON"),
        (["MEDIA_START format:ulaw optimal_frame_size:160"], "MEDIA_START has no channel_id"),
        ([PLAIN_START.replace("ulaw", "opus")], "format 'opus' is not supported"),
        ([PLAIN_START.replace(":160", ":abc")], "optimal_frame_size must be a number"),
        ([PLAIN_START.replace(":160", ":99999999")], "out of range"),
        ([JSON_START.replace(": 320", ": 321")], "splits a slin sample"),
        ([PLAIN_START, "\x00\x01 garbage"], "not a control event"),
        ([JSON_START, "[1, 2]"], 'without "event"'),
        ([PLAIN_START, "DTMF_END digit:x"], "DTMF_END digit must be one of"),
    ],
)
def test_bad_input_is_a_protocol_error(messages: list[str | bytes], error: str) -> None:
    decoder = codec.AsteriskWsDecoder()
    with pytest.raises(CallProtocolError, match=error):
        for message in messages:
            decoder.text(message) if isinstance(message, str) else decoder.binary(message)


def test_commands_in_both_formats_fit_asterisks_limit() -> None:
    plain, as_json = codec.AsteriskWsEncoder(False), codec.AsteriskWsEncoder(True)
    assert (plain.mark("drain-1"), plain.flush(), plain.hangup()) == (
        "MARK_MEDIA drain-1",
        "FLUSH_MEDIA",
        "HANGUP",
    )
    assert json.loads(as_json.mark("m")) == {"command": "MARK_MEDIA", "correlation_id": "m"}
    assert json.loads(as_json.flush()) == {"command": "FLUSH_MEDIA"}
    long_id = codec.mark_id("a name with spaces " * 20)
    assert " " not in long_id
    assert len(as_json.mark(long_id).encode()) <= codec.MAX_COMMAND_BYTES


def test_alaw_round_trip_is_close_and_silence_is_d5() -> None:
    samples = np.arange(-32768, 32768, 61, dtype="<i2")
    wide = samples.astype(int)
    back = np.frombuffer(alaw_decode(alaw_encode(samples.tobytes())), "<i2").astype(int)
    assert np.all(np.abs(back - wide) <= np.maximum(np.abs(wide) // 16, 16))
    assert alaw_encode(bytes(2)) == b"\xd5"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth() -> None:
    env = {"AST_WS_PASSWORD": "s3cret"}
    assert AsteriskWsSettings().refusal(None, env) is None  # no password_env: anyone
    settings = AsteriskWsSettings(username="asterisk", password_env="AST_WS_PASSWORD")
    assert settings.refusal(_basic("asterisk", "s3cret"), env) is None
    assert "wrong username or password" in str(settings.refusal(_basic("asterisk", "x"), env))
    assert "wrong username or password" in str(settings.refusal(_basic("bob", "s3cret"), env))
    assert "Basic auth required" in str(settings.refusal(None, env))
    assert "malformed" in str(settings.refusal("Basic !!!", env))
    assert "AST_WS_PASSWORD is not set" in str(settings.refusal(_basic("a", "b"), {}))


# --- the channel ------------------------------------------------------------------------------


def make_channel(
    start: str = PLAIN_START, **kwargs: object
) -> tuple[AsteriskWsChannel, FakeTransport]:
    transport = FakeTransport()
    channel = AsteriskWsChannel(transport, pacer=NoPacer(), **kwargs)  # type: ignore[arg-type]
    if start:
        channel.on_message(start)
    return channel, transport


def drain(channel: AsteriskWsChannel) -> None:
    """Runs the pacer until everything queued is sent (time is whatever the pacer asks)."""
    now = 0.0
    while (due := channel.pace(now, now)) is not None:
        now = max(now, due)


async def test_robot_audio_goes_out_in_whole_frames_then_the_turns_mark() -> None:
    channel, transport = make_channel()
    channel.play(bytes(2 * 8000 // 1000 * 130))  # 130 ms: 6.5 frames of 20 ms
    waiting = asyncio.ensure_future(channel.wait_heard(30))
    await asyncio.sleep(0)
    drain(channel)
    frames = transport.binaries()
    assert all(len(f) % 160 == 0 for f in frames)
    assert sum(map(len, frames)) == 160 * 7  # the half frame padded with ulaw silence
    assert frames[-1].endswith(b"\xff" * 80)
    assert transport.sent[-1] == "MARK_MEDIA drain-1"
    channel.on_message("MEDIA_MARK_PROCESSED drain-1")
    await asyncio.wait_for(waiting, 60)


async def test_clear_flushes_asterisks_queue_and_clears_marks() -> None:
    channel, transport = make_channel()
    channel.play(bytes(3200))
    drain(channel)
    sent_mark = channel.mark("after first")
    channel.play(bytes(3200))
    queued_mark = channel.mark("never sent")
    channel.pace(0.0, 0.0)  # sends the first mark; the second waits behind audio
    assert "MARK_MEDIA after_first" in transport.texts()
    await channel.clear()
    assert transport.sent[-1] == "FLUSH_MEDIA"
    assert (sent_mark.result(), queued_mark.result()) == ("cleared", "cleared")
    assert channel.queued_ms == pytest.approx(channel.playout.sent_ms)


async def test_xoff_holds_audio_until_xon() -> None:
    channel, transport = make_channel()
    channel.on_message("MEDIA_XOFF")
    channel.play(bytes(3200))
    assert channel.pace(0.0, 0.0) is None and transport.binaries() == []
    channel.on_message("MEDIA_XON")
    drain(channel)
    assert sum(map(len, transport.binaries())) == 1600


async def test_json_format_answers_in_json() -> None:
    channel, transport = make_channel(JSON_START)
    channel.play(bytes(640))
    channel.mark("m1")
    drain(channel)
    assert transport.binaries() == [bytes(640)]  # slin: as is, two frames of 320
    assert json.loads(transport.texts()[-1]) == {"command": "MARK_MEDIA", "correlation_id": "m1"}


async def test_dtmf_before_the_handler_is_delivered_in_order() -> None:
    channel, _ = make_channel()
    channel.on_message("DTMF_END digit:1 channel_id:x")
    channel.on_message("DTMF_END digit:2 channel_id:x")
    keys: list[str] = []
    channel.on_dtmf(lambda key: keys.append(key.digit))
    channel.on_message("DTMF_END digit:3 channel_id:x")
    assert keys == ["1", "2", "3"]


async def test_close_by_asterisk_is_a_hangup() -> None:
    channel, _ = make_channel()
    channel.on_message(b"\xff" * 160)
    channel.on_closed(ConnectionClosed(Close(1000, ""), None))
    assert (await channel.audio()).data == bytes(320)  # what came first is still delivered
    with pytest.raises(Hangup):
        await channel.audio()


async def test_refused_connection_fails_before_metadata_and_closes_1008() -> None:
    channel, transport = make_channel("", refused="unauthorized: wrong username or password")
    channel.on_message(PLAIN_START)  # ignored: the stream is already refused
    with pytest.raises(CallProtocolError, match="unauthorized"):
        await channel.metadata()
    await channel.close()
    assert transport.closed_with == (1008, "unauthorized: wrong username or password")


async def test_disconnect_says_hangup_then_closes() -> None:
    channel, transport = make_channel()
    assert (await channel.metadata()).source == "asterisk"
    await channel.disconnect()
    assert transport.sent[-1] == "HANGUP" and transport.closed_with == (1000, "")
    result = await channel.transfer("200")
    assert not result.accepted and "no transfer command" in result.reason


# --- the simulator's Asterisk side ------------------------------------------------------------


def test_peer_speaks_chan_websocket_and_reports_what_asterisk_would_drop() -> None:
    from voiceplat.simulator.peers.asterisk_ws import make_peer
    from voiceplat.simulator.peers.base import CallInfo, PeerWarning, RobotAudio, RobotClear

    call = CallInfo("1733.1", "+7999", "100")
    peer, transport = make_peer("asterisk+ws://127.0.0.1:1/asterisk?format=ulaw&x=1", call)
    assert transport.url == "ws://127.0.0.1:1/asterisk?x=1&caller=%2B7999&callee=100"
    (start,) = peer.start(call)
    decoder = codec.AsteriskWsDecoder(codec.query_params(transport.url))
    _, meta = decoder.text(str(start))
    assert isinstance(meta, CallMetadata) and (meta.call_id, meta.caller) == ("1733.1", "+7999")
    assert peer.dtmf("5") == ["DTMF_END digit:5 channel_id:1733.1"]
    assert peer.mark_answer("m", "cleared") == []  # FLUSH_MEDIA drops marks unanswered
    assert peer.receive("FLUSH_MEDIA") == [RobotClear("FLUSH_MEDIA")]
    audio, warning = peer.receive(b"\xff" * 200)
    assert isinstance(audio, RobotAudio) and len(audio.pcm) == 320
    assert isinstance(warning, PeerWarning) and "drops the last 40" in warning.text
    (long,) = peer.receive("MARK_MEDIA " + "x" * 200)
    assert isinstance(long, PeerWarning) and "128 bytes" in long.text
