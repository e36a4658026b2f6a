"""Realtime mode, whole calls: the simulated caller ↔ the robot ↔ a fake realtime server.

The fake server on 127.0.0.1 speaks the OpenAI Realtime events (as Yandex does): session.created/
updated, a small energy VAD over the caller audio it receives (speech_started/stopped), scripted
transcripts, and replies as tones streamed in audio deltas. It records every client event, so the
tests check what the robot sends (formats, cancel, truncate arithmetic, replayed conversation) as
well as what the caller hears and what the call record says.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.conftest import read_call_records
from voiceplat.audio.pcm import Pcm
from voiceplat.simulator import BargeIn, Pause, Say, run_call

GREETING = "Здравствуйте! Чем могу помочь?"
PROMPT = "Ты вежливый администратор клиники."
EXPIRED = "Your session hit the maximum duration of 60 minutes."


def tone(hz: float, ms: float, rate: int = 8000, amplitude: float = 0.3) -> Pcm:
    t = np.arange(round(rate * ms / 1000)) / rate
    return Pcm.from_numpy((amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)


def frequency(audio: bytes, rate: int) -> float:
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum[1:]) + 1) * rate / len(samples)


def tone_ms(audio: bytes, rate: int) -> float:
    """How long the tone in `audio` lasts: first to last loud sample (silence around it, such as
    the channel's padding at a turn's end, does not count)."""
    samples = np.abs(np.frombuffer(audio, dtype="<i2").astype(np.int32))
    loud = np.flatnonzero(samples > 1000)
    return 0.0 if not len(loud) else (loud[-1] - loud[0] + 1) * 1000 / rate


# -- the fake realtime server ----------------------------------------------------------------
@dataclass
class Script:
    output_rate: int = 24000
    """The output rate session.updated reports (44100: as Yandex's example)."""
    user_texts: list[str] = field(default_factory=lambda: ["Хочу записаться к врачу"])
    reply_ms: list[float] = field(default_factory=lambda: [1500.0])
    reply_hz: float = 1000.0
    greeting_hz: float = 600.0
    greeting_ms: float = 800.0
    realtime_pace: bool = False
    """Stream reply audio at real time (Yandex) instead of as fast as possible (OpenAI)."""
    error_after_reply: int | None = None
    drop_after_reply: int | None = None
    drop_mid_reply: int | None = None
    """Response number whose stream is cut after 0.5 s of its audio."""
    expire_after_reply: int | None = None
    accept_connections: int | None = None
    """Connections beyond this many are refused with HTTP 401."""
    user_item_ids: bool = True
    """False: speech_started/stopped and the caller's transcripts carry no item_id."""
    yandex_text: bool = False
    """Robot text as Yandex's examples read it: response.output_text.* events, sent only when the
    session.update asked for "text" in output_modalities (and no audio transcript)."""


class FakeConnection:
    """One realtime session: records what the robot sends, answers like the service."""

    FRAME = 480  # 20 ms at 24 kHz

    def __init__(self, server: FakeRealtime, ws: ServerConnection) -> None:
        self.server, self.ws, self.script = server, ws, server.script
        self.received: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.headers = ws.request.headers if ws.request else {}
        self.path = ws.request.path if ws.request else ""
        self.output_rate = 24000
        self.response: asyncio.Task[None] | None = None
        self.vad_at = 0
        self.speech_frames = 0
        self.silent_frames = 0
        self.in_speech = False
        self.speech_start_ms = 0
        self.user_item = 0
        self.modalities: list[str] = ["audio"]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e["type"] == kind]

    async def send(self, kind: str, **fields: Any) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send(json.dumps({"type": kind, "event_id": "srv", **fields}))

    async def run(self) -> None:
        await self.send(
            "session.created",
            session={
                "id": f"sess_{len(self.server.connections)}",
                "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}}},
            },
        )
        with contextlib.suppress(Exception):
            async for message in self.ws:
                event = json.loads(message)
                self.received.append(event)
                await self.handle(event)
        if self.response is not None:
            self.response.cancel()

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "session.update":
            session = event["session"]
            self.output_rate = self.script.output_rate
            self.modalities = session.get("output_modalities", self.modalities)
            audio = session["audio"]
            audio["output"]["format"]["rate"] = self.output_rate
            await self.send("session.updated", session={"id": "sess", **session})
        elif kind == "input_audio_buffer.append":
            self.audio += base64.b64decode(event["audio"])
            await self.vad()
        elif kind == "response.create":
            instructions = (event.get("response") or {}).get("instructions")
            if instructions:  # a phrase to say verbatim: the robot puts it on the last line
                text = instructions.rsplit("\n", 1)[-1]
                await self.start_response(text, self.script.greeting_hz, self.script.greeting_ms)
            else:
                await self.start_reply()
        elif kind == "response.cancel":
            if self.response is not None and not self.response.done():
                self.response.cancel()
            else:
                await self.send(
                    "error",
                    error={
                        "type": "invalid_request_error",
                        "code": "response_cancel_not_active",
                        "message": "no active response",
                    },
                )
        elif kind == "conversation.item.truncate":
            await self.send(
                "conversation.item.truncated",
                item_id=event["item_id"],
                content_index=event["content_index"],
                audio_end_ms=event["audio_end_ms"],
            )

    async def vad(self) -> None:
        """Energy VAD over 20 ms frames: 2 loud frames start speech, 300 ms of quiet end it."""
        while len(self.audio) >= (self.vad_at + 1) * self.FRAME * 2:
            frame = self.audio[self.vad_at * self.FRAME * 2 : (self.vad_at + 1) * self.FRAME * 2]
            self.vad_at += 1
            samples = np.frombuffer(bytes(frame), dtype="<i2").astype(np.float64)
            loud = float(np.sqrt(np.mean(samples * samples))) > 500
            if not self.in_speech:
                self.speech_frames = self.speech_frames + 1 if loud else 0
                if self.speech_frames == 2:
                    self.in_speech, self.silent_frames = True, 0
                    self.user_item += 1
                    self.speech_start_ms = (self.vad_at - 2) * 20
                    await self.send(
                        "input_audio_buffer.speech_started",
                        **self.user_item_id(),
                        audio_start_ms=self.speech_start_ms,
                    )
            else:
                self.silent_frames = 0 if loud else self.silent_frames + 1
                if self.silent_frames == 15:
                    self.in_speech, self.speech_frames = False, 0
                    await self.end_of_speech((self.vad_at - 15) * 20)

    def user_item_id(self) -> dict[str, str]:
        return {"item_id": f"user_{self.user_item}"} if self.script.user_item_ids else {}

    async def end_of_speech(self, end_ms: int) -> None:
        item = self.user_item_id()
        await self.send("input_audio_buffer.speech_stopped", **item, audio_end_ms=end_ms)
        await self.send("input_audio_buffer.committed", **item)
        texts = self.script.user_texts
        text = texts[min(self.server.user_turns, len(texts) - 1)]
        self.server.user_turns += 1
        await self.send(
            "conversation.item.input_audio_transcription.completed",
            **item,
            content_index=0,
            transcript=text,
        )
        if self.response is not None and not self.response.done():
            self.response.cancel()  # the server's own interrupt_response
            await asyncio.sleep(0)
        await self.start_reply()

    async def start_reply(self) -> None:
        n = self.server.replies_started
        self.server.replies_started += 1
        ms = self.script.reply_ms[min(n, len(self.script.reply_ms) - 1)]
        await self.start_response(
            f"Ответ робота номер {n + 1} про запись.", self.script.reply_hz, ms
        )

    async def start_response(self, text: str, hz: float, ms: float) -> None:
        self.server.responses += 1
        number = self.server.responses
        self.response = asyncio.create_task(self.respond(number, text, hz, ms))

    async def respond(self, number: int, text: str, hz: float, ms: float) -> None:
        response_id, item_id = f"resp_{number}", f"item_{number}"
        ids = {"response_id": response_id, "item_id": item_id}
        try:
            await self.send(
                "response.created", response={"id": response_id, "status": "in_progress"}
            )
            await self.send(
                "response.output_item.added",
                response_id=response_id,
                item={"id": item_id, "type": "message", "role": "assistant"},
            )
            audio = tone(hz, ms, self.output_rate).data
            chunk = self.output_rate // 10 * 2  # 100 ms
            words = text.split()
            chunks = max(1, -(-len(audio) // chunk))
            loop = asyncio.get_running_loop()
            started = loop.time()
            for k in range(chunks):
                piece = audio[k * chunk : (k + 1) * chunk]
                delta = base64.b64encode(piece).decode()
                await self.send("response.output_audio.delta", **ids, content_index=0, delta=delta)
                said = words[len(words) * k // chunks : len(words) * (k + 1) // chunks]
                if said:
                    await self.send_text("delta", ids, delta=" ".join(said) + " ")
                if self.script.realtime_pace:
                    # On a schedule, as the service streams: real time on average. Sleeping 0.1 s
                    # after each chunk fell behind by the time each send took, more so on a busy
                    # machine.
                    await asyncio.sleep(started + (k + 1) * 0.1 - loop.time())
                else:
                    await asyncio.sleep(0)
                if self.script.drop_mid_reply == number and k == 4:
                    self.ws.transport.abort()
                    return
            await self.send("response.output_audio.done", **ids, content_index=0)
            await self.send_text("done", ids, text=text)
            await self.send("response.done", response={"id": response_id, "status": "completed"})
        except asyncio.CancelledError:
            await self.send("response.done", response={"id": response_id, "status": "cancelled"})
            return
        await self.after_reply(number)

    async def send_text(self, kind: str, ids: dict[str, str], **fields: str) -> None:
        """The robot's words: as an audio transcript (OpenAI), or as Yandex's examples read them."""
        if not self.script.yandex_text:
            if "text" in fields:
                fields = {"transcript": fields["text"]}
            await self.send(f"response.output_audio_transcript.{kind}", **ids, **fields)
        elif "text" in self.modalities:
            await self.send(f"response.output_text.{kind}", **ids, **fields)

    async def after_reply(self, number: int) -> None:
        script = self.script
        if script.error_after_reply == number:
            await self.send(
                "error",
                error={"type": "server_error", "code": "synthetic", "message": "Synthetic failure"},
            )
        if script.drop_after_reply == number:
            self.ws.transport.abort()
        if script.expire_after_reply == number:
            await self.send(
                "error",
                error={
                    "type": "invalid_request_error",
                    "code": "session_expired",
                    "message": EXPIRED,
                },
            )
            await self.ws.close(1001, EXPIRED)


class FakeRealtime:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections: list[FakeConnection] = []
        self.attempts = 0
        self.responses = 0
        self.replies_started = 0
        self.user_turns = 0
        self._server: Any = None

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.attempts += 1
        limit = self.script.accept_connections
        if limit is not None and self.attempts > limit:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized: bad api key\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        connection = FakeConnection(self, ws)
        self.connections.append(connection)
        await connection.run()

    async def start(self) -> str:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, compression=None
        )
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1/realtime/openai"

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def fake_realtime() -> AsyncIterator[Callable[..., Any]]:
    servers: list[FakeRealtime] = []

    async def start(script: Script | None = None) -> tuple[FakeRealtime, str]:
        server = FakeRealtime(script or Script())
        servers.append(server)
        return server, await server.start()

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def realtime_robot(make_robot: Callable[..., Path]) -> Callable[..., Path]:
    """A realtime robot (yandex_realtime) talking to `url`; `tts=None` leaves the tts out."""

    def make(url: str, *, tts: dict[str, Any] | None = None, **overrides: Any) -> Path:
        realtime = {"provider": "yandex_realtime", "url": url, "folder_id": "b1gtest"}
        realtime.update(overrides.pop("realtime", {}))
        robot = make_robot(prompt=PROMPT, mode="realtime", realtime=realtime, **overrides)
        config = json.loads((robot / "config.json").read_text())
        config.pop("tts")
        if tts is not None:
            config["tts"] = tts
        (robot / "config.json").write_text(json.dumps(config, ensure_ascii=False))
        (robot / ".env").write_text("YANDEX_API_KEY=test-key-123\n")
        return robot

    return make


async def final_record(robot: Path) -> dict[str, Any]:
    async with asyncio.timeout(60):  # the JSON sink writes in its own task; only a hang waits long
        while True:
            records = [r for r in read_call_records(robot) if r["call"]["status"] != "in_progress"]
            if records:
                return records[0]
            await asyncio.sleep(0.05)


def log_events(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e["data"] for e in record["pipeline_log"] if e["event"] == name]


HELLO = tone(700, 1200)
STOP = tone(500, 1000)


# -- the tests -------------------------------------------------------------------------------
async def test_formats_audio_both_ways_and_transcripts(
    fake_realtime, realtime_robot, robot_server
) -> None:
    server, url = await fake_realtime(Script(output_rate=44100))
    robot = realtime_robot(url)
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO)], metadata={"callId": "rt1"})
    assert result.ok, result.errors

    (conn,) = server.connections
    assert conn.headers["Authorization"] == "api-key test-key-123"
    assert conn.path.endswith("?model=gpt://b1gtest/speech-realtime-250923")
    update = conn.received[0]
    assert update["type"] == "session.update"
    session = update["session"]
    assert session["instructions"] == PROMPT
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 44100}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    # The greeting is the model's: asked for verbatim, in the same voice as the rest.
    greeting_request = conn.of_type("response.create")[0]
    assert GREETING in greeting_request["response"]["instructions"]

    # Caller audio reached the server as 24 kHz PCM: the caller's 700 Hz tone, in step with what
    # was sent (the server's VAD found the speech where the caller put it, within a frame).
    hello = result.utterances[0]
    assert hello.speech_end_ms is not None and hello.speech_start_ms is not None
    speech_ms = hello.speech_end_ms - hello.speech_start_ms
    start = conn.speech_start_ms * 48
    segment = bytes(conn.audio[start : start + round(speech_ms) * 48])
    assert abs(frequency(segment, 24000) - 700) < 10
    assert abs(conn.speech_start_ms - hello.speech_start_ms) <= 20
    # No more than was sent, and all of it up to the 300 ms of silence after the speech that the
    # server's VAD needed to answer. Only the frames just before the hang-up may still have been
    # on their way when the call ended, and how many depends on the machine's speed.
    server_ms = len(conn.audio) / 48
    assert hello.speech_end_ms + 300 <= server_ms <= len(result.caller_audio) / 16 + 20

    # The server's 44.1 kHz deltas reached the caller as 8 kHz audio of the same tone and length.
    greeting, answer = result.answers
    greeting_audio = result.robot_audio[: greeting.bytes]
    reply_audio = result.robot_audio[greeting.bytes : greeting.bytes + answer.bytes]
    assert abs(tone_ms(greeting_audio, 8000) - 800) < 60
    assert abs(tone_ms(reply_audio, 8000) - 1500) < 60
    assert abs(frequency(reply_audio, 8000) - 1000) < 10
    assert abs(frequency(greeting_audio, 8000) - 600) < 10

    record = await final_record(robot)
    assert record["call"]["mode"] == "realtime" and record["call"]["end_reason"] == "caller_hangup"
    turns = [(t["role"], t["text"]) for t in record["turns"]]
    assert turns == [
        ("robot", GREETING),
        ("user", "Хочу записаться к врачу"),
        ("robot", "Ответ робота номер 1 про запись."),
    ]
    reply = record["turns"][2]
    assert reply["v2v_ms"] > 0 and not reply["interrupted"]
    assert record["turns"][1]["asr_ms"] is not None
    assert log_events(record, "realtime_session")[-1]["output"]["rate"] == 44100


