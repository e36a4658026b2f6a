"""The no-input timer of every mode: a caller who stays silent is asked again, then let go.

The timer only decides when; what the robot says, and how (its own speaker, the realtime model),
is the mode's. Time comes from an injected clock and sleep, so the rule is tested without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from voiceplat.config import NoInputSettings


class NoInputHost(Protocol):
    """What the timer watches on the session (`idle` and `last_activity` are Session's)."""

    idle: asyncio.Event
    """Set while no robot turn is running: silence counts only then."""
    last_activity: float
    """Clock time of the last speech, either side's: silence counts from there."""
    reprompts: int
    """Reprompts in a row; the session sets it back to 0 when the caller speaks."""


class NoInputTimer:
    """After `reprompt_after_s` of silence: `reprompt`, at most `max_reprompts` times in a row;
    the next time, `goodbye` (which ends the call, at once or once said)."""

    def __init__(
        self,
        host: NoInputHost,
        settings: NoInputSettings,
        *,
        clock: Callable[[], float],
        paused: Callable[[], bool],
        reprompt: Callable[[], Awaitable[None]],
        goodbye: Callable[[], Awaitable[None]],
        record: Callable[..., None],
        poll_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`paused`: silence does not end now (the caller is speaking, a phrase is on its way);
        `record(name, **data)`: the call's event log; `poll_s`: how soon to look again when the
        deadline has passed but the timer is paused."""
        self._host = host
        self._settings = settings
        self._clock = clock
        self._paused = paused
        self._reprompt = reprompt
        self._goodbye = goodbye
        self._record = record
        self._poll_s = poll_s
        self._sleep = sleep

    async def run(self) -> None:
        """Runs for the whole call (cancelled with it); `goodbye`'s CallEnded passes through."""
        host, settings = self._host, self._settings
        while True:
            await host.idle.wait()
            deadline = host.last_activity + settings.reprompt_after_s
            now = self._clock()
            if now < deadline or self._paused():
                await self._sleep(max(deadline - now, self._poll_s))
                continue
            host.reprompts += 1
            self._record("no_input", count=host.reprompts)
            if host.reprompts > settings.max_reprompts:
                await self._goodbye()
            else:
                await self._reprompt()


class SpeakingHost(NoInputHost, Protocol):
    """A session that says its reprompts and goodbye with its own speaker (the VAD modes)."""

    def start_speaker(
        self, work: Callable[[], Awaitable[object]], *, protected: bool = ..., final: bool = ...
    ) -> bool: ...

    def speak(
        self, sentences: list[str], *, interruptible: bool = ..., ends_call: str | None = ...
    ) -> Awaitable[object]: ...


def spoken_timer(
    host: SpeakingHost,
    settings: NoInputSettings,
    *,
    clock: Callable[[], float],
    paused: Callable[[], bool],
    record: Callable[..., None],
    poll_s: float,
) -> NoInputTimer:
    """The timer of a mode whose speaker says `reprompt_text`, then the final `goodbye_text`."""

    async def reprompt() -> None:
        host.start_speaker(lambda: host.speak([settings.reprompt_text]))

    async def goodbye() -> None:
        host.start_speaker(
            lambda: host.speak([settings.goodbye_text], interruptible=False, ends_call="no_input"),
            final=True,
        )

    return NoInputTimer(
        host,
        settings,
        clock=clock,
        paused=paused,
        reprompt=reprompt,
        goodbye=goodbye,
        record=record,
        poll_s=poll_s,
    )
