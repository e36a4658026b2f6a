"""The caller's keys (DTMF) in every mode: recorded, mapped keys act, the others go to the model.

Every key goes into the call's record at once: the record's `dtmf` (the keys so far, in order) and
a `dtmf` event (its time, how it came, what it does). A key mapped in config.json's `dtmf` acts:
"hangup" ends the call (the robot hangs up), "repeat" says the robot's last turn again, a transfer
hands the caller to a person (transfer.py). Keys without an action are collected and, once
`dtmf_inter_digit_ms` passes with no further key, handed to the mode as one caller message,
"[DTMF 1 2 3]" (pipeline: a caller turn the LLM answers; realtime: a user item and a response;
llm_script: recorded only). An action drops the keys collected before it (they stay recorded).

A key is the caller taking the floor, like speech: what the robot is saying is cut first. A turn
that must be heard (a non-interruptible greeting, the transfer phrase and the transfer itself) is
waited for instead, and while the robot says a final goodbye, keys only go into the record. Actions
run one after another, in the order the keys came.

What an action does is the mode's (`KeyActions`): `SpeakerKeyActions` for the modes whose robot
turns are the session's speaker, realtime has its own. The pause is measured on an injected clock
and sleep, so the rule is tested without waiting.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from voiceplat.config import DtmfAction, RobotConfig, TransferAction
from voiceplat.sessions.ending import CallEnded
from voiceplat.storage.recorder import CallLog
from voiceplat.storage.records import TurnRecord
from voiceplat.telephony.events import DtmfIn

if TYPE_CHECKING:
    from voiceplat.sessions.base import Session

Spawn = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]


class KeySession(Protocol):
    """The session as the keys see it: its record, its speaker, the no-input count."""

    config: RobotConfig
    call: CallLog
    speaker: asyncio.Task[None] | None
    last_activity: float
    """Clock time of the last speech or key, either side's: the no-input timer counts from it."""
    reprompts: int

    def saying_goodbye(self) -> bool: ...

    def speaker_protected(self) -> bool: ...


class KeyActions(Protocol):
    """What a key does in a mode."""

    async def interrupt(self) -> None:
        """Cuts what the robot is saying (an interruptible turn), as caller speech would."""
        ...

    async def repeat_last(self) -> None: ...

    async def keyed_digits(self, text: str) -> None:
        """The collected keys as one caller message, e.g. "[DTMF 1 2 3]"."""
        ...

    async def transfer(self, target: str) -> None: ...


def action_name(action: DtmfAction | None) -> str | None:
    return "transfer" if isinstance(action, TransferAction) else action


def keyed_message(digits: list[str]) -> str:
    return f"[DTMF {' '.join(digits)}]"


class CallerKeys:
    """One call's keys. `on_dtmf` is the channel's DTMF handler; `run` lives as long as the call."""

    def __init__(
        self,
        host: KeySession,
        actions: KeyActions,
        *,
        spawn: Spawn,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`spawn` runs an action with the call's tasks (a CallEnded from it ends the call)."""
        self._host = host
        self._do = actions
        self._actions = host.config.dtmf
        self._inter_digit_s = host.config.dtmf_inter_digit_ms / 1000
        self._spawn = spawn
        self._clock = clock
        self._sleep = sleep
        self.pressed = ""
        """Every key of the call, in order (what the record's `dtmf` says)."""
        self._collected: list[str] = []
        self._last_key = 0.0
        self._have_keys = asyncio.Event()
        self._acting: asyncio.Task[None] | None = None

    def on_dtmf(self, key: DtmfIn) -> None:
        """Records a key and acts on it; called in the channel's reader, so it never waits."""
        host, call = self._host, self._host.call
        action = self._actions.get(key.digit)
        self.pressed += key.digit
        call.update(dtmf=self.pressed)
        target = self._target(action)
        call.event("dtmf", digit=key.digit, method=key.method, action=action_name(action))
        self._last_key = host.last_activity = self._clock()
        host.reprompts = 0
        if action is None:
            self._collected.append(key.digit)
            self._have_keys.set()
            return
        if self._collected:
            call.event("dtmf_dropped", digits="".join(self._collected), reason=f"key {key.digit}")
            self._collected.clear()
            self._have_keys.clear()
        if action == "hangup":
            self._spawn(_end_call("dtmf_hangup"))  # at once: no turn is waited for
        elif action == "repeat":
            self._act(self._do.repeat_last)
        elif target is not None:
            self._act(lambda: self._do.transfer(target))

    def _target(self, action: DtmfAction | None) -> str | None:
        if not isinstance(action, TransferAction):
            return None
        return action.transfer or self._host.config.transfer.target

    async def run(self) -> None:
        """Hands the collected keys over once no key came for `dtmf_inter_digit_ms`."""
        while True:
            await self._have_keys.wait()
            wait = self._last_key + self._inter_digit_s - self._clock()
            if wait > 0:
                await self._sleep(wait)
                continue
            text = keyed_message(self._collected)
            self._collected = []
            self._have_keys.clear()
            self._act(functools.partial(self._do.keyed_digits, text))

    def _act(self, work: Callable[[], Awaitable[None]]) -> None:
        """Runs `work` after the actions before it, once the robot has the floor to give."""
        self._acting = self._spawn(self._when_free(self._acting, work))

    async def _when_free(
        self, previous: asyncio.Task[None] | None, work: Callable[[], Awaitable[None]]
    ) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        host = self._host
        while host.speaker_protected() and not host.saying_goodbye():
            assert host.speaker is not None
            await asyncio.wait({host.speaker})  # a turn that must be heard: after it
        if host.saying_goodbye():
            host.call.event("dtmf_ignored", reason="the robot is saying goodbye")
            return
        await self._do.interrupt()
        await work()


class SpeakerKeyActions:
    """Keys in the modes whose robot turns are the session's speaker (pipeline, llm_script)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def interrupt(self) -> None:
        session = self.session
        if session.robot_talking():
            await session.barge_in()
        elif session.speaker is not None:
            session.speaker.cancel()  # an answer still being thought of

    async def repeat_last(self) -> None:
        turn = last_robot_turn(self.session.call)
        if turn is None:
            self.session.call.event("dtmf_ignored", reason="the robot has said nothing yet")
            return
        self.session.start_speaker(lambda: self.session.speak([turn.text]))

    async def keyed_digits(self, text: str) -> None:
        mode = self.session.mode
        self.session.call.event(
            "dtmf_unanswered", text=text, reason=f"{mode} gives keys to no model"
        )

    async def transfer(self, target: str) -> None:
        session = self.session
        session.start_speaker(lambda: session.transfer(target, by="dtmf"), protected=True)


def last_robot_turn(call: CallLog) -> TurnRecord | None:
    """The robot's last turn that said something (a turn the key just cut is recorded already)."""
    return next((t for t in reversed(call.turns) if t.role == "robot" and t.text), None)


async def _end_call(reason: str) -> None:
    raise CallEnded(reason)