@pytest.mark.parametrize("realtime_pace", [True, False], ids=["paced", "fast"])
async def test_barge_in_cancels_and_truncates_at_what_was_heard(
    fake_realtime, realtime_robot, robot_server, realtime_pace: bool
) -> None:
    script = Script(
        user_texts=["Расскажите подробно", "Подождите"],
        reply_ms=[4000, 600],
        realtime_pace=realtime_pace,
    )
    server, url = await fake_realtime(script)
    robot = realtime_robot(url, greeting_text=None)
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO), BargeIn(STOP)], barge_in_after_s=1.0)
    assert result.ok, result.errors

    (conn,) = server.connections
    kinds = [e["type"] for e in conn.received if e["type"] != "input_audio_buffer.append"]
    # A response still being generated is cancelled; one already done needs only the truncate.
    assert ("response.cancel" in kinds) is realtime_pace
    (truncate,) = conn.of_type("conversation.item.truncate")
    assert (truncate["item_id"], truncate["content_index"]) == ("item_1", 0)
    if realtime_pace:
        assert kinds.index("response.cancel") < kinds.index("conversation.item.truncate")
    # The reply as the caller heard it up to the killAudio: one answer, or more if the robot's
    # audio stalled for over 300 ms on a busy machine (the caller's ear then counts two).
    cut = next(a for a in result.answers if a.cut_by_kill_audio)
    reply = result.answers[: cut.index + 1]
    assert cut.end_ms is not None
    heard_ms = sum(a.bytes for a in reply) / 16  # its audio the caller heard
    played_ms = cut.end_ms - reply[0].start_ms  # how long the caller's ear had been playing it
    kill = next(e for e in result.events if e.type == "killAudio")
    sent_ms = sum(c.bytes for c in result.chunks if c.t_ms <= kill.t_ms) / 16
    # Never more than the robot had sent the caller when it stopped (fast: far less than the 4 s
    # the service gave it at once), whatever the machine's speed.
    assert 0 < truncate["audio_end_ms"] <= sent_ms
    # The robot's playout clock against the caller's ear, both on this machine's time, so that
    # its speed cancels out: no less than the audio heard, no more than the time spent hearing it
    # (that adds the silences of underruns, which the robot cannot all see: mod_audio_fork holds
    # a message under its pre-buffer threshold until the next one comes). The slack: 40-60 ms
    # (frames, the start of the playout) plus however late the caller's 20 ms clock ran on this
    # machine; it catches up, but a killAudio that came meanwhile flushed what it would have
    # played. Counting as heard the lead the robot had sent, 130-200 ms here, still fails.
    lag_ms = result.sim_lag_max_ms
    assert heard_ms - 40 - lag_ms <= truncate["audio_end_ms"] <= played_ms + 60 + lag_ms
    barge = result.utterances[1]
    assert barge.kill_audio and barge.kill_audio_after_ms is not None

    record = await final_record(robot)
    first = next(t for t in record["turns"] if t["role"] == "robot")
    assert first["interrupted"] and first["heard_text"]
    full = "Ответ робота номер 1 про запись."
    heard = first["heard_text"].rstrip("…")
    assert full.startswith(heard) and len(heard) < len(full)
    assert full.startswith(first["text"])  # all that was generated (paced: only the start)
    assert [t["text"] for t in record["turns"] if t["role"] == "user"] == [
        "Расскажите подробно",
        "Подождите",
    ]
    last = record["turns"][-1]
    assert last["role"] == "robot" and not last["interrupted"]
    (truncated,) = log_events(record, "truncate")
    assert truncated["audio_end_ms"] == truncate["audio_end_ms"]
    # The robot stopped on the service's speech_started, while the caller was still talking (its
    # log follows the service's events, which follow the caller's audio), not on the machine's
    # speed: the barge-in comes after the start of the second utterance and before its end.
    events = [e["event"] for e in record["pipeline_log"]]
    before_barge_in = events[: events.index("barge_in")]
    assert (before_barge_in.count("speech_start"), before_barge_in.count("speech_end")) == (2, 1)


