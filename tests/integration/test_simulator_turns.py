"""The simulated caller's view of robot turns: starvation inside a turn, cut and resume, the
echo of the robot's voice, over a real WebSocket on 127.0.0.1 (a stand-in robot in the test's
loop, or the echo robot with fake providers)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection

from tests.integration.test_simulator import FAST, LOUD, known, parse, running, speech, tone
from voiceplat.audio.pcm import Pcm, rms
from voiceplat.simulator import BargeIn, Say, Step, WaitQuiet, run_call
from voiceplat.simulator.cli import run_call_command
from voiceplat.simulator.report_text import format_call

FRAME = 320


def burst(seconds: float) -> Pcm:
    """A short loud sound with silence around it (a backchannel or a cough, to the robot)."""
    return Pcm.silence(100) + tone(seconds, 700.0, 8000.0) + Pcm.silence(300)


@dataclass
class ResumingRobot:
    """Answers each utterance with a paced tone, a mark `t{turn}s{n}` after each sentence.

    Loud caller audio over its answer (3 frames) cuts it (killAudio). When that burst ends
    within `short_frames` loud frames it was no interruption: the robot sends the rest of the
    answer again, with marks of the same turn; a longer one gets a new answer (a new turn).
    """

    answer_s: float = 3.0
    sentence_s: float = 0.5
    lead_frames: int = 10
    short_frames: int = 12
    resume: bool = True
    turn: int = 0
    replies: list[dict[str, Any]] = field(default_factory=list)
    _frames: list[bytes] = field(default_factory=list)

    async def handler(self, ws: ServerConnection) -> None:
        await ws.recv()  # metadata
        loud_run = quiet_run = loud_total = 0
        in_speech = False
        task: asyncio.Task[None] | None = None
        rest: list[bytes] = []  # what an interrupted answer had still to send
        sent: list[int] = [0]
        try:
            async for message in ws:
                if isinstance(message, str):
                    self.replies.append(json.loads(message))
                    continue
                loud = rms(message) > LOUD
                loud_run, quiet_run = (loud_run + 1, 0) if loud else (0, quiet_run + 1)
                loud_total += loud
                if not in_speech and loud_run >= 3:
                    in_speech, loud_total = True, 3
                    if task is not None and not task.done():
                        task.cancel()
                        await ws.send(json.dumps({"type": "killAudio"}))
                        rest = self._frames[sent[0] :]
                if in_speech and quiet_run >= 10:
                    in_speech = False
                    if rest and self.resume and loud_total <= self.short_frames:
                        task = asyncio.create_task(self._stream(ws, self.turn, rest, sent))
                    else:
                        self.turn += 1
                        self._frames = self._answer_frames()
                        task = asyncio.create_task(self._stream(ws, self.turn, self._frames, sent))
                    rest = []
        finally:
            if task is not None:
                task.cancel()

    def _answer_frames(self) -> list[bytes]:
        audio = tone(self.answer_s).data
        return [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]

    async def _stream(
        self, ws: ServerConnection, turn: int, frames: list[bytes], sent: list[int]
    ) -> None:
        loop = asyncio.get_running_loop()
        offset = len(self._frames) - len(frames)  # resuming: frames before were sent already
        sentence = int(self.sentence_s * 50)
        start = loop.time()
        for i, chunk in enumerate(frames):
            await asyncio.sleep(max(0.0, start + (i - self.lead_frames) * 0.02 - loop.time()))
            await ws.send(chunk)
            sent[0] = offset + i + 1
            n = offset + i + 1
            if n % sentence == 0 or i + 1 == len(frames):
                await ws.send(json.dumps({"type": "mark", "data": {"name": f"t{turn}s{n}"}}))


async def test_a_short_burst_cut_and_resumed_is_one_turn_with_a_resume() -> None:
    robot = ResumingRobot()
    async with running(robot) as url:  # type: ignore[arg-type]
        result = await run_call(
            url, [Say(speech()), BargeIn(burst(0.1), after_s=0.8), WaitQuiet(0.6)], **FAST
        )
    assert result.ok, result.errors
    assert result.warnings == []  # the wait for quiet did not need an answer to the burst
    first, over = result.utterances
    assert first.next_turn == 1
    assert over.kind == "barge_in" and over.robot_turn == 1
    assert known(over.speech_start_ms) - known(first.next_turn_start_ms) >= 800  # its after_s
    assert over.kill_audio is True and over.resumed is True
    assert over.next_turn is None  # the robot did not answer the burst
    (turn,) = result.robot_turns
    assert (turn.turn, turn.cut, turn.resumes) == (1, True, 1)
    assert turn.resume_gaps_ms == [over.resume_after_ms]
    assert known(over.resume_after_ms) > 0
    # The resumed audio was heard after the burst ended, and the turn to its end: 3 s in all,
    # less what the killAudio flushed (sent ahead, never heard) and the last < 80 ms, which
    # waits in mod_audio_fork's pre-buffer for audio that never comes (this robot never pads).
    assert turn.end_ms > known(over.speech_end_ms)
    lost = 3000 - result.quality.flushed_ms - turn.heard_ms
    assert 0 <= lost < 80
    assert len(result.answers) == 2  # killAudio splits the answers; the turn is one
    text = format_call(result)
    assert "robot turns (by marks)" in text and "starvation ms" in text


async def test_a_long_interruption_gets_a_new_turn_not_a_resume() -> None:
    robot = ResumingRobot()
    async with running(robot) as url:  # type: ignore[arg-type]
        result = await run_call(url, [Say(speech()), BargeIn(speech(0.6)), WaitQuiet(0.6)], **FAST)
    assert result.ok, result.errors
    over = result.utterances[1]
    assert over.robot_turn == 1 and over.kill_audio is True and over.resumed is False
    assert over.next_turn == 2 and known(over.next_turn_start_ms) > known(over.speech_end_ms)
    turns = {t.turn: t for t in result.robot_turns}
    assert turns[1].cut and turns[1].resumes == 0
    assert not turns[2].cut


async def test_a_click_over_the_robot_is_talked_over_without_a_cut() -> None:
    robot = ResumingRobot(answer_s=1.5)
    async with running(robot) as url:  # type: ignore[arg-type]
        result = await run_call(
            url, [Say(speech()), BargeIn(burst(0.02), after_s=0.4), WaitQuiet(0.6)], **FAST
        )
    assert result.ok, result.errors
    over = result.utterances[1]
    assert over.robot_turn == 1 and over.kill_audio is False and over.resumed is None
    assert over.talk_over_ms is not None and over.talk_over_ms > 500  # the answer played on
    (turn,) = result.robot_turns
    assert not turn.cut and turn.resumes == 0


async def test_echo_mixes_the_robot_heard_back_delayed_attenuated() -> None:
    robot = ResumingRobot(answer_s=1.5, resume=False)
    async with running(robot) as url:  # type: ignore[arg-type]
        result = await run_call(
            url, [Say(speech()), WaitQuiet(0.5)], echo_db=-20, echo_ms=120, **FAST
        )
    assert result.ok, result.errors
    heard = np.frombuffer(result.robot_heard, dtype="<i2").astype(np.float64)
    sent = np.frombuffer(result.caller_audio, dtype="<i2").astype(np.float64)
    n = min(heard.size, sent.size)
    answer = result.answers[0]
    # The caller is silent while the robot answers: what it sends then is the echo alone.
    lo, hi = int(answer.start_ms * 8), int(known(answer.end_ms) * 8)
    assert hi + 960 < n
    lags = np.arange(0, 2400)
    corr = [float(np.dot(sent[lo + lag : hi + lag], heard[lo:hi])) for lag in lags]
    assert int(lags[int(np.argmax(corr))]) == 960  # 120 ms at 8 kHz
    level = 20 * np.log10(np.std(sent[lo + 960 : hi + 960]) / np.std(heard[lo:hi]))
    assert level == pytest.approx(-20.0, abs=0.5)
    # mu-law on the way: every sample sent is a mu-law level.
    from voiceplat.audio.g711 import ulaw_decode, ulaw_encode

    assert ulaw_decode(ulaw_encode(result.caller_audio)) == result.caller_audio


async def test_without_echo_the_caller_is_silent_while_the_robot_talks() -> None:
    robot = ResumingRobot(answer_s=1.0, resume=False)
    async with running(robot) as url:  # type: ignore[arg-type]
        result = await run_call(url, [Say(speech()), WaitQuiet(0.5)], **FAST)
    answer = result.answers[0]
    during = result.caller_audio[int(answer.start_ms * 16) : int(known(answer.end_ms) * 16)]
    assert during and not any(during)


async def test_starvation_inside_a_turn_with_a_slow_tts(make_robot, robot_server) -> None:
    # Each sentence's TTS takes 1.5 s before its first audio and speaks ~0.4 s: the caller hears
    # the playout run dry between sentences of one turn, for longer than the 300 ms that splits
    # "answers". The robot's marks (t{turn}s{n}) keep them one turn in the report.
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите"]},
        llm={"provider": "fake", "reply": "Первая фраза. Вторая фраза. Третья фраза."},
        tts={"provider": "fake", "delay_ms": 1500, "ms_per_char": 30},
        greeting_text="Алло.",
    )
    url, _, _ = await robot_server(robot)
    hello = Pcm.silence(100) + tone(0.8, 300.0, 8000.0) + Pcm.silence(200)
    # The greeting first (slow too), then one question; the wait outlasts the gaps.
    steps: list[Step] = [WaitQuiet(2.5), Say(hello), WaitQuiet(3.0)]
    result = await run_call(url, steps, answer_timeout_s=20, timeout_s=60)
    assert result.ok, result.errors
    (said,) = result.utterances
    answer = next(t for t in result.robot_turns if t.start_ms > known(said.speech_end_ms))
    assert said.next_turn == answer.turn
    assert answer.gaps >= 1 and answer.starved_max_ms >= 500
    assert answer.starved_ms >= answer.starved_max_ms
    assert len(result.answers) > len(result.robot_turns)  # the gaps split the "answers"
    assert result.starvation_ms.count == len(result.robot_turns)
    assert result.starvation_ms.max == max(t.starved_max_ms for t in result.robot_turns)
    report = json.loads(result.model_dump_json())
    assert report["robot_turns"][-1]["starved_max_ms"] == result.robot_turns[-1].starved_max_ms


def test_cli_echo_and_wait_quiet_reach_the_call(monkeypatch, capsys) -> None:
    seen: dict = {}

    async def fake_run_call(url, steps, **options):
        seen.update(options, steps=steps)
        raise ValueError("stop here")

    monkeypatch.setattr("voiceplat.simulator.cli.run_call", fake_run_call)
    assert run_call_command(parse(["ws://x/", "--wait-quiet", "1.5"])) == 2
    assert (seen["echo_db"], seen["echo_ms"], seen["steps"]) == (None, 120.0, [WaitQuiet(1.5)])
    run_call_command(parse(["ws://x/", "--echo-db", "-20", "--echo-ms", "80"]))
    assert (seen["echo_db"], seen["echo_ms"]) == (-20.0, 80.0)
    with pytest.raises(SystemExit):
        parse(["ws://x/", "--echo-db", "6"])
    assert "quieter than the robot" in capsys.readouterr().err
