"""The marks a call sends to its peer, what the peer's answers tell about it, and when a turn was heard.

A mark reply confirms that the audio before it has played, but a peer may never answer marks
(mod_audio_fork before marks, other ingresses), and mod_audio_fork answers them by its own rules
(see `audio_fork`): a mark waits for the next BINARY message, and after a killAudio that flushed a
marker its replies name earlier marks and a turn's last mark is never answered. So the end of a turn
waits for the playout clock, then for its mark at most `MARK_SLACK_S` more, and marks stop being
sent once the peer is known not to answer them truly: when a slack ran out and no mark was ever
answered, or when a killAudio flushed a mark in use. The pre-buffer models (`PrebufferModel`) live
here too: which of them fits the peer shows only in how it answers marks.

Sans-I/O but for the wait itself: `PeerMarks` is told what the channel sends and receives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voiceplat.telephony.events import MarkReply
from voiceplat.telephony.ingress.audio_fork import codec as audio_fork
from voiceplat.telephony.playout_model import PrebufferModel

log = logging.getLogger(__name__)

MARK_SLACK_S = 0.5
"""How long past the playout clock the end of a turn waits for the peer to answer its mark."""


@dataclass(slots=True, eq=False)
class Mark:
    name: str
    reply: asyncio.Future[str]
    """"playout" or "cleared" as the peer answered; "unsent" if it was not sent."""
    reached: asyncio.Future[float] | None = None
    """A turn's end: set when the pacer reaches the mark, with the clock time by which the audio
    before it will have played."""
    in_use: bool = False
    """A BINARY message went after it: mod_audio_fork holds a marker for it."""

    def drop(self, now: float) -> None:
        """Taken off the queue before it was sent (a barge-in)."""
        resolve(self.reply, "cleared")
        if self.reached is not None:
            resolve(self.reached, now)


class PeerMarks:
    """The marks sent and not answered yet, whether the peer answers them truly, and what its
    pre-buffer holds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        """`clock`: the event loop's clock (the wait for a turn sleeps on it)."""
        self._clock = clock
        self._sent: dict[str, Mark] = {}  # sent, not answered
        self._trusted = True
        self._replies = 0
        # Whether the peer puts marker samples into its pre-buffer (mod_audio_fork with marks)
        # or not (a build without marks) shows only with its first mark reply, or its silence.
        self._prebuffer = PrebufferModel(count_markers=True)
        self._prebuffers = [self._prebuffer, PrebufferModel(count_markers=False)]

    def new(self, name: str, *, ends_turn: bool = False) -> Mark:
        loop = asyncio.get_running_loop()
        return Mark(name, loop.create_future(), loop.create_future() if ends_turn else None)

    def on_reply(self, reply: MarkReply) -> None:
        mark = self._sent.pop(reply.name, None)
        if mark is not None:
            if not self._replies:
                self._prebuffers = [self._prebuffer]  # it answers marks: it has markers
            self._replies += 1
            resolve(mark.reply, reply.event)

    def on_reached(self, mark: Mark, now: float, playout_end: float) -> bool:
        """The pacer reached `mark` at `now`; returns whether to send it to the peer."""
        if mark.reached is not None:
            resolve(mark.reached, max(now, playout_end))
        if not self._trusted or len(self._sent) >= audio_fork.MAX_MARKS:
            resolve(mark.reply, "unsent")  # more would be discarded by the module
            return False
        self._sent[mark.name] = mark
        for model in self._prebuffers:
            model.on_mark(mark.name)
        return True

    def pad_samples(self) -> int:
        """Silence that releases what the peer's pre-buffer holds back, whichever model fits it."""
        return max(model.pad_samples() for model in self._prebuffers)

    def on_binary(self, samples: int) -> None:
        """A BINARY message of `samples` went to the peer."""
        for model in self._prebuffers:
            if model is not self._prebuffer:
                model.on_binary(samples)
        for name in self._prebuffer.on_binary(samples):  # marks now in use at the module
            sent = self._sent.get(name)
            if sent is not None:
                sent.in_use = True

    def on_kill_audio(self) -> None:
        """The peer is told to flush its buffer: every mark sent is cleared."""
        held = self._prebuffer.held_marks
        if any(m.in_use and m.name not in held for m in self._sent.values()):
            # The module keeps this mark's name, but its marker goes with the flushed audio:
            # every later reply would name an earlier mark (lws_glue.cpp dub_speech_frame).
            self._distrust("killAudio flushed a mark in use")
        for mark in self._sent.values():
            resolve(mark.reply, "cleared")
        self._sent.clear()
        for model in self._prebuffers:
            model.inventory.clear()  # the module empties its inventory on killAudio

    async def wait_heard(self, mark: Mark, ended: asyncio.Future[None]) -> None:
        """Waits until the turn ending at `mark` has been heard: the playout clock, then the
        peer's answer for at most MARK_SLACK_S. Returns at once if `ended` (the channel closed)
        comes before the pacer reaches the mark."""
        assert mark.reached is not None
        await asyncio.wait((mark.reached, ended), return_when=asyncio.FIRST_COMPLETED)
        if not mark.reached.done():
            return  # the channel closed before the audio went out
        heard_at = mark.reached.result()
        await asyncio.sleep(max(0.0, heard_at - self._clock()))
        if mark.reply.done():
            return
        try:
            async with asyncio.timeout_at(heard_at + MARK_SLACK_S):
                await asyncio.shield(mark.reply)
        except TimeoutError:
            if not self._replies:
                self._distrust(f"no mark answered within {MARK_SLACK_S:g} s")
                # Nor does it put markers into its pre-buffer, if it has one.
                self._prebuffers = [m for m in self._prebuffers if not m.count_markers]

    def _distrust(self, why: str) -> None:
        if self._trusted:
            self._trusted = False
            log.info("marks are not answered truly (%s): the playout clock alone decides", why)


def resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