async def test_error_event_is_recorded_and_the_call_goes_on(
    fake_realtime, realtime_robot, robot_server
) -> None:
    script = Script(user_texts=["Первый вопрос", "Второй вопрос"], error_after_reply=1)
    server, url = await fake_realtime(script)
    robot = realtime_robot(url, greeting_text=None)
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO), Say(HELLO)])
    assert result.ok, result.errors
    assert len(result.answers) == 2

    record = await final_record(robot)
    errors = [e for e in log_events(record, "error") if e.get("source") == "realtime"]
    assert (
        errors and errors[0]["code"] == "synthetic" and errors[0]["detail"] == "Synthetic failure"
    )
    assert [t["role"] for t in record["turns"]] == ["user", "robot", "user", "robot"]
    assert record["call"]["end_reason"] == "caller_hangup"
    assert len(server.connections) == 1


async def test_a_dropped_connection_reconnects_and_the_conversation_goes_on(
    fake_realtime, realtime_robot, robot_server
) -> None:
    script = Script(user_texts=["Первый вопрос", "Второй вопрос"], drop_after_reply=2)
    server, url = await fake_realtime(script)
    robot = realtime_robot(url)
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO), Pause(0.5), Say(HELLO)])
    assert result.ok, result.errors
    assert len(result.answers) == 3  # greeting, answer, answer after the reconnect

    _, second = server.connections
    assert second.received[0]["type"] == "session.update"
    replayed = [
        (e["item"]["role"], e["item"]["content"][0]["text"])
        for e in second.of_type("conversation.item.create")
    ]
    assert replayed == [
        ("assistant", GREETING),
        ("user", "Первый вопрос"),
        ("assistant", "Ответ робота номер 1 про запись."),
    ]
    assert second.speech_start_ms >= 0 and second.of_type("input_audio_buffer.append")

    record = await final_record(robot)
    assert [(t["role"], t["text"]) for t in record["turns"]][-2:] == [
        ("user", "Второй вопрос"),
        ("robot", "Ответ робота номер 2 про запись."),
    ]
    assert log_events(record, "realtime_closed")[0]["expired"] is False
    assert [e["reconnect"] for e in log_events(record, "realtime_connected")] == [False, True]
    assert record["call"]["end_reason"] == "caller_hangup"


