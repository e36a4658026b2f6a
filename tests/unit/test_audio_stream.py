"""mod_audio_stream: the media codec, and the channel with its event socket (a fake FreeSWITCH)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from tests.doubles.fake_esl import FakeEsl
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn
from voiceplat.telephony.ingress.audio_stream import codec
from voiceplat.telephony.ingress.audio_stream.channel import AudioStreamChannel
from voiceplat.telephony.ingress.audio_stream.esl import EslEvent
from voiceplat.telephony.ingress.audio_stream.settings import AudioStreamSettings

UUID = "7f4de4bc-17d7-4f8c-9a3e-0c2b4b7e3a11"
META = json.dumps({"uuid": UUID, "from": "+79990001122", "to": "100"})
PLAY = "mod_audio_stream::play"


def play_event(path: str, uuid: str = UUID) -> dict[str, str]:
    return {"Event-Name": "CUSTOM", "Event-Subclass": PLAY, "Unique-ID": uuid, "_file": path}


# -- codec ---------------------------------------------------------------------------------
def test_metadata_names_the_channel_and_the_parties() -> None:
    decoder = codec.AudioStreamDecoder()
    (meta,) = decoder.text(META)
    assert isinstance(meta, CallMetadata)
    assert (meta.call_id, meta.caller, meta.callee, meta.source) == (
        UUID,
        "+79990001122",
        "100",
        "freeswitch",
    )
    assert decoder.channel_uuid == UUID
    assert decoder.text('{"type": "anything later"}') == []  # send_text from the dialplan


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "metadata is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"from": "1"}', 'metadata needs "uuid"'),
        ('{"uuid": "a b"}', "bad channel uuid"),
        (json.dumps({"uuid": "x" * 65}), 'metadata needs "uuid"'),
        ('{"uuid": "u", "sampleRate": 44100}', "sampleRate must be one of"),
    ],
)
def test_bad_metadata_is_refused(text: str, error: str) -> None:
    with pytest.raises(CallProtocolError, match=error):
        codec.AudioStreamDecoder().text(text)


def test_audio_before_metadata_is_refused() -> None:
    with pytest.raises(CallProtocolError, match="audio arrived before the metadata"):
        codec.AudioStreamDecoder().binary(b"\x00\x00")


def test_odd_bytes_are_carried_into_the_next_frame() -> None:
    decoder = codec.AudioStreamDecoder()
    decoder.text(META)
    assert decoder.binary(b"\x01\x02\x03") == [AudioIn(b"\x01\x02")]
    assert decoder.binary(b"\x04") == [AudioIn(b"\x03\x04")]
    assert decoder.binary(b"\x05") == []


def test_16k_audio_arrives_as_8k() -> None:
    decoder = codec.AudioStreamDecoder()
    decoder.text(json.dumps({"uuid": UUID, "sampleRate": 16000}))
    tone = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype("<i2")
    out = b"".join(e.data for e in decoder.binary(tone.tobytes()) if isinstance(e, AudioIn))
    assert 7000 <= len(out) // 2 <= 8000  # one second at 8 kHz (less the filter's delay)
    assert np.abs(np.frombuffer(out, "<i2")[-4000:]).max() > 6000  # the tone, not silence


def test_stream_audio_is_the_modules_documented_shape() -> None:
    message = json.loads(codec.stream_audio(b"\x01\x00\x02\x00"))
    assert message["type"] == "streamAudio"
    assert message["data"]["audioDataType"] == "raw"
    assert message["data"]["sampleRate"] == 8000
    assert base64.b64decode(message["data"]["audioData"]) == b"\x01\x00\x02\x00"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ('{"audioDataType":"raw","sampleRate":8000,"file":"/tmp/u_0.tmp.r8"}', "/tmp/u_0.tmp.r8"),
        ('{"file": "/tmp/with space.r8"}', None),
        ("not json", None),
        ('{"nofile": 1}', None),
    ],
)
def test_play_event_gives_its_file(body: str, path: str | None) -> None:
    event = EslEvent({"Event-Name": "CUSTOM", "Event-Subclass": PLAY}, body)
    assert codec.play_file(event) == path


def test_dtmf_event_gives_its_key() -> None:
    event = EslEvent({"Event-Name": "DTMF", "DTMF-Digit": "5", "DTMF-Source": "RTP"})
    assert codec.dtmf_key(event) == DtmfIn("5", "rfc4733")
    assert codec.dtmf_key(EslEvent({"Event-Name": "DTMF", "DTMF-Digit": "x"})) is None


# -- channel -------------------------------------------------------------------------------
class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.closed_with: tuple[int, str] | None = None

    def attach(self, receiver: object) -> None:
        pass

    def send_now(self, message: str | bytes) -> bool:
        self.sent.append(message)
        return self.closed_with is None

    def write_ready(self) -> bool:
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = (code, reason)


class NoPacer:
    def wake(self, client: object) -> None:
        pass

    def remove(self, client: object) -> None:
        pass


@pytest.fixture
async def esl() -> AsyncIterator[FakeEsl]:
    server = FakeEsl("pw")
    await server.start()
    yield server
    await server.stop()


def make_channel(
    esl: FakeEsl, password: str = "pw", monkeypatch: pytest.MonkeyPatch | None = None
) -> tuple[AudioStreamChannel, FakeTransport]:
    settings = AudioStreamSettings(esl_port=esl.port, chunk_ms=100)
    transport = FakeTransport()
    pacer: Any = NoPacer()
    channel = AudioStreamChannel(transport, settings=settings, pacer=pacer, esl_password=password)
    return channel, transport


def fire_play(esl: FakeEsl, path: str) -> None:
    headers = {"Event-Name": "CUSTOM", "Event-Subclass": PLAY, "Unique-ID": UUID}
    assert esl.fire(headers, json.dumps({"audioDataType": "raw", "file": path})) == 1


async def started(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> tuple[AudioStreamChannel, FakeTransport]:
    channel, transport = make_channel(esl, monkeypatch=monkeypatch)
    channel.on_message(META)
    meta = await asyncio.wait_for(channel.metadata(), 60)
    assert meta.call_id == UUID
    assert esl.commands[:2] == [
        f"filter Unique-ID {UUID}",
        "event plain DTMF CHANNEL_HANGUP CUSTOM mod_audio_stream::play",
    ]
    return channel, transport


async def test_robot_audio_goes_out_as_stream_audio_and_plays_by_broadcast(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, transport = await started(esl, monkeypatch)
    channel.play(b"\x01\x00" * 800 * 3)  # 300 ms: three 100 ms chunks
    now = channel._clock()
    channel.pace(now, now)
    sent = [json.loads(m) for m in transport.sent if isinstance(m, str)]
    assert [m["type"] for m in sent] == ["streamAudio", "streamAudio"]  # lead: 2 chunks
    assert len(base64.b64decode(sent[0]["data"]["audioData"])) == 1600
    fire_play(esl, f"/tmp/{UUID}_0.tmp.r8")
    line = await asyncio.wait_for(esl.api_line("uuid_broadcast"), 60)
    assert line == f"uuid_broadcast {UUID} /tmp/{UUID}_0.tmp.r8 aleg"
    await channel.close()


async def test_barge_in_breaks_playback_and_skips_chunks_sent_before_it(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, _ = await started(esl, monkeypatch)
    channel.play(b"\x01\x00" * 800 * 5)
    now = channel._clock()
    channel.pace(now, now)  # chunks 0 and 1 sent
    fire_play(esl, "/tmp/c_0.tmp.r8")
    await asyncio.wait_for(esl.api_line("uuid_broadcast"), 60)  # chunk 0 is playing
    await channel.clear()
    assert not channel.speaking()
    fire_play(esl, "/tmp/c_1.tmp.r8")  # sent before the barge-in, announced after it
    channel.play(b"\x01\x00" * 800)
    channel.pace(channel._clock(), channel._clock() + 1)
    fire_play(esl, "/tmp/c_2.tmp.r8")  # the next turn's audio plays
    second = await asyncio.wait_for(esl.api_line("uuid_broadcast", 2), 60)
    assert second.endswith("/tmp/c_2.tmp.r8 aleg")
    calls = [line.split(" ")[0] + " " + line.split(" ")[-2] for line in esl.api_lines()]
    assert calls == [
        "uuid_broadcast /tmp/c_0.tmp.r8",
        f"uuid_break {UUID}",
        "uuid_broadcast /tmp/c_2.tmp.r8",
    ]
    await channel.close()


async def test_dtmf_and_hangup_come_from_the_event_socket(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, _ = await started(esl, monkeypatch)
    keys: list[DtmfIn] = []
    got = asyncio.Event()

    def on_key(key: DtmfIn) -> None:
        keys.append(key)
        got.set()

    channel.on_dtmf(on_key)
    esl.fire({"Event-Name": "DTMF", "Unique-ID": UUID, "DTMF-Digit": "#", "DTMF-Source": "RTP"})
    await asyncio.wait_for(got.wait(), 60)
    assert keys == [DtmfIn("#", "rfc4733")]
    esl.fire({"Event-Name": "CHANNEL_HANGUP", "Unique-ID": UUID})
    with pytest.raises(Hangup):
        await asyncio.wait_for(channel.audio(), 60)
    await channel.close()


async def test_transfer_and_hangup_go_through_the_event_socket(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, transport = await started(esl, monkeypatch)
    esl.replies["uuid_transfer"] = "-ERR No such channel!\n"
    refused = await channel.transfer("operator")
    assert (refused.accepted, refused.reason) == (False, "-ERR No such channel!")
    esl.replies["uuid_transfer"] = "+OK\n"
    assert (await channel.transfer("operator XML default")).accepted is False  # spaces
    assert (await channel.transfer("operator")).accepted
    esl.replies["uuid_kill"] = "+OK\n"
    await channel.disconnect()
    assert esl.api_lines() == [
        f"uuid_transfer {UUID} operator",
        f"uuid_transfer {UUID} operator",
        f"uuid_kill {UUID}",
    ]
    assert transport.closed_with == (1000, "")


async def test_a_wrong_event_socket_password_ends_the_call_with_its_reason(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, transport = make_channel(esl, password="wrong", monkeypatch=monkeypatch)
    channel.on_message(META)
    with pytest.raises(CallProtocolError, match="refused the password: -ERR invalid"):
        await asyncio.wait_for(channel.metadata(), 60)
    await channel.close()
    assert transport.closed_with is not None and transport.closed_with[0] == 1008
    assert "event socket" in transport.closed_with[1]


async def test_refused_credentials_close_with_the_reason(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, transport = make_channel(esl, monkeypatch=monkeypatch)
    channel.refuse("missing or wrong Authorization: Bearer token")
    with pytest.raises(CallProtocolError, match="Bearer"):
        await asyncio.wait_for(channel.metadata(), 60)
    await channel.close()
    assert transport.closed_with == (1008, "missing or wrong Authorization: Bearer token")
    assert esl.connections == 0


@pytest.mark.parametrize(
    ("header", "refusal"),
    [
        ("Bearer t0ken", None),
        ("Bearer nope", "unauthorized: wrong token"),
        ("Basic dTpw", "unauthorized: 'Authorization: Bearer <token>' required"),
        (None, "unauthorized: 'Authorization: Bearer <token>' required"),
    ],
)
def test_the_websocket_token(header: str | None, refusal: str | None) -> None:
    settings = AudioStreamSettings(token_env="AS_TOKEN")
    got = settings.refusal(header, {"AS_TOKEN": "t0ken"})
    assert got == refusal if refusal is None else got is not None and got.startswith(refusal)
    assert AudioStreamSettings().refusal(None, {}) is None
    assert "AS_TOKEN is not set" in (settings.refusal("Bearer x", {}) or "")


async def test_audio_before_metadata_ends_the_call_before_any_event_socket(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, transport = make_channel(esl, monkeypatch=monkeypatch)
    channel.on_message(b"\x00\x00" * 160)
    channel.on_message(META)  # too late: the stream is already broken
    with pytest.raises(CallProtocolError, match="audio arrived before the metadata"):
        await asyncio.wait_for(channel.metadata(), 60)
    await channel.close()
    assert transport.closed_with is not None and transport.closed_with[0] == 1008
    assert esl.connections == 0


async def test_caller_audio_and_later_text_after_the_start(
    esl: FakeEsl, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, _ = await started(esl, monkeypatch)
    channel.on_message(b"\x01\x00" * 160)
    channel.on_message('{"event": "from send_text"}')  # the dialplan's: not ours, ignored
    assert await asyncio.wait_for(channel.audio(), 60) == AudioIn(b"\x01\x00" * 160)
    assert not esl.api_lines()
    await channel.close()
