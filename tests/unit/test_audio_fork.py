"""mod_audio_fork codec: metadata first, audio of any size, odd bytes carried, commands out."""

from __future__ import annotations

import json

import pytest

from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, MarkReply
from voiceplat.telephony.ingress.audio_fork import codec as audio_fork
from voiceplat.telephony.ingress.audio_fork.codec import AudioForkDecoder
from voiceplat.telephony.playout_model import PlayoutModel


def test_metadata_then_audio() -> None:
    decoder = AudioForkDecoder()
    (meta,) = decoder.text(json.dumps({"callId": "abc", "from": "+7999", "to": "8800", "x": 1}))
    assert meta == CallMetadata("abc", "+7999", "8800", "freeswitch", {"x": 1})
    assert decoder.binary(b"\x01\x00" * 160) == [AudioIn(b"\x01\x00" * 160)]


def test_odd_byte_is_carried_not_dropped() -> None:
    decoder = AudioForkDecoder()
    decoder.text("{}")
    assert decoder.binary(b"\x01\x02\x03") == [AudioIn(b"\x01\x02")]
    assert decoder.binary(b"\x04") == [AudioIn(b"\x03\x04")]
    assert decoder.binary(b"\x05") == []
    assert decoder.binary(b"\x06\x07\x08") == [AudioIn(b"\x05\x06\x07\x08")]


def test_metadata_without_call_id_gets_one() -> None:
    (meta,) = AudioForkDecoder().text('{"from": "1"}')
    assert isinstance(meta, CallMetadata) and len(meta.call_id) == 36


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"str"'])
def test_bad_metadata_is_a_protocol_error(text: str) -> None:
    with pytest.raises(CallProtocolError, match="metadata"):
        AudioForkDecoder().text(text)


def test_audio_before_metadata_is_a_protocol_error() -> None:
    with pytest.raises(CallProtocolError, match="before the metadata"):
        AudioForkDecoder().binary(b"\x00\x00")


def test_mark_replies_and_other_events() -> None:
    decoder = AudioForkDecoder()
    decoder.text("{}")
    reply = {"type": "mark", "data": {"name": "t1s1", "event": "playout"}}
    assert decoder.text(json.dumps(reply)) == [MarkReply("t1s1", "playout")]
    assert decoder.text('{"type": "transcription", "data": {}}') == []
    with pytest.raises(CallProtocolError):
        decoder.text("garbage")


def test_commands_are_the_module_json() -> None:
    assert json.loads(audio_fork.kill_audio()) == {"type": "killAudio"}
    assert json.loads(audio_fork.mark("m1")) == {"type": "mark", "data": {"name": "m1"}}
    assert json.loads(audio_fork.disconnect()) == {"type": "disconnect"}
    assert json.loads(audio_fork.transfer("1000")) == {
        "type": "transfer",
        "data": {"target": "1000"},
    }


def test_playout_model_knows_what_was_heard() -> None:
    model = PlayoutModel()
    model.on_send(200, now=10.0)  # plays 10.0 .. 10.2
    model.on_send(100, now=10.05)  # queued behind: 10.2 .. 10.3
    assert model.ahead_ms(10.1) == pytest.approx(200)
    assert model.heard_ms(10.1) == pytest.approx(100)
    assert model.playing(10.29) and not model.playing(10.31)
    assert model.flush(10.15) == pytest.approx(150)  # killAudio: the rest never plays
    model.on_send(100, now=10.5)  # buffer had run dry: plays 10.5 .. 10.6
    assert model.heard_ms(10.55) == pytest.approx(200)