async def test_an_answer_lost_with_the_connection_is_asked_for_again(
    fake_realtime, realtime_robot, robot_server
) -> None:
    script = Script(drop_mid_reply=1, realtime_pace=True, reply_ms=[2000, 800])
    server, url = await fake_realtime(script)
    robot = realtime_robot(url, greeting_text=None)
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO)])
    assert result.ok, result.errors

    _, second = server.connections
    assert [e["item"]["role"] for e in second.of_type("conversation.item.create")] == [
        "user",
        "assistant",
    ]
    (again,) = second.of_type("response.create")
    assert "response" not in again  # the model answers the caller's turn again, in its words
    record = await final_record(robot)
    robots = [t for t in record["turns"] if t["role"] == "robot"]
    assert robots[0]["error"] == "realtime connection lost mid-answer"
    assert robots[-1]["text"] == "Ответ робота номер 2 про запись." and not robots[-1]["error"]
    heard_ms = sum(a.bytes for a in result.answers) / 16
    assert abs(heard_ms - (500 + 800)) < 60  # the 0.5 s cut short, then the whole new answer


async def test_max_call_duration_is_said_by_the_model_then_the_robot_hangs_up(
    fake_realtime, realtime_robot, robot_server
) -> None:
    server, url = await fake_realtime()
    robot = realtime_robot(url, max_call_s=2.0, max_call_text="Время разговора истекло.")
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Pause(10)])

    assert result.robot_hung_up
    assert len(result.answers) == 2 and not result.answers[-1].cut_by_kill_audio
    (conn,) = server.connections
    asked = [e["response"]["instructions"] for e in conn.of_type("response.create")]
    assert asked[-1].endswith("\nВремя разговора истекло.")
    record = await final_record(robot)
    assert record["call"]["end_reason"] == "max_duration"
    assert record["turns"][-1]["text"] == "Время разговора истекло."


