"""The OpenAI Realtime protocol codec and timelines, and the realtime providers' settings: no I/O."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

from voiceplat.errors import RobotError
from voiceplat.providers.realtime import protocol, server_events
from voiceplat.providers.realtime.connection import RealtimeClosed, RealtimeConnection
from voiceplat.providers.realtime.openai_realtime import OpenAIRealtime, OpenAIRealtimeSettings
from voiceplat.providers.realtime.protocol import AudioFormat
from voiceplat.providers.realtime.server_events import AudioDelta, parse_server_event
from voiceplat.providers.realtime.timelines import InputTimeline, ItemAudio
from voiceplat.providers.realtime.yandex_realtime import YandexRealtime, YandexRealtimeSettings

ROOT = Path(__file__).resolve().parents[2]


def event(kind: str, **fields) -> str:
    return json.dumps({"type": kind, "event_id": "ev_1", **fields})


# -- formats ---------------------------------------------------------------------------------
def test_audio_formats_in_ga_and_beta_spellings() -> None:
    assert AudioFormat("audio/pcm", 24000).to_json() == {"type": "audio/pcm", "rate": 24000}
    assert AudioFormat("audio/pcmu", 24000).to_json() == {"type": "audio/pcmu"}
    assert AudioFormat("audio/pcmu").rate == 8000  # G.711 is 8 kHz whatever was asked
    assert AudioFormat.from_json({"type": "audio/pcm", "rate": 44100}) == AudioFormat(
        "audio/pcm", 44100
    )
    assert AudioFormat.from_json("pcm16") == AudioFormat("audio/pcm", 24000)
    assert AudioFormat.from_json("g711_ulaw") == AudioFormat("audio/pcmu", 8000)
    assert AudioFormat.from_json({"type": "audio/opus"}) is None
    assert AudioFormat("audio/pcm", 24000).wire_ms(48000) == 1000.0
    assert AudioFormat("audio/pcm", 44100).wire_ms(882) == 10.0
    assert AudioFormat("audio/pcmu").wire_ms(8000) == 1000.0


def test_pcmu_round_trip_keeps_the_call_rate() -> None:
    fmt = AudioFormat("audio/pcmu")
    pcm = bytes(range(0, 200, 2)) * 4
    wire = fmt.encode(pcm)
    assert len(wire) == len(pcm) // 2
    assert len(fmt.decode(wire)) == len(pcm)


# -- client events ---------------------------------------------------------------------------
def test_openai_session_update_has_the_ga_shape() -> None:
    provider = OpenAIRealtime(OpenAIRealtimeSettings(provider="openai_realtime"), {})
    update = provider.session("Ты администратор.", interrupt=True)
    assert update["type"] == "session.update"
    session = update["session"]
    assert session["type"] == "realtime" and session["instructions"] == "Ты администратор."
    assert session["output_modalities"] == ["audio"]
    audio_in, audio_out = session["audio"]["input"], session["audio"]["output"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_out["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_out["voice"] == "marin"
    assert audio_in["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    vad = audio_in["turn_detection"]
    assert vad == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    }


def test_pcmu_and_no_barge_in_settings_reach_the_session() -> None:
    settings = OpenAIRealtimeSettings(
        provider="openai_realtime", audio_format="audio/pcmu", transcription_language="ru"
    )
    session = OpenAIRealtime(settings, {}).session("p", interrupt=False)["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["input"]["turn_detection"]["interrupt_response"] is False
    assert session["audio"]["input"]["transcription"]["language"] == "ru"


def test_openai_only_takes_24k_pcm() -> None:
    with pytest.raises(ValueError, match="24000"):
        OpenAIRealtimeSettings(provider="openai_realtime", output_rate=44100)


def test_yandex_endpoint_auth_and_formats() -> None:
    env = {"YANDEX_API_KEY": "secret", "YANDEX_FOLDER_ID": "b1gfolder"}
    provider = YandexRealtime(YandexRealtimeSettings(provider="yandex_realtime"), env)
    assert provider.endpoint() == (
        "wss://rest-assistant.api.cloud.yandex.net/v1/realtime/openai"
        "?model=gpt://b1gfolder/speech-realtime-250923"
    )
    assert provider.auth_headers() == {"Authorization": "api-key secret"}
    assert provider.problems() == []
    session = provider.session("p", interrupt=True)["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 44100}
    assert session["audio"]["output"]["voice"] == "dasha"
    assert "transcription" not in session["audio"]["input"]  # Yandex transcribes by itself
    # Yandex's examples ask for both; the robot's words come as text (OpenAI refuses both).
    assert session["output_modalities"] == ["text", "audio"]


def test_providers_name_the_missing_keys() -> None:
    yandex = YandexRealtime(YandexRealtimeSettings(provider="yandex_realtime"), {})
    problems = yandex.problems()
    assert len(problems) == 2
    assert problems[0].startswith("YANDEX_API_KEY is not set")
    assert problems[1].startswith("YANDEX_FOLDER_ID is not set")
    assert "realtime.folder_id" in problems[1]
    uri = YandexRealtimeSettings(provider="yandex_realtime", model="gpt://b1g/speech-x")
    assert YandexRealtime(uri, {"YANDEX_API_KEY": "k"}).problems() == []
    openai = OpenAIRealtime(OpenAIRealtimeSettings(provider="openai_realtime"), {})
    assert openai.problems()[0].startswith("OPENAI_API_KEY is not set")
    keyed = OpenAIRealtime(
        OpenAIRealtimeSettings(provider="openai_realtime"), {"OPENAI_API_KEY": "k"}
    )
    assert keyed.auth_headers() == {"Authorization": "Bearer k"}
    # gpt-realtime is deprecated (shutdown 2027-01-20); gpt-realtime-2.1 is its successor.
    assert keyed.endpoint() == "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"


def test_check_of_the_shipped_robot_says_which_keys_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voiceplat.robot import load_robot

    monkeypatch.chdir(tmp_path)  # no root .env
    monkeypatch.delenv("YANDEX_API_KEY", raising=False)
    monkeypatch.delenv("YANDEX_FOLDER_ID", raising=False)
    try:
        robot = load_robot(ROOT / "robots" / "realtime_russian")
    except RobotError as exc:  # pragma: no cover - the robot itself must load
        pytest.fail(f"robots/realtime_russian does not load: {exc.problems}")
    assert robot.config.mode == "realtime"
    problems = [p for p in robot.problems() if ": realtime: " in p]
    assert [p.split(": realtime: ")[1].split(" ")[0] for p in problems] == [
        "YANDEX_API_KEY",
        "YANDEX_FOLDER_ID",
    ]


def test_client_events() -> None:
    append = protocol.input_audio_append(b"\x01\x02\x03\x04")
    assert append["type"] == "input_audio_buffer.append"
    assert base64.b64decode(append["audio"]) == b"\x01\x02\x03\x04"
    assert protocol.item_truncate("item_1", 1234) == {
        "type": "conversation.item.truncate",
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": 1234,
    }
    assert protocol.response_create() == {"type": "response.create"}
    created = protocol.response_create("say hi")
    assert created["response"] == {"instructions": "say hi"}
    assert protocol.response_cancel("resp_1") == {
        "type": "response.cancel",
        "response_id": "resp_1",
    }
    user = protocol.message_item("user", "Привет")
    assert user["item"]["content"] == [{"type": "input_text", "text": "Привет"}]
    robot = protocol.message_item("assistant", "Здравствуйте")
    assert robot["item"]["role"] == "assistant"
    assert robot["item"]["content"][0]["type"] == "output_text"
    assert "Добрый день!" in protocol.say_verbatim("prompt", "Добрый день!")


# -- server events ---------------------------------------------------------------------------
def test_session_events_give_the_formats() -> None:
    ga = parse_server_event(
        event(
            "session.updated",
            session={
                "id": "sess_1",
                "audio": {
                    "input": {"format": {"type": "audio/pcm", "rate": 24000}},
                    "output": {"format": {"type": "audio/pcm", "rate": 44100}},
                },
            },
        )
    )
    assert isinstance(ga, server_events.SessionInfo) and ga.updated and ga.session_id == "sess_1"
    assert ga.output_format == AudioFormat("audio/pcm", 44100)
    beta = parse_server_event(
        event("session.created", session={"id": "s", "output_audio_format": "g711_ulaw"})
    )
    assert isinstance(beta, server_events.SessionInfo) and not beta.updated
    assert beta.output_format == AudioFormat("audio/pcmu")
    assert beta.input_format is None


def test_audio_deltas_in_ga_and_beta_names() -> None:
    payload = base64.b64encode(b"\x00\x01" * 10).decode()
    for name in ("response.output_audio.delta", "response.audio.delta"):
        delta = parse_server_event(
            event(name, response_id="r1", item_id="i1", content_index=0, delta=payload)
        )
        assert delta == AudioDelta("r1", "i1", 0, b"\x00\x01" * 10)
    done = parse_server_event(event("response.output_audio.done", response_id="r1", item_id="i1"))
    assert done == server_events.AudioDone("r1", "i1")
    with pytest.raises(protocol.RealtimeProtocolError):
        parse_server_event(event("response.output_audio.delta", delta="not base64!"))


def test_transcripts_of_both_sides() -> None:
    robot = parse_server_event(
        event("response.output_audio_transcript.delta", response_id="r", item_id="i", delta="При")
    )
    assert robot == server_events.RobotTextDelta("r", "i", "При", "transcript")
    text = parse_server_event(event("response.output_text.delta", response_id="r", delta="x"))
    assert isinstance(text, server_events.RobotTextDelta) and text.source == "text"
    done = parse_server_event(
        event("response.output_audio_transcript.done", response_id="r", transcript="Привет.")
    )
    assert isinstance(done, server_events.RobotTextDone) and done.text == "Привет."
    user = parse_server_event(
        event(
            "conversation.item.input_audio_transcription.completed",
            item_id="u1",
            transcript=" Хочу записаться ",
        )
    )
    assert user == server_events.UserTranscript("u1", "Хочу записаться")
    failed = parse_server_event(
        event(
            "conversation.item.input_audio_transcription.failed",
            item_id="u2",
            error={"message": "bad audio"},
        )
    )
    assert failed == server_events.UserTranscriptFailed("u2", "bad audio")


def test_vad_response_and_error_events() -> None:
    started = parse_server_event(
        event("input_audio_buffer.speech_started", item_id="u1", audio_start_ms=1200)
    )
    assert started == server_events.InputSpeechStarted("u1", 1200)
    stopped = parse_server_event(
        event("input_audio_buffer.speech_stopped", item_id="u1", audio_end_ms=2400)
    )
    assert stopped == server_events.InputSpeechStopped("u1", 2400)
    created = parse_server_event(event("response.created", response={"id": "resp_1"}))
    assert created == server_events.ResponseCreated("resp_1")
    failed = parse_server_event(
        event(
            "response.done",
            response={
                "id": "resp_1",
                "status": "failed",
                "status_details": {"type": "failed", "error": {"message": "overloaded"}},
            },
        )
    )
    assert failed == server_events.ResponseDone("resp_1", "failed", "overloaded")
    cancelled = parse_server_event(
        event("response.done", response={"id": "r", "status": "cancelled"})
    )
    assert cancelled == server_events.ResponseDone("r", "cancelled", None)
    expired = parse_server_event(
        event(
            "error",
            error={
                "type": "invalid_request_error",
                "code": "session_expired",
                "message": "Your session hit the maximum duration of 60 minutes.",
                "event_id": None,
            },
        )
    )
    assert isinstance(expired, server_events.ServerError) and expired.expired
    other = parse_server_event(event("error", error={"type": "server_error", "message": "oops"}))
    assert isinstance(other, server_events.ServerError) and not other.expired
    other_event = parse_server_event(event("rate_limits.updated"))
    assert isinstance(other_event, server_events.OtherEvent)
    assert other_event.type == "rate_limits.updated"
    for garbage in ("{not json", "[]", '{"no": "type"}'):
        with pytest.raises(protocol.RealtimeProtocolError):
            parse_server_event(garbage)


# -- timelines -------------------------------------------------------------------------------
def test_truncate_is_what_the_caller_heard_of_that_item() -> None:
    # The item's first audio went into the call stream at 1000 ms; the server sent 2.5 s of it.
    item = ItemAudio("item_1", start_ms=1000.0, received_ms=2500.0)
    assert item.audio_end_ms(1800.0) == 800
    assert item.audio_end_ms(1800.9) == 800  # rounded down: the next ms was not heard
    assert item.audio_end_ms(900.0) == 0  # earlier audio (another item) was playing
    assert item.audio_end_ms(9000.0) == 2500  # never beyond the audio the server sent
    assert ItemAudio("item_2").audio_end_ms(5000.0) == 0  # nothing of it was queued yet


def test_input_timeline_maps_server_times_to_the_clock() -> None:
    timeline = InputTimeline()
    assert timeline.clock_at(500, fallback=9.0) == 9.0  # nothing sent yet
    for k in range(1, 51):  # 50 frames of 20 ms, sent in real time from t=100
        timeline.on_sent(20.0, 100.0 + k * 0.02)
    assert timeline.clock_at(1000, fallback=200.0) == pytest.approx(101.0)
    assert timeline.clock_at(400, fallback=200.0) == pytest.approx(100.4)
    assert timeline.clock_at(None, fallback=200.0) == 200.0
    assert timeline.clock_at(1000, fallback=100.5) == 100.5  # never after the event arrived
    timeline.reset()
    assert timeline.sent_ms == 0.0


# -- the connection --------------------------------------------------------------------------
class FakeSocket:
    def __init__(self, incoming: list[str | Exception]) -> None:
        self.incoming = incoming
        self.sent: list[dict] = []
        self.closed = False

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))

    async def recv(self) -> str:
        item = self.incoming.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def close(self) -> None:
        self.closed = True


async def test_connection_sends_in_order_and_remembers_what_caused_an_error() -> None:
    ws = FakeSocket([])
    link = RealtimeConnection(ws)
    link.send(protocol.session_update({"type": "realtime"}))
    link.send(protocol.input_audio_append(b"\x00\x00"))
    link.send(protocol.item_truncate("i", 10))
    writer = asyncio.create_task(link.run_writer())
    await link.aclose()
    await writer
    assert [e["type"] for e in ws.sent] == [
        "session.update",
        "input_audio_buffer.append",
        "conversation.item.truncate",
    ]
    ids = [e["event_id"] for e in ws.sent]
    assert len(set(ids)) == 3
    assert link.caused_by(ids[2]) == "conversation.item.truncate"
    assert link.caused_by(None) is None
    assert ws.closed


async def test_a_stalled_connection_drops_caller_audio_not_control_events() -> None:
    link = RealtimeConnection(FakeSocket([]))
    for _ in range(150):
        link.send(protocol.input_audio_append(b"\x00\x00"))
    link.send(protocol.response_cancel())
    assert link.dropped_audio == 50
    assert link._out.qsize() == 101


async def test_close_reason_tells_an_expired_session() -> None:
    reason = "Your session hit the maximum duration of 60 minutes."
    ws = FakeSocket(
        [event("session.created", session={}), ConnectionClosedOK(Close(1001, reason), None)]
    )
    link = RealtimeConnection(ws)
    assert isinstance(await link.recv(), server_events.SessionInfo)
    with pytest.raises(RealtimeClosed) as closed:
        await link.recv()
    assert closed.value.expired and "1001" in closed.value.detail
    assert link.closed
