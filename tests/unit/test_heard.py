"""When has the caller heard a robot turn? AudioForkChannel.wait_heard against peers that answer
ideally, by mod_audio_fork's rules, or never (issue 9, defects 3 and 13).

No sockets and no real time: the loop's clock is virtual (it jumps to the next timer whenever
nothing is ready), the far end is the simulator's peer model driven by its own 20 ms frame clock.
"""

from __future__ import annotations

import asyncio
import json
import selectors
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosedError

from voiceplat.audio.pcm import frame_bytes
from voiceplat.simulator.peer_playout import MarkRules, Playout
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.ingress.audio_fork import codec as audio_fork
from voiceplat.telephony.ingress.audio_fork.channel import KILL_SETTLE_S, AudioForkChannel
from voiceplat.telephony.marks import MARK_SLACK_S

F = 0.02


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock advances to the next timer instead of waiting for it."""

    def __init__(self) -> None:
        super().__init__(selectors.SelectSelector())
        self._now = 0.0
        real_select = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> Any:
            events = real_select(0)
            if not events and timeout is not None:
                self._now += timeout
            elif not events and timeout is None:
                raise RuntimeError("nothing scheduled: the test would hang")
            return events

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._now


def run(test: Callable[[], Awaitable[None]]) -> None:
    loop = VirtualClockLoop()
    try:
        loop.run_until_complete(test())
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


class Peer:
    """The far end: records what it gets, plays it with `Playout`, answers marks at its ticks."""

    def __init__(self, marks: MarkRules = "ideal", prebuffer: bool = False) -> None:
        self.loop = asyncio.get_running_loop()
        self.playout = Playout(marks=marks, prebuffer=prebuffer, keep_audio=True)
        self.sent: list[tuple[float, str | bytes]] = []
        self.receiver: Any = None
        self.replies: list[tuple[float, str, str]] = []
        self._clock = self.loop.create_task(self._frames())

    # Transport
    def attach(self, receiver: Any) -> None:
        self.receiver = receiver

    def send_now(self, message: str | bytes) -> bool:
        now = self.loop.time()
        self.sent.append((now, message))
        if isinstance(message, bytes):
            self.playout.push(message, now)
            return True
        data = json.loads(message)
        if data["type"] == "mark":
            self.playout.mark(data["data"]["name"], now)
        elif data["type"] == "killAudio":
            for name in self.playout.kill(now):
                self._reply(name, "cleared")
        return True

    def write_ready(self) -> bool:
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._clock.cancel()

    # The peer's frame clock
    async def _frames(self) -> None:
        k = 0
        while True:
            k += 1
            await asyncio.sleep(k * F - self.loop.time())
            for name in self.playout.tick(k * F)[1]:
                self._reply(name, "playout")

    def _reply(self, name: str, event: str) -> None:
        self.replies.append((self.loop.time(), name, event))
        self.receiver.on_message(
            json.dumps({"type": "mark", "data": {"name": name, "event": event}})
        )

    def marks_sent(self) -> list[str]:
        return [
            json.loads(m)["data"]["name"]
            for _, m in self.sent
            if isinstance(m, str) and "mark" in m
        ]

    def audio_sent(self) -> bytes:
        return b"".join(m for _, m in self.sent if isinstance(m, bytes))


def tone(ms: int) -> bytes:
    t = np.arange(ms * 8) / 8000.0
    return (3000 * np.sin(2 * np.pi * 500 * t)).astype("<i2").tobytes()


async def start(
    peer_marks: MarkRules = "ideal", prebuffer: bool = False
) -> tuple[AudioForkChannel, Peer]:
    peer = Peer(peer_marks, prebuffer)
    channel = AudioForkChannel(peer, lead_ms=200, chunk_ms=60)
    asyncio.get_running_loop().create_task(channel.run_pacer())
    return channel, peer


async def turn(channel: AudioForkChannel, ms: int) -> tuple[float, float]:
    """One robot turn of `ms` of audio; returns (the playout clock's end for it, when wait_heard
    returned). The clock's end leaves out the silence pad the channel may send after the turn."""
    _, end = channel.play(tone(ms))
    channel.mark("sentence")
    await channel.wait_heard(60.0)
    returned = asyncio.get_running_loop().time()
    # Everything went out by now; a pad, if any, went right after the turn's last chunk.
    clock_end = channel.playout.playout_end - (channel.playout.sent_ms - end) / 1000
    return clock_end, returned


def test_a_peer_that_answers_marks_ends_the_turn_when_its_mark_comes() -> None:
    async def test() -> None:
        channel, peer = await start("ideal")
        clock_end, returned = await turn(channel, 1000)
        (answered,) = [t for t, name, _ in peer.replies if name.startswith("drain")]
        assert returned == pytest.approx(answered)
        assert clock_end <= returned < clock_end + 2 * F  # the frame grid of the peer
        await channel.close()

    run(test)


def test_a_peer_that_never_answers_costs_the_slack_once_then_only_the_clock() -> None:
    async def test() -> None:
        channel, peer = await start("none")
        clock_end, returned = await turn(channel, 1000)
        assert returned == pytest.approx(clock_end + MARK_SLACK_S)  # not 60 s
        marks = len(peer.marks_sent())
        clock_end, returned = await turn(channel, 500)
        assert returned == pytest.approx(clock_end)  # known now: no more waiting for marks
        assert len(peer.marks_sent()) == marks  # nor sending them
        await channel.close()

    run(test)


