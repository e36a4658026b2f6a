"""The Twilio ingress's channel: the call from `start`, audio, keys and `stop` in; robot audio as
paced `media`, marks Twilio answers, `clear` on barge-in; refused or broken streams closed 1008."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from tests.doubles.transport import FakeTransport, NoPacer
from voiceplat.audio.g711 import ulaw_decode
from voiceplat.audio.pcm import frame_bytes
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallProtocolError, DtmfIn
from voiceplat.telephony.ingress.twilio.auth import Verdict
from voiceplat.telephony.ingress.twilio.channel import TwilioChannel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "twilio" / "from_twilio"
SID = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def make_channel(verdict: Verdict | None = None) -> tuple[TwilioChannel, FakeTransport]:
    transport = FakeTransport()
    channel = TwilioChannel(transport, verdict=verdict, pacer=NoPacer())  # type: ignore[arg-type]
    return channel, transport


def start_with(**params: str) -> str:
    start = json.loads(fixture("start"))
    start["start"]["customParameters"] = params
    return json.dumps(start)


async def test_start_audio_keys_and_stop() -> None:
    channel, transport = make_channel()
    assert transport.receiver is channel
    channel.on_message(fixture("connected"))
    channel.on_message(start_with(**{"from": "+15550001", "to": "+15550002"}))
    meta = await channel.metadata()
    assert (meta.call_id, meta.caller, meta.callee, meta.source) == (
        "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "+15550001",
        "+15550002",
        "twilio",
    )
    channel.on_message(fixture("media"))
    payload = base64.b64decode(json.loads(fixture("media"))["media"]["payload"])
    assert await channel.audio() == AudioIn(ulaw_decode(payload))
    channel.on_message(fixture("dtmf"))  # before the session set its handler
    keys: list[DtmfIn] = []
    channel.on_dtmf(keys.append)
    channel.on_message(fixture("dtmf").replace('"1"', '"#"'))
    assert keys == [DtmfIn("1", "other"), DtmfIn("#", "other")]
    channel.on_message(fixture("stop"))
    with pytest.raises(Hangup):
        await channel.audio()
    await channel.close()
    assert transport.closed_with == (1000, "")


async def test_refused_handshake_ends_before_metadata_with_1008_and_the_reason() -> None:
    channel, transport = make_channel(Verdict(refused="X-Twilio-Signature missing"))
    channel.on_message(fixture("start"))  # ignored: the stream was refused
    with pytest.raises(CallProtocolError, match="not authorised: X-Twilio-Signature missing"):
        await channel.metadata()
    await channel.close()
    assert transport.closed_with == (1008, "not authorised: X-Twilio-Signature missing")


async def test_token_in_the_start_message() -> None:
    wrong, transport = make_channel(Verdict(token_in_start="tok"))
    wrong.on_message(start_with(token="guess"))
    with pytest.raises(CallProtocolError, match=r"customParameters\.token missing or wrong"):
        await wrong.metadata()
    await wrong.close()
    assert transport.closed_with is not None and transport.closed_with[0] == 1008
    right, _ = make_channel(Verdict(token_in_start="tok"))
    right.on_message(start_with(token="tok"))
    assert "token" not in (await right.metadata()).extra


async def test_media_before_start_fails_the_metadata() -> None:
    channel, transport = make_channel()
    channel.on_message(fixture("connected"))
    channel.on_message(fixture("media"))
    with pytest.raises(CallProtocolError, match="media arrived before the start message"):
        await channel.metadata()
    await channel.close()
    assert transport.closed_with is not None and transport.closed_with[0] == 1008


async def test_garbage_after_start_keeps_what_came_before_then_fails() -> None:
    channel, transport = make_channel()
    channel.on_message(fixture("start"))
    await channel.metadata()
    channel.on_message(fixture("media"))
    channel.on_message("garbage")
    channel.on_message(fixture("media"))  # after the failure: ignored
    assert isinstance(await channel.audio(), AudioIn)
    with pytest.raises(CallProtocolError, match="message is not JSON"):
        await channel.audio()
    await channel.close()
    assert transport.closed_with == (1008, "message is not JSON: 'garbage'")


async def test_paced_media_marks_answered_and_clear() -> None:
    channel, transport = make_channel()
    channel.on_message(fixture("start"))
    await channel.metadata()
    assert channel.play(b"\x05\x00" * 800) == (0.0, 100.0)
    played = channel.mark("played")
    assert channel.play(b"\x06\x00" * 8000) == (100.0, 1100.0)
    dropped = channel.mark("dropped")
    now = asyncio.get_running_loop().time()
    due = channel.pace(now, now)
    media = transport.events("media")
    assert {m["streamSid"] for m in media} == {SID}
    sizes = [len(ulaw_decode(base64.b64decode(m["media"]["payload"]))) for m in media]
    # 60 ms chunks up to the lead, the first one cut where the mark lies (after 100 ms)
    assert sizes == [frame_bytes(60), frame_bytes(40), frame_bytes(60), frame_bytes(60)]
    assert [m["mark"]["name"] for m in transport.events("mark")] == ["played"]
    channel.on_message(fixture("mark").replace("my label", "played"))  # Twilio: it has played
    assert await played == "playout"
    assert due is not None and channel.speaking()
    heard = await channel.clear()
    assert 0.0 <= heard <= 220.0
    assert transport.events("clear") == [{"event": "clear", "streamSid": SID}]
    assert await dropped == "cleared"  # never sent: dropped with the queue
    assert channel.pace(due, due) is None  # nothing left to send


async def test_marks_sent_before_a_clear_are_cleared_and_twilios_echo_changes_nothing() -> None:
    channel, transport = make_channel()
    channel.on_message(fixture("start"))
    await channel.metadata()
    channel.play(b"\x05\x00" * 800)
    mark = channel.mark("m1")
    now = asyncio.get_running_loop().time()
    channel.pace(now, now)
    assert [m["mark"]["name"] for m in transport.events("mark")] == ["m1"]
    await channel.clear()
    channel.on_message(fixture("mark").replace("my label", "m1"))  # Twilio answers it on clear
    assert await mark == "cleared"


async def test_transfer_is_refused_and_disconnect_closes() -> None:
    channel, transport = make_channel()
    channel.on_message(fixture("start"))
    await channel.metadata()
    result = await channel.transfer("+15550003")
    assert not result.accepted and "REST API" in result.reason
    await channel.disconnect()
    assert channel.closed and transport.closed_with == (1000, "")