async def test_renewal_opens_a_fresh_session_at_a_quiet_moment(
    fake_realtime, realtime_robot, robot_server
) -> None:
    server, url = await fake_realtime(Script(user_texts=["Первый вопрос", "Второй вопрос"]))
    robot = realtime_robot(url, greeting_text=None, realtime={"renew_after_s": 2.5})
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO), Pause(1.5), Say(HELLO)])
    assert result.ok, result.errors
    assert len(result.answers) == 2

    assert len(server.connections) >= 2
    renewed = server.connections[1]
    replayed = [e["item"]["role"] for e in renewed.of_type("conversation.item.create")]
    assert replayed == ["user", "assistant"]
    assert not renewed.of_type("response.create")  # nothing was lost: nothing asked again
    record = await final_record(robot)
    assert log_events(record, "realtime_renew")
    assert [t["role"] for t in record["turns"]] == ["user", "robot", "user", "robot"]


async def test_an_expired_session_without_reconnect_ends_politely(
    fake_realtime, realtime_robot, robot_server
) -> None:
    server, url = await fake_realtime(Script(expire_after_reply=2))
    robot = realtime_robot(
        url,
        tts={"provider": "fake", "frequency": 300},
        realtime={"reconnect": False},
        max_call_text="Время вышло.",
    )
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO), Pause(10)])

    assert result.robot_hung_up
    assert not result.answers[-1].cut_by_kill_audio
    goodbye_audio = result.robot_audio[-8000:]  # its last 0.5 s (it follows the answer at once)
    assert abs(frequency(goodbye_audio, 8000) - 300) < 10  # said by the tts: the model is gone
    record = await final_record(robot)
    assert record["call"]["end_reason"] == "realtime_expired"
    assert record["turns"][-1]["text"] == "Время вышло."
    assert any(e.get("code") == "session_expired" for e in log_events(record, "error"))
    assert len(server.connections) == 1


