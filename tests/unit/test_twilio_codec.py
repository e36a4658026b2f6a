"""Twilio Media Streams, sans-I/O: the documentation's messages (tests/fixtures/twilio) decoded,
bad input refused with a message that says why, the robot's messages in Twilio's shapes, and the
X-Twilio-Signature / token checks of the handshake."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn, MarkReply
from voiceplat.telephony.ingress.twilio import codec
from voiceplat.telephony.ingress.twilio.auth import (
    SIGNATURE_HEADER,
    check_request,
    signature,
    start_token_valid,
)
from voiceplat.telephony.ingress.twilio.settings import TwilioSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "twilio"
SID = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def started() -> codec.TwilioDecoder:
    decoder = codec.TwilioDecoder()
    assert decoder.text(fixture("from_twilio/connected.json")) == []
    decoder.text(fixture("from_twilio/start.json"))
    return decoder


def test_start_of_the_documentation_gives_the_call_metadata() -> None:
    decoder = codec.TwilioDecoder()
    decoder.text(fixture("from_twilio/connected.json"))
    (meta,) = decoder.text(fixture("from_twilio/start.json"))
    assert meta == CallMetadata(
        call_id="CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        caller=None,
        callee=None,
        source="twilio",
        extra={
            "FirstName": "Jane",
            "LastName": "Doe",
            "RemoteParty": "Bob",
            "stream_sid": SID,
            "account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        },
    )
    assert decoder.text(fixture("from_twilio/start.json")) == []  # a repeat changes nothing


def test_caller_and_callee_come_from_custom_parameters_and_the_token_stays_out() -> None:
    start = json.loads(fixture("from_twilio/start.json"))
    start["start"]["customParameters"] = {"from": "+15550001", "to": "+15550002", "token": "s"}
    decoder = codec.TwilioDecoder()
    (meta,) = decoder.text(json.dumps(start))
    assert isinstance(meta, CallMetadata)
    assert (meta.caller, meta.callee) == ("+15550001", "+15550002")
    assert "token" not in meta.extra and decoder.custom_parameters["token"] == "s"


def test_media_of_the_documentation_is_decoded_from_mu_law() -> None:
    message = fixture("from_twilio/media.json")
    payload = base64.b64decode(json.loads(message)["media"]["payload"])
    (audio,) = started().text(message)
    assert audio == AudioIn(ulaw_decode(payload))
    assert len(audio.data) == 2 * len(payload)  # one 8 kHz sample per mu-law byte


def test_dtmf_mark_and_stop_of_the_documentation() -> None:
    decoder = started()
    assert decoder.text(fixture("from_twilio/dtmf.json")) == [DtmfIn("1", "other")]
    assert decoder.text(fixture("from_twilio/mark.json")) == [MarkReply("my label", "playout")]
    (stop,) = decoder.text(fixture("from_twilio/stop.json"))
    assert isinstance(stop, Hangup) and stop.end_reason == "caller_hangup"


def test_outbound_track_and_unknown_events_are_ignored() -> None:
    decoder = started()
    media = json.loads(fixture("from_twilio/media.json"))
    media["media"]["track"] = "outbound"
    assert decoder.text(json.dumps(media)) == []
    assert decoder.text('{"event": "transcription", "streamSid": "x"}') == []
    assert decoder.unknown_events == 1


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("garbage", "message is not JSON: 'garbage'"),
        ("[1, 2]", "a message must be a JSON object, got list"),
        ('{"streamSid": "MZ1"}', "message without an event name"),
        ('{"event": 5}', "message without an event name"),
        ('{"event": "start"}', "start.start must be a JSON object, got NoneType"),
        ('{"event": "start", "start": {"streamSid": "MZ1"}}', "start.callSid must be"),
        (
            '{"event": "start", "start": {"callSid": "CA1", "streamSid": "MZ1",'
            ' "mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000}}}',
            "unsupported media format 'audio/l16' at 16000 Hz",
        ),
    ],
)
def test_bad_messages_say_what_is_wrong(message: str, error: str) -> None:
    with pytest.raises(CallProtocolError, match=error.replace("[", r"\[").replace("(", r"\(")):
        codec.TwilioDecoder().text(message)


@pytest.mark.parametrize("name", ["media", "dtmf", "mark"])
def test_media_dtmf_or_mark_before_start_is_a_protocol_error(name: str) -> None:
    with pytest.raises(CallProtocolError, match=f"{name} arrived before the start message"):
        codec.TwilioDecoder().text(fixture(f"from_twilio/{name}.json"))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"event": "media", "media": {"payload": "%%%"}}, "media.payload is not valid base64"),
        ({"event": "media", "media": {"payload": 5}}, "media.payload must be a base64 string"),
        ({"event": "media"}, "media.media must be a JSON object"),
        ({"event": "dtmf", "dtmf": {"digit": "x"}}, "dtmf digit must be one of"),
        ({"event": "dtmf", "dtmf": {"digit": "12"}}, "dtmf digit must be one of"),
        ({"event": "mark", "mark": {"name": ""}}, "mark.name must be a non-empty string"),
        ({"event": "mark", "mark": {"name": "x" * 300}}, "at most 256 chars"),
    ],
)
def test_bad_messages_after_start(body: dict[str, Any], error: str) -> None:
    with pytest.raises(CallProtocolError, match=error):
        started().text(json.dumps(body))


def test_a_binary_frame_is_a_protocol_error() -> None:
    with pytest.raises(CallProtocolError, match="JSON TEXT messages only"):
        started().binary(b"\x00\x01")


def test_robot_messages_have_the_documented_shapes() -> None:
    pcm = (np.sin(np.arange(160) / 3) * 8000).astype("<i2").tobytes()
    media = json.loads(codec.media(SID, pcm))
    documented = json.loads(fixture("to_twilio/media.json"))
    assert media.keys() == documented.keys() and media["media"].keys() == {"payload"}
    assert base64.b64decode(media["media"]["payload"]) == ulaw_encode(pcm)  # 160 bytes
    assert media["streamSid"] == documented["streamSid"]
    mark = json.loads(codec.mark(SID, "my label"))
    assert mark == json.loads(fixture("to_twilio/mark.json"))
    assert json.loads(codec.clear(SID)) == json.loads(fixture("to_twilio/clear.json"))


def test_signature_matches_twilios_documented_example() -> None:
    vector = json.loads(fixture("signature.json"))
    assert signature(vector["auth_token"], vector["url"], vector["params"]) == vector["signature"]
    assert signature("12346", vector["url"], vector["params"]) != vector["signature"]


def request(path: str = "/twilio", **headers: str) -> Request:
    return Request(path, Headers({"Host": "robot.example.com", **headers}))


def test_no_auth_configured_lets_every_stream_in() -> None:
    verdict = check_request(TwilioSettings(), request())
    assert verdict.refused is None and verdict.token_in_start is None


def test_signature_of_the_stream_url_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_AUTH", "secret-auth-token")
    settings = TwilioSettings(auth_token_env="TW_AUTH")
    good = signature("secret-auth-token", "wss://robot.example.com/twilio")
    assert check_request(settings, request(**{SIGNATURE_HEADER: good})).refused is None
    wrong = check_request(settings, request(**{SIGNATURE_HEADER: good[:-2] + "A="}))
    assert wrong.refused == (
        "X-Twilio-Signature missing or not valid for wss://robot.example.com/twilio"
    )
    assert check_request(settings, request()).refused is not None
    behind_proxy = settings.model_copy(update={"public_url": "wss://public.example.org/tw"})
    signed = signature("secret-auth-token", "wss://public.example.org/tw")
    verdict = check_request(behind_proxy, request(**{SIGNATURE_HEADER: signed}))
    assert verdict.refused is None


def test_an_unset_auth_token_variable_refuses_and_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TW_AUTH", raising=False)
    verdict = check_request(TwilioSettings(auth_token_env="TW_AUTH"), request())
    assert verdict.refused == "the Auth Token variable TW_AUTH is not set"


def test_shared_token_as_bearer_basic_or_in_the_start_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TW_TOKEN", "tok")
    settings = TwilioSettings(token_env="TW_TOKEN")
    assert check_request(settings, request(Authorization="Bearer tok")).refused is None
    basic = "Basic " + base64.b64encode(b"twilio:tok").decode()
    assert check_request(settings, request(Authorization=basic)).refused is None
    wrong = check_request(settings, request(Authorization="Bearer nope"))
    assert wrong.refused == "the Authorization token is wrong"
    deferred = check_request(settings, request())
    assert deferred.refused is None and deferred.token_in_start == "tok"
    assert start_token_valid("tok", {"token": "tok"})
    assert not start_token_valid("tok", {"token": "tok2"}) and not start_token_valid("tok", {})
