"""The rules of the caller's keys (sessions/dtmf.py) on a fake clock: what is recorded, which keys
make one message, what an action does to the keys before it, and when an action waits.

The session is a stand-in that records what it was asked to do; time moves only when the keys'
timer sleeps, so nothing here waits for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from voiceplat.config import RobotConfig
from voiceplat.sessions.dtmf import CallerKeys
from voiceplat.sessions.ending import CallEnded
from voiceplat.storage.recorder import CallLog
from voiceplat.telephony.events import DtmfIn

HANG_S = 60.0


class FakeCall:
    def __init__(self, changed: asyncio.Event) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.dtmf: list[str] = []
        self._changed = changed

    def event(self, name: str, **data: Any) -> None:
        self.events.append((name, data))
        self._changed.set()

    def update(self, **fields: Any) -> None:
        self.dtmf.append(fields["dtmf"])

    def named(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]


class Host:
    """A session as the keys see it, and its actions, on a clock moved by the timer's sleeps."""

    def __init__(self, **config: Any) -> None:
        self.config = RobotConfig(**{"dtmf_inter_digit_ms": 1500, **config})
        self.changed = asyncio.Event()
        """Set whenever something is recorded or done."""
        self.record = FakeCall(self.changed)
        self.call = cast(CallLog, self.record)
        self.speaker: asyncio.Task[None] | None = None
        self.last_activity = 0.0
        self.reprompts = 2
        self.goodbye = False
        self.protected = False
        self.now = 0.0
        self.done: list[tuple[float, str]] = []
        """(clock time, what the session was asked to do)."""
        self.presses: dict[float, str] = {}
        """Keys the caller presses at a clock time, as the clock passes it."""
        self.keys = CallerKeys(
            self, self, spawn=asyncio.create_task, clock=self.clock, sleep=self.sleep
        )

    # -- the session -----------------------------------------------------------------------
    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        target = self.now + seconds
        for at in sorted(t for t in self.presses if t <= target):
            self.now = at
            self.press(self.presses.pop(at))
        self.now = target

    def press(self, digits: str) -> None:
        for digit in digits:
            self.keys.on_dtmf(DtmfIn(digit))

    def saying_goodbye(self) -> bool:
        return self.goodbye

    def speaker_protected(self) -> bool:
        return self.protected and self.speaker is not None and not self.speaker.done()

    # -- the actions -------------------------------------------------------------------------
    async def interrupt(self) -> None:
        self.did("interrupt")

    async def repeat_last(self) -> None:
        self.did("repeat")

    async def keyed_digits(self, text: str) -> None:
        self.did(text)

    async def transfer(self, target: str) -> None:
        self.did(f"transfer {target}")

    def did(self, what: str) -> None:
        self.done.append((self.now, what))
        self.changed.set()

    async def until(self, condition: Callable[[], object]) -> None:
        """Waits, bounded (only a hang reaches the bound), until `condition` holds."""
        async with asyncio.timeout(HANG_S):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def until_done(self, count: int) -> None:
        """Runs the timer until `count` things were done."""
        timer = asyncio.create_task(self.keys.run())
        try:
            await self.until(lambda: len(self.done) >= count)
        finally:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)


async def test_keys_within_the_pause_are_one_message_and_the_pause_counts_from_the_last() -> None:
    host = Host()
    host.press("1")
    host.presses = {1.0: "2", 2.5: "3"}  # each within 1.5 s of the one before
    await host.until_done(2)
    assert host.done == [(4.0, "interrupt"), (4.0, "[DTMF 1 2 3]")]
    host.now = 10.0
    host.press("4")
    await host.until_done(4)
    assert host.done[2:] == [(11.5, "interrupt"), (11.5, "[DTMF 4]")]


async def test_every_key_is_recorded_and_counts_as_the_caller_speaking() -> None:
    host = Host(dtmf={"#": "hangup"})
    host.now = 5.0
    host.keys.on_dtmf(DtmfIn("1", "sip_info"))
    host.keys.on_dtmf(DtmfIn("2"))
    assert host.record.dtmf == ["1", "12"]
    assert host.record.named("dtmf") == [
        {"digit": "1", "method": "sip_info", "action": None},
        {"digit": "2", "method": "rfc4733", "action": None},
    ]
    assert (host.last_activity, host.reprompts) == (5.0, 0)  # no reprompt while keys come


async def test_an_action_drops_the_keys_before_it_and_runs_at_once() -> None:
    host = Host(dtmf={"9": "repeat"})
    host.press("129")
    await host.until_done(2)
    assert host.done == [(0.0, "interrupt"), (0.0, "repeat")]
    assert host.record.named("dtmf_dropped") == [{"digits": "12", "reason": "key 9"}]
    assert host.keys.pressed == "129"


async def test_a_transfer_key_goes_to_its_target_or_to_transfer_target() -> None:
    host = Host(
        dtmf={"0": {"transfer": "sip:operator@pbx"}, "*": "transfer"},
        transfer={"target": "sip:desk@pbx"},
    )
    host.press("0*")
    await host.until_done(4)
    assert [what for _, what in host.done] == [
        "interrupt",
        "transfer sip:operator@pbx",
        "interrupt",
        "transfer sip:desk@pbx",
    ]


async def test_hangup_ends_the_call_from_a_task_of_the_call() -> None:
    host = Host(dtmf={"#": "hangup"})
    spawned: list[asyncio.Task[None]] = []

    def spawn(work: Any) -> asyncio.Task[None]:
        spawned.append(asyncio.create_task(work))
        return spawned[-1]

    host.keys = CallerKeys(host, host, spawn=spawn, clock=host.clock, sleep=host.sleep)
    host.press("#")
    (task,) = spawned
    async with asyncio.timeout(HANG_S):
        await asyncio.wait({task})
    error = task.exception()
    assert isinstance(error, CallEnded) and error.reason == "dtmf_hangup"
    assert host.done == []  # nothing is said or cut first: the robot hangs up


async def test_an_action_waits_for_a_turn_that_must_be_heard() -> None:
    host = Host(dtmf={"9": "repeat"})
    heard = asyncio.Event()

    async def greeting() -> None:
        await heard.wait()

    host.speaker = asyncio.create_task(greeting())
    host.protected = True
    host.press("9")
    for _ in range(20):  # the action has every chance to run; it must not
        await asyncio.sleep(0)  # loop turns, not time
    assert host.done == []
    heard.set()
    await host.until_done(2)
    assert host.done == [(0.0, "interrupt"), (0.0, "repeat")]


@pytest.mark.parametrize("digits", ["9", "1"])
async def test_during_a_goodbye_keys_only_go_into_the_record(digits: str) -> None:
    host = Host(dtmf={"9": "repeat"})
    host.goodbye = True
    host.press(digits)
    timer = asyncio.create_task(host.keys.run())
    await host.until(lambda: host.record.named("dtmf_ignored"))
    timer.cancel()
    assert host.done == []
    assert host.record.named("dtmf_ignored") == [{"reason": "the robot is saying goodbye"}]
    assert host.record.dtmf == [digits]
