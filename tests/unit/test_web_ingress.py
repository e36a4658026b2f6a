"""The browser ingress (path /web): metadata, audio of any size, bad input, clear, live turns."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.doubles.transport import FakeTransport, NoPacer
from voiceplat.audio.pcm import frame_bytes
from voiceplat.storage.live import LiveCalls
from voiceplat.storage.records import (
    CallFinished,
    CallOpened,
    CallRecord,
    CallSnapshot,
    TurnRecord,
    TurnWritten,
)
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn
from voiceplat.telephony.ingress.web import WebChannel, WebDecoder


def make_channel(live: LiveCalls | None = None) -> tuple[WebChannel, FakeTransport]:
    transport = FakeTransport()
    channel = WebChannel(transport, robot="echo", live=live, pacer=NoPacer())  # type: ignore[arg-type]
    return channel, transport


def test_metadata_names_the_robot_and_gets_a_fresh_call_id() -> None:
    decoder = WebDecoder("echo")
    (meta,) = decoder.text(json.dumps({"robot": "echo", "caller": "Аня"}))
    assert isinstance(meta, CallMetadata)
    assert (meta.source, meta.caller, meta.callee) == ("web", "Аня", "echo")
    (other,) = WebDecoder("echo").text('{"robot": "echo"}')
    assert isinstance(other, CallMetadata) and other.caller is None
    assert len(meta.call_id) == 36 and meta.call_id != other.call_id


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "metadata is not JSON"),
        ("[1]", "metadata must be a JSON object"),
        ("{}", 'metadata needs "robot"'),
        ('{"robot": "clinic"}', "this port serves robot 'echo', not 'clinic'"),
        ('{"robot": "echo", "caller": 5}', '"caller" must be a string'),
    ],
)
def test_bad_metadata_says_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(CallProtocolError, match=error):
        WebDecoder("echo").text(text)


def test_odd_byte_is_carried_and_text_messages_after_metadata() -> None:
    decoder = WebDecoder("echo")
    with pytest.raises(CallProtocolError, match="before the metadata"):
        decoder.binary(b"\x00\x00")
    decoder.text('{"robot": "echo"}')
    assert decoder.binary(b"\x01\x02\x03") == [AudioIn(b"\x01\x02")]
    assert decoder.binary(b"\x04") == [AudioIn(b"\x03\x04")]
    (hangup,) = decoder.text('{"type": "hangup"}')
    assert isinstance(hangup, Hangup) and hangup.end_reason == "caller_hangup"
    assert decoder.text('{"type": "dtmf", "digit": "5"}') == [DtmfIn("5", "other")]
    with pytest.raises(CallProtocolError, match="unknown message type 'bogus'"):
        decoder.text('{"type": "bogus"}')
    with pytest.raises(CallProtocolError, match="dtmf digit"):
        decoder.text('{"type": "dtmf", "digit": "55"}')


async def test_call_message_then_audio_then_hangup() -> None:
    channel, transport = make_channel()
    assert transport.receiver is channel
    channel.on_message('{"robot": "echo"}')
    meta = await channel.metadata()
    assert transport.json_texts() == [{"type": "call", "call_id": meta.call_id}]
    channel.on_message(b"\x01\x00" * 160)
    assert await channel.audio() == AudioIn(b"\x01\x00" * 160)
    channel.on_message('{"type": "hangup"}')
    with pytest.raises(Hangup):
        await channel.audio()
    await channel.close()
    assert transport.json_texts()[-1] == {"type": "ended", "end_reason": "caller_hangup"}
    assert transport.closed_with == (1000, "")


async def test_bad_input_is_an_error_message_and_close_code_1008() -> None:
    channel, transport = make_channel()
    channel.on_message('{"robot": "echo"}')
    await channel.metadata()
    channel.on_message(b"\x01\x00" * 80)
    channel.on_message("garbage")
    channel.on_message(b"\x02\x00" * 80)  # after the failure: ignored
    assert await channel.audio() == AudioIn(b"\x01\x00" * 80)  # what came before is kept
    with pytest.raises(CallProtocolError, match="TEXT message is not JSON"):
        await channel.audio()
    await channel.close()
    error, ended = transport.json_texts()[-2:]
    assert error == {"type": "error", "message": "TEXT message is not JSON: 'garbage'"}
    assert ended == {"type": "ended", "end_reason": "protocol_error"}
    assert transport.closed_with is not None and transport.closed_with[0] == 1008
    assert "not JSON" in transport.closed_with[1]


async def test_metadata_failure_reaches_the_session() -> None:
    channel, _ = make_channel()
    channel.on_message(b"\x00\x00")
    with pytest.raises(CallProtocolError, match="before the metadata"):
        await channel.metadata()


async def test_paced_audio_and_clear_drops_what_is_queued() -> None:
    channel, transport = make_channel()
    channel.on_message('{"robot": "echo"}')
    await channel.metadata()
    transport.sent.clear()
    assert channel.play(b"\x05\x00" * 8000) == (0.0, 1000.0)  # 1 s
    now = asyncio.get_running_loop().time()
    due = channel.pace(now, now)
    audio = [m for m in transport.sent if isinstance(m, bytes)]
    assert [len(m) for m in audio] == [frame_bytes(60)] * 4  # the lead: 240 ms, whole chunks
    assert due is not None and channel.speaking()
    heard = await channel.clear()
    assert 0.0 <= heard <= 240.0
    assert transport.sent[-1] == '{"type":"clear"}'
    assert channel.queued_ms == pytest.approx(heard)  # the unsent rest is gone
    assert channel.pace(due, due) is None  # nothing left to send
    assert (await channel.mark("m")) == "unsent"
    result = await channel.transfer("100")
    assert not result.accepted and "browser" in result.reason


async def test_turns_and_the_end_reason_come_from_live_calls() -> None:
    live = LiveCalls()
    channel, transport = make_channel(live)
    channel.on_message('{"robot": "echo"}')
    meta = await channel.metadata()
    call = CallRecord(call_id=meta.call_id, robot="echo", mode="pipeline", source="web")
    other = CallRecord(call_id="someone-else", robot="echo", mode="pipeline")
    live.apply(CallOpened(call))
    turn = TurnRecord(call_id=meta.call_id, idx=1, role="robot", text="Да.", v2v_ms=512.0)
    live.apply(TurnWritten(call, turn.model_copy(update={"interrupted": True, "heard_text": "Д"})))
    live.apply(TurnWritten(other, turn.model_copy(update={"call_id": "someone-else"})))
    finished = call.model_copy(update={"status": "completed", "end_reason": "robot_goodbye"})
    live.apply(CallFinished(CallSnapshot(call=finished)))
    await channel.close()  # waits for the page to be told why the call ended
    turns = [m for m in transport.json_texts() if m["type"] == "turn"]
    assert [(t["role"], t["text"], t["heard_text"], t["interrupted"]) for t in turns] == [
        ("robot", "Да.", "Д", True)
    ]
    assert turns[0]["v2v_ms"] == 512.0
    assert transport.json_texts()[-1] == {"type": "ended", "end_reason": "robot_goodbye"}
    assert live.subscribers == 0