async def test_an_unreachable_service_is_explained_and_the_call_ends(
    fake_realtime, realtime_robot, robot_server
) -> None:
    server, url = await fake_realtime(Script(accept_connections=0))
    robot = realtime_robot(url, tts={"provider": "fake", "frequency": 300})
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Pause(10)])

    assert result.robot_hung_up and len(result.answers) == 1
    record = await final_record(robot)
    assert record["call"]["end_reason"] == "realtime_unavailable"
    assert record["call"]["status"] == "failed"
    (unavailable,) = log_events(record, "realtime_unavailable")
    assert "HTTP 401" in unavailable["detail"] and "check the API key" in unavailable["detail"]
    assert "test-key-123" not in json.dumps(record, ensure_ascii=False)
    assert record["turns"][-1]["text"].startswith("Извините, связь с ассистентом прервалась")
    assert server.attempts == 1


async def test_caller_turns_without_item_ids_are_recorded_once_each(
    fake_realtime, realtime_robot, robot_server
) -> None:
    script = Script(user_texts=["Первый вопрос", "Второй вопрос"], user_item_ids=False)
    server, url = await fake_realtime(script)
    robot = realtime_robot(url, greeting_text=None)
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO), Say(HELLO)])
    assert result.ok, result.errors
    assert len(result.answers) == 2

    record = await final_record(robot)
    assert [(t["role"], t["text"], t["error"]) for t in record["turns"]] == [
        ("user", "Первый вопрос", None),
        ("robot", "Ответ робота номер 1 про запись.", None),
        ("user", "Второй вопрос", None),
        ("robot", "Ответ робота номер 2 про запись.", None),
    ]
    users = [t for t in record["turns"] if t["role"] == "user"]
    assert all(t["asr_ms"] is not None for t in users)  # speech_stopped found its turn
    assert all("ms" in e for e in log_events(record, "speech_end"))
    assert len(server.connections) == 1


async def test_yandex_is_asked_for_text_and_the_robot_lines_reach_the_record(
    fake_realtime, realtime_robot, robot_server
) -> None:
    server, url = await fake_realtime(Script(yandex_text=True))
    robot = realtime_robot(url)
    robot_url, _, _ = await robot_server(robot)
    result = await run_call(robot_url, [Say(HELLO)])
    assert result.ok, result.errors

    (conn,) = server.connections
    (update,) = conn.of_type("session.update")
    assert update["session"]["output_modalities"] == ["text", "audio"]
    record = await final_record(robot)
    assert [(t["role"], t["text"]) for t in record["turns"]] == [
        ("robot", GREETING),
        ("user", "Хочу записаться к врачу"),
        ("robot", "Ответ робота номер 1 про запись."),
    ]
