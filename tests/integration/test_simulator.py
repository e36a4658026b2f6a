"""The simulated caller against a tiny stand-in robot over a real WebSocket on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from voiceplat.audio.pcm import Pcm, rms
from voiceplat.audio.wav import write_wav
from voiceplat.simulator import BargeIn, Pause, Say, run_call, run_calls
from voiceplat.simulator.cli import add_call_arguments, run_call_command

FRAME = 320
LOUD = 500.0


def tone(seconds: float, freq: float = 440.0, amplitude: float = 6000.0) -> Pcm:
    t = np.arange(int(8000 * seconds)) / 8000.0
    return Pcm.from_numpy(amplitude * np.sin(2 * np.pi * freq * t), 8000)


def speech(seconds: float = 0.6) -> Pcm:
    """Caller 'speech': a tone with 100 ms of silence before and 200 ms after."""
    return Pcm.silence(100) + tone(seconds, 300.0, 8000.0) + Pcm.silence(200)


@dataclass
class RobotCall:
    subprotocol: str | None
    metadata: dict = field(default_factory=dict)
    frame_sizes: list[int] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    replies: list[dict] = field(default_factory=list)
    sent_audio: bytearray = field(default_factory=bytearray)
    answers: int = 0


@dataclass
class StandInRobot:
    """Answers each caller utterance (200 ms of silence ends it) with a paced tone and a mark.

    While its answer is still being heard (until the mark comes back), three loud caller frames
    are a barge-in: it sends killAudio and stops streaming.
    """

    answer_s: float = 0.4
    later_answer_s: float | None = None  # length of the answers after the first
    sentence_s: float = 10.0
    lead_frames: int = 10
    hang_up_after: int | None = None
    transfer_after: int | None = None
    chatter: bool = False
    calls: list[RobotCall] = field(default_factory=list)

    async def handler(self, ws: ServerConnection) -> None:
        call = RobotCall(ws.subprotocol)
        self.calls.append(call)
        call.metadata = json.loads(await ws.recv())
        loud_run = quiet_run = 0
        in_speech = False
        answer: asyncio.Task[None] | None = None
        talking = asyncio.Event()  # set from answer start until its mark comes back
        mark_back = asyncio.Event()
        try:
            async for message in ws:
                if isinstance(message, str):
                    reply = json.loads(message)
                    call.replies.append(reply)
                    if reply.get("type") == "mark" and "." not in reply["data"]["name"]:
                        talking.clear()  # the answer's last mark: it has been heard
                        mark_back.set()
                    continue
                call.frame_sizes.append(len(message))
                call.frame_times.append(asyncio.get_running_loop().time())
                if rms(message) > LOUD:
                    loud_run, quiet_run = loud_run + 1, 0
                else:
                    loud_run, quiet_run = 0, quiet_run + 1
                if not in_speech and loud_run >= 3:
                    in_speech = True
                    if talking.is_set():
                        talking.clear()
                        await ws.send(json.dumps({"type": "killAudio"}))
                        if answer is not None:
                            answer.cancel()
                if in_speech and quiet_run >= 10:
                    in_speech = False
                    call.answers += 1
                    talking.set()
                    mark_back.clear()
                    answer = asyncio.create_task(self._answer(ws, call, call.answers, mark_back))
        finally:
            if answer is not None:
                answer.cancel()

    async def _answer(
        self, ws: ServerConnection, call: RobotCall, n: int, mark_back: asyncio.Event
    ) -> None:
        """Streams the tone paced at real time after a lead, with a mark after each sentence."""
        loop = asyncio.get_running_loop()
        audio = tone(self.answer_s if n == 1 else self.later_answer_s or self.answer_s).data
        sentence = int(self.sentence_s * 50)
        frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
        start = loop.time()
        for i, chunk in enumerate(frames):
            await asyncio.sleep(max(0.0, start + (i - self.lead_frames) * 0.02 - loop.time()))
            call.sent_audio += chunk
            await ws.send(chunk)
            if (i + 1) % sentence == 0 or i + 1 == len(frames):
                name = f"answer-{n}" if i + 1 == len(frames) else f"answer-{n}.{i // sentence}"
                await ws.send(json.dumps({"type": "mark", "data": {"name": name}}))
        if self.chatter:
            await ws.send(json.dumps({"type": "wink", "data": {"eye": "left"}}))
            await ws.send("not json")
        if n in (self.hang_up_after, self.transfer_after):
            await mark_back.wait()
        if n == self.hang_up_after:
            await ws.send(json.dumps({"type": "disconnect"}))
        if n == self.transfer_after:
            await ws.send(json.dumps({"type": "transfer", "data": {"target": "sip:100@pbx"}}))


@contextlib.asynccontextmanager
async def running(robot: StandInRobot) -> AsyncIterator[str]:
    async with serve(
        robot.handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol("audio.drachtio.org")],
        compression=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


FAST: dict[str, Any] = {"settle_s": 0.3, "answer_timeout_s": 5.0, "timeout_s": 30.0}


def known(value: float | None) -> float:
    """A time the report must have."""
    assert value is not None
    return value


async def test_conversation_metadata_frames_marks_and_latency():
    robot = StandInRobot()
    async with running(robot) as url:
        result = await run_call(
            url,
            [Say(speech()), Pause(0.2), Say(speech(0.4))],
            metadata={"campaign": "test", "from": "+70000000001"},
            **FAST,
        )
    assert result.ok, result.errors
    assert result.end_reason == "caller_hung_up"
    call = robot.calls[0]

    assert call.subprotocol == "audio.drachtio.org"
    assert call.metadata["callId"] == result.call_id
    uuid.UUID(result.call_id)
    assert call.metadata["from"] == "+70000000001"
    assert call.metadata["to"] == "88000000000"
    assert call.metadata["source"] == "simulator"
    assert call.metadata["campaign"] == "test"

    # Continuous 20 ms frames, silence included, at real time (never ahead of the clock).
    assert set(call.frame_sizes) == {FRAME}
    assert len(call.frame_sizes) == result.frames_sent
    # Behind the clock only as far as the simulator's own measured lateness (a busy machine).
    lag_frames = result.sim_lag_max_ms / 20
    assert result.duration_ms / 20 - 25 - lag_frames <= result.frames_sent
    assert result.frames_sent <= result.duration_ms / 20 + 1
    span = call.frame_times[-1] - call.frame_times[0]
    assert span >= (result.frames_sent - 1) * 0.02 - 0.1  # never faster than real time
    assert (
        result.caller_audio == b"".join([bytes(FRAME)] * 0) + result.caller_audio
    )  # kept in memory
    assert len(result.caller_audio) == result.frames_sent * FRAME

    # Each utterance answered: the answer is heard after the robot's 200 ms endpoint.
    assert [u.kind for u in result.utterances] == ["say", "say"]
    assert [u.answer_index for u in result.utterances] == [0, 1]
    for u in result.utterances:
        assert u.v2v_ms is not None and u.v2v_ms >= 180
        assert u.v2v_arrival_ms is not None and u.v2v_arrival_ms <= u.v2v_ms
        assert not u.robot_talking_at_start
    second = result.utterances[1]
    first_answer = result.answers[0]
    assert known(second.speech_start_ms) > known(first_answer.end_ms) + 300  # quiet + settle

    # What the caller heard is exactly what the robot sent, played without gaps.
    assert result.robot_audio == bytes(call.sent_audio)
    assert len(result.answers) == 2
    assert all(a.ended_by == "natural" and a.underruns == 0 for a in result.answers)
    assert result.answers[0].bytes == 400 * 16  # the whole 400 ms answer was heard
    assert result.quality.underruns == 0
    assert result.quality.chunks == 2 * 20
    assert result.quality.jitter_ms.count == 2 * 19

    # Marks answered "playout" once the answer had played, and the robot got the replies.
    assert [(m.name, m.event) for m in result.marks] == [
        ("answer-1", "playout"),
        ("answer-2", "playout"),
    ]
    assert known(result.marks[0].answered_ms) >= known(first_answer.end_ms)
    assert call.replies == [
        {"type": "mark", "data": {"name": "answer-1", "event": "playout"}},
        {"type": "mark", "data": {"name": "answer-2", "event": "playout"}},
    ]

    report = json.loads(result.model_dump_json())
    assert report["call_id"] == result.call_id
    assert report["utterances"][0]["v2v_ms"] == result.utterances[0].v2v_ms
    assert {"caller_audio", "robot_audio", "robot_heard"}.isdisjoint(report)
    assert len(report["chunks"]) == 40


async def test_barge_in_is_answered_with_kill_audio(tmp_path):
    # A long answer sent 1 s ahead, a mark every 0.5 s: some marks are still queued at the flush.
    robot = StandInRobot(answer_s=3.0, later_answer_s=0.4, sentence_s=0.5, lead_frames=50)
    record = tmp_path / "call.wav"
    async with running(robot) as url:
        result = await run_call(
            url, [Say(speech()), BargeIn(speech())], barge_in_after_s=0.5, record=record, **FAST
        )
    assert result.ok, result.errors
    barge = result.utterances[1]
    assert barge.kind == "barge_in"
    assert barge.robot_talking_at_start
    assert barge.kill_audio is True
    assert barge.kill_audio_after_ms is not None and barge.kill_audio_after_ms > 0
    cut = result.answers[0]
    assert cut.cut_by_kill_audio and cut.ended_by == "killAudio"
    # The robot was heard for >= barge_in_after before the caller spoke, and not to the end.
    speech_start, cut_end = known(barge.speech_start_ms), known(cut.end_ms)
    assert speech_start - cut.start_ms >= 500
    assert known(cut.duration_ms) < 3000
    assert barge.talk_over_ms == pytest.approx(cut_end - speech_start, abs=0.2)
    assert known(barge.talk_over_ms) > 0
    assert result.quality.kill_audio == 1 and result.quality.flushed_ms > 0
    # Marks behind the heard audio were played, those behind the flushed audio cleared.
    first = [m for m in result.marks if m.name.startswith("answer-1.")]
    events = [m.event for m in first]
    assert "playout" in events and "cleared" in events
    assert events == sorted(events, key=lambda e: e == "cleared")  # played ones come first
    kill_ms = next(e.t_ms for e in result.events if e.type == "killAudio")
    assert all(known(m.answered_ms) <= kill_ms + 20 for m in first if m.event == "playout")
    assert all(m.answered_ms == kill_ms for m in first if m.event == "cleared")
    cleared = [r for r in robot.calls[0].replies if r["data"]["event"] == "cleared"]
    assert [r["data"]["name"] for r in cleared] == [m.name for m in first if m.event == "cleared"]
    assert barge.answer_index == 1 and barge.v2v_ms is not None
    assert [e.type for e in result.events].count("killAudio") == 1

    # Stereo record: caller left, robot as heard right, on one timeline.
    with wave.open(str(record)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        stereo = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    left, right = stereo[:, 0].tobytes(), stereo[:, 1].tobytes()
    assert left[: len(result.caller_audio)] == result.caller_audio
    assert right[: len(result.robot_heard)] == result.robot_heard

    def loud_ms(track: bytes) -> list[float]:
        return [i / 16 for i in range(0, len(track), FRAME) if rms(track[i : i + FRAME]) > LOUD]

    caller_loud, robot_loud = loud_ms(left), loud_ms(right)
    assert caller_loud[0] == pytest.approx(result.utterances[0].speech_start_ms, abs=20)
    assert robot_loud[0] == pytest.approx(cut.start_ms, abs=20)
    # Both talk at once only between the barge-in's start and the flush.
    overlap = sorted(set(caller_loud) & set(robot_loud))
    assert overlap and overlap[0] >= speech_start - 20
    assert overlap[-1] <= cut_end


async def test_robot_hang_up_ends_the_call_with_hangup_on_disconnect():
    robot = StandInRobot(hang_up_after=1, chatter=True)
    async with running(robot) as url:
        result = await run_call(
            url, [Say(speech()), Say(speech())], hangup_on_disconnect=True, **FAST
        )
    assert result.ok, result.errors
    assert result.end_reason == "robot_hung_up" and result.robot_hung_up
    assert result.disconnect_ms is not None
    assert len(result.utterances) == 1  # the second --say never started
    types = [e.type for e in result.events]
    assert types[-1] == "disconnect"
    assert "wink" in types and "<invalid>" in types  # recorded, not fatal
    assert any("wink" in w for w in result.warnings)


async def test_disconnect_alone_does_not_hang_up_like_mod_audio_fork():
    # The module only raises mod_audio_fork::disconnect; without ws_bridge.lua the call stays.
    robot = StandInRobot(hang_up_after=1)
    async with running(robot) as url:
        result = await run_call(url, [Say(speech()), Say(speech())], **FAST)
    assert result.ok, result.errors
    assert result.end_reason == "caller_hung_up" and not result.robot_hung_up
    assert result.disconnect_ms is not None
    assert len(result.utterances) == 2  # the caller went on talking to a robot that left
    assert known(result.utterances[1].speech_start_ms) > known(result.disconnect_ms)


async def test_transfer_is_recorded_and_ends_the_call_with_hangup_on_disconnect():
    robot = StandInRobot(transfer_after=1)
    async with running(robot) as url:
        result = await run_call(url, [Say(speech())], hangup_on_disconnect=True, **FAST)
    assert result.ok, result.errors
    assert result.end_reason == "transferred"
    assert result.transferred and result.transfer_target == "sip:100@pbx"


async def test_transfer_alone_is_recorded_and_the_call_goes_on():
    robot = StandInRobot(transfer_after=1)
    async with running(robot) as url:
        result = await run_call(url, [Say(speech()), Say(speech())], **FAST)
    assert result.ok, result.errors
    assert result.transferred and result.transfer_target == "sip:100@pbx"
    assert result.end_reason == "caller_hung_up" and len(result.utterances) == 2


async def test_no_answer_times_out_and_goes_on():
    async def silent(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    async with serve(silent, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        result = await run_call(url, [Say(speech(0.2))], settle_s=0.1, answer_timeout_s=0.5)
    assert result.ok and result.end_reason == "caller_hung_up"
    assert result.utterances[0].answered is False and result.utterances[0].v2v_ms is None
    assert any("no answer" in w for w in result.warnings)


async def test_call_timeout_is_an_error_with_a_report():
    async def silent(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    async with serve(silent, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        result = await run_call(url, [Say(speech(0.2))], settle_s=0.1, timeout_s=0.8)
    assert not result.ok and result.end_reason == "timeout"
    assert result.frames_sent > 0 and len(result.utterances) == 1


async def test_robot_closing_the_socket_is_a_hang_up():
    async def rude(ws: ServerConnection) -> None:
        await ws.recv()  # reads the metadata, then closes without a disconnect message

    async with serve(rude, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        result = await run_call(url, [Say(speech())], timeout_s=5)
    assert result.end_reason == "robot_closed" and result.robot_hung_up
    assert result.utterances == []


async def test_connection_refused_is_an_error():
    async def nothing(ws: ServerConnection) -> None:
        return None

    async with serve(nothing, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
    result = await run_call(f"ws://127.0.0.1:{port}/", [Pause(0.1)], timeout_s=5)
    assert not result.ok
    assert result.end_reason == "connect_failed"
    assert "cannot connect" in result.errors[0]


async def test_three_calls_at_once():
    robot = StandInRobot()
    async with running(robot) as url:
        multi = await run_calls(url, [Say(speech())], 3, **FAST)
    assert multi.ok and multi.completed == 3
    ids = {c.call_id for c in multi.calls}
    assert len(ids) == 3 and ids == {c.metadata["callId"] for c in robot.calls}
    assert multi.v2v_ms.count == 3 and multi.v2v_ms.p50 is not None
    assert multi.underruns == 0
    report = json.loads(multi.model_dump_json())
    assert len(report["summaries"]) == 3 and "calls" not in report


# --- the command line (a robot on its own thread: the command runs its own event loop) -------


@contextlib.contextmanager
def robot_in_thread(robot: StandInRobot) -> Iterator[str]:
    ready, stop = threading.Event(), threading.Event()
    address: list[str] = []

    async def main() -> None:
        async with running(robot) as url:
            address.append(url)
            ready.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield address[0]
    finally:
        stop.set()
        thread.join(10)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    return parser.parse_args(argv)


def test_steps_keep_command_line_order(tmp_path):
    args = parse(
        ["ws://x/", "--say", "a.wav", "--pause", "1.5", "--barge-in", "b.wav", "--say", "c"]
    )
    assert args.steps == [("say", "a.wav"), ("pause", 1.5), ("barge_in", "b.wav"), ("say", "c")]


def test_cli_json_report_and_exit_code(tmp_path, capsys):
    wav = tmp_path / "hello.wav"
    write_wav(wav, speech())
    robot = StandInRobot()
    with robot_in_thread(robot) as url:
        args = parse([url, "--say", str(wav), "--settle", "0.3", "--json", "--metadata", '{"x":1}'])
        code = run_call_command(args)
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["end_reason"] == "caller_hung_up"
    assert report["utterances"][0]["source"] == "hello.wav"
    assert report["utterances"][0]["v2v_ms"] > 0
    assert robot.calls[0].metadata["x"] == 1


def test_cli_calls_table(tmp_path, capsys):
    wav = tmp_path / "hello.wav"
    write_wav(wav, speech())
    with robot_in_thread(StandInRobot()) as url:
        code = run_call_command(parse([url, "--say", str(wav), "--settle", "0.3", "--calls", "3"]))
    out = capsys.readouterr().out
    assert code == 0
    assert "3 calls" in out and "3 completed" in out and "v2v ms" in out


def test_cli_missing_wav_is_a_usage_error(tmp_path, capsys):
    code = run_call_command(parse(["ws://127.0.0.1:9/", "--say", str(tmp_path / "nope.wav")]))
    assert code == 2
    assert "nope.wav: file not found" in capsys.readouterr().err


def test_peer_switches_reach_the_call(monkeypatch, capsys):
    seen: dict = {}

    async def fake_run_call(url, steps, **options):
        seen.update(options)
        raise ValueError("stop here")

    monkeypatch.setattr("voiceplat.simulator.cli.run_call", fake_run_call)
    assert run_call_command(parse(["ws://x/"])) == 2
    assert (seen["marks"], seen["prebuffer"], seen["hangup_on_disconnect"]) == (
        "module",
        True,
        False,
    )
    run_call_command(parse(["ws://x/", "--no-marks", "--no-prebuffer", "--hangup-on-disconnect"]))
    assert (seen["marks"], seen["prebuffer"], seen["hangup_on_disconnect"]) == ("none", False, True)
    run_call_command(parse(["ws://x/", "--ideal-marks"]))
    assert seen["marks"] == "ideal"
    with pytest.raises(SystemExit):
        parse(["ws://x/", "--ideal-marks", "--no-marks"])