def test_an_early_mark_does_not_end_the_turn_before_the_clock() -> None:
    async def test() -> None:
        channel, peer = await start("ideal")

        def answer_at_once(message: str | bytes) -> bool:
            sent = Peer.send_now(peer, message)
            if isinstance(message, str) and '"mark"' in message:
                peer._reply(json.loads(message)["data"]["name"], "playout")
            return sent

        peer.send_now = answer_at_once  # type: ignore[method-assign]
        clock_end, returned = await turn(channel, 1000)
        assert returned == pytest.approx(clock_end)
        await channel.close()

    run(test)


def test_mod_audio_fork_plays_a_turn_shorter_than_its_prebuffer_and_answers_its_mark() -> None:
    async def test() -> None:
        channel, peer = await start("module", prebuffer=True)
        clock_end, returned = await turn(channel, 100)  # under the 160 ms the module waits for
        # Without the silence pad the module would hold it until the next turn; with it, the
        # turn plays, its marks come back, and the pad is silence.
        assert peer.playout.played_total >= 100 * 16
        assert returned < clock_end + 2 * F
        assert {name for _, name, event in peer.replies if event == "playout"} == {
            "sentence",
            "drain-1",
        }
        assert peer.audio_sent()[100 * 16 :].strip(b"\0") == b""
        await channel.close()

    run(test)


def test_mod_audio_fork_end_of_a_turn_is_released_from_its_prebuffer() -> None:
    async def test() -> None:
        channel, peer = await start("module", prebuffer=True)
        for ms in (1000, 1030):  # 60 ms chunks: the last one of each would wait in the module
            await turn(channel, ms)
            assert peer.playout.held == 0 and peer.playout.buffered == 0
        assert peer.playout.played_total >= 2030 * 16
        await channel.close()

    run(test)


def test_the_peer_without_marks_but_with_a_prebuffer_plays_every_turn_to_its_end() -> None:
    async def test() -> None:
        channel, peer = await start("none", prebuffer=True)
        for ms in (1000, 1030, 1010):
            await turn(channel, ms)
            assert peer.playout.held == 0
        await channel.close()

    run(test)


def test_no_sample_of_minus_one_is_sent() -> None:
    async def test() -> None:
        channel, peer = await start("ideal")
        audio = np.full(800, -1, dtype="<i2")
        audio[::2] = 5
        channel.play(audio.tobytes())
        await channel.wait_heard(60.0)
        sent = np.frombuffer(peer.audio_sent(), dtype="<i2")
        assert not (sent == -1).any()
        assert (sent[: len(audio)] == np.where(audio == -1, 0, audio)).all()
        await channel.close()

    run(test)


def test_never_more_than_30_unanswered_marks_are_sent() -> None:
    async def test() -> None:
        channel, peer = await start("none")
        replies = [channel.mark(f"m{i}") for i in range(40)]
        channel.play(tone(100))
        await channel.wait_heard(60.0)
        assert peer.marks_sent() == [f"m{i}" for i in range(audio_fork.MAX_MARKS)]
        assert [r.result() for r in replies[audio_fork.MAX_MARKS :]] == ["unsent"] * 10
        await channel.close()

    run(test)


def test_after_killaudio_flushed_a_mark_in_use_the_clock_alone_ends_turns() -> None:
    async def test() -> None:
        channel, peer = await start("module", prebuffer=True)
        loop = asyncio.get_running_loop()
        channel.play(tone(400))
        channel.mark("s1")  # in use once the next audio goes: the lead covers it
        channel.play(tone(2000))
        await asyncio.sleep(0.3)
        assert "s1" in peer.marks_sent() and peer.playout.buffered
        killed = loop.time()
        await channel.clear()
        # The module keeps "s1" as cleared; the mark after the next turn would never come.
        clock_end, returned = await turn(channel, 700)
        assert returned == pytest.approx(clock_end)
        assert peer.marks_sent()[-1] == "s1"  # nothing sent after the kill
        # And nothing at all within KILL_SETTLE_S of the killAudio (the module flushes then).
        kill_at = next(t for t, m in peer.sent if isinstance(m, str) and "killAudio" in m)
        assert kill_at == pytest.approx(killed)
        first_after = next(t for t, m in peer.sent if t > kill_at and isinstance(m, bytes))
        assert first_after >= kill_at + KILL_SETTLE_S - 1e-9
        await channel.close()

    run(test)


def test_wait_heard_gives_up_at_its_timeout_if_the_audio_never_goes_out() -> None:
    async def test() -> None:
        channel, peer = await start("ideal")
        peer.write_ready = lambda: False  # type: ignore[method-assign]
        channel.play(frame_bytes(100) * b"\0")
        started = asyncio.get_running_loop().time()
        await channel.wait_heard(5.0)
        assert asyncio.get_running_loop().time() == pytest.approx(started + 5.0)
        await channel.close()

    run(test)


def test_a_turn_cut_by_the_caller_leaving_raises_why_the_call_ended() -> None:
    """The caller hangs up while the turn is still being sent: wait_heard must not return as if
    the turn had been heard (it was recorded as heard whole before), but raise the reason."""

    async def test() -> None:
        channel, _ = await start("ideal")
        channel.play(tone(5000))
        waiting = asyncio.ensure_future(channel.wait_heard(60.0))
        await asyncio.sleep(1.0)  # virtual time: the pacer has sent about a second of it
        assert not waiting.done()
        channel.on_closed(ConnectionClosedError(None, None))
        with pytest.raises(Hangup):
            await waiting
        assert channel.heard_ms() < 2000

    run(test)
