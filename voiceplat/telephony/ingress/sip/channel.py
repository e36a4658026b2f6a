"""A SIP call as the session sees it: the `CallChannel` of the embedded SIP endpoint.

Robot audio goes into the call's `PlayoutBuffer`, which PJSIP's media clock drains one 20 ms frame
a tick: the clock paces it, so there is no pacer here, and what the clock has taken is what the
caller has heard (less the network and the phone's jitter buffer, a few tens of ms). SIP has no
marks: a mark is answered when the clock has taken the audio queued before it.

Everything here runs in the event loop. What PJSIP reports (audio, keys, the end of the call, the
answers to a REFER) arrives through the call's `LoopInbox`; what the channel asks of PJSIP
(hang up, REFER) runs in the PJSIP thread (`SipControl`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from voiceplat.telephony.channel import AudioHandler, DtmfHandler, Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, DtmfIn, TransferResult
from voiceplat.telephony.inbound import InboundAudio
from voiceplat.telephony.ingress.sip.media import SAMPLE_RATE, LoopInbox, PlayoutBuffer

BYTES_PER_MS = SAMPLE_RATE * 2 / 1000
HANGUP_TAIL_S = 0.3
"""Silence after the robot's last words before its BYE: the phone's jitter buffer plays them out."""


@dataclass
class SipControl:
    """What the channel may ask of its call; each runs in the PJSIP thread and returns once sent."""

    hangup: Callable[[], Awaitable[None]]
    refer: Callable[[str], Awaitable[None]]
    transfer_timeout_s: float = 15.0


class SipChannel:
    def __init__(
        self,
        metadata: CallMetadata,
        control: SipControl,
        inbox: LoopInbox | None = None,
        *,
        hangup_tail_s: float = HANGUP_TAIL_S,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._metadata = metadata
        self._control = control
        self._inbound = InboundAudio()
        self._dtmf_handler: DtmfHandler | None = None
        self._dtmf_pending: list[DtmfIn] = []
        self._ended: asyncio.Future[None] = loop.create_future()
        self._hung_up = False
        self.closed = False
        inbox = inbox or LoopInbox(loop)
        # Made here, before PJSIP has the call's port: audio the session queues at once (the
        # greeting) waits in it until the media clock starts taking frames.
        self.playout = PlayoutBuffer(lambda played: inbox.post(self.on_played, played))
        self._hangup_tail_s = hangup_tail_s
        self._waiters: list[tuple[int, int, asyncio.Future[str]]] = []
        self._order = itertools.count()
        self._transfer: asyncio.Future[TransferResult] | None = None
        self._transfer_progress = False
        self.end_cause: str | None = None

    # -- what PJSIP reports (through the call's LoopInbox) ---------------------------------
    def on_audio(self, data: bytes) -> None:
        self._inbound.push(AudioIn(data))

    def on_dtmf_digit(self, event: DtmfIn) -> None:
        if self._dtmf_handler is None:
            self._dtmf_pending.append(event)
        else:
            self._dtmf_handler(event)

    def on_played(self, played: int) -> None:
        """The media clock has taken robot audio up to `played` bytes."""
        waiters = self._waiters
        while waiters and waiters[0][0] <= played:
            _, _, future = waiters.pop(0)
            if not future.done():
                future.set_result("playout")
        self._ask_next_notice()

    def on_transfer_status(self, status: int, reason: str, final: bool) -> None:
        future = self._transfer
        if future is None or future.done():
            return
        if 200 <= status < 300 and final:
            future.set_result(TransferResult(accepted=True, status=status, reason=reason))
        elif status < 300:
            self._transfer_progress = True  # REFER accepted (202), NOTIFY 1xx: under way
        elif status >= 300:
            future.set_result(TransferResult(accepted=False, status=status, reason=reason))

    def on_disconnected(self, cause: str = "caller_hangup") -> None:
        """The call is over at the SIP level (the caller's BYE, CANCEL, an RTP timeout)."""
        self._hung_up = True
        self.end_cause = self.end_cause or cause
        self._inbound.fail(Hangup(self.end_cause))
        if self._transfer is not None and not self._transfer.done():
            self._transfer.set_result(TransferResult(accepted=False, reason="the call ended"))
        self._set_closed()

    # -- inbound -----------------------------------------------------------------------------
    async def metadata(self) -> CallMetadata:
        return self._metadata

    async def audio(self) -> AudioIn:
        return await self._inbound.audio()

    async def receive_audio(self, handler: AudioHandler) -> None:
        await self._inbound.receive(handler)

    def on_dtmf(self, handler: DtmfHandler) -> None:
        self._dtmf_handler = handler
        pending, self._dtmf_pending = self._dtmf_pending, []
        for event in pending:
            handler(event)

    # -- outbound ----------------------------------------------------------------------------
    def _position(self) -> int:
        return self.playout.played + self.playout.queued

    @property
    def queued_ms(self) -> float:
        return self._position() / BYTES_PER_MS

    def heard_ms(self) -> float:
        return self.playout.played / BYTES_PER_MS

    def speaking(self) -> bool:
        return self.playout.queued > 0

    def play(self, data: bytes) -> tuple[float, float]:
        start = self.queued_ms
        if data and not self.closed:
            self.playout.write(data[: len(data) - len(data) % 2])
        return start, self.queued_ms

    def mark(self, name: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        position = self._position()
        if self.playout.played >= position:
            future.set_result("playout")
            return future
        bisect.insort(self._waiters, (position, next(self._order), future))
        self._ask_next_notice()
        return future

    def _ask_next_notice(self) -> None:
        self.playout.want_notice(self._waiters[0][0] if self._waiters else None)

    async def clear(self) -> float:
        self.playout.flush()
        for _, _, future in self._waiters:
            if not future.done():
                future.set_result("cleared")
        self._waiters.clear()
        self._ask_next_notice()
        return self.heard_ms()

    async def wait_heard(self, timeout_s: float) -> None:
        """Waits until the media clock has taken everything queued so far; raises Hangup if the
        call ended first."""
        heard = self.mark("heard")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                waits: set[asyncio.Future[Any]] = {heard, self._ended}
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not heard.done() or heard.result() != "playout":
            if self._ended.done():
                raise Hangup(self.end_cause or "caller_hangup")

    async def transfer(self, target: str) -> TransferResult:
        """Blind transfer with REFER; returns once the transferee's NOTIFY says how it went."""
        if self.closed:
            return TransferResult(accepted=False, reason="the call has ended")
        target = self.refer_uri(target)
        loop = asyncio.get_running_loop()
        self._transfer = future = loop.create_future()
        self._transfer_progress = False
        try:
            await self._control.refer(target)
        except Exception as exc:  # e.g. a target PJSIP cannot parse
            return TransferResult(accepted=False, reason=f"REFER not sent: {exc}")
        try:
            async with asyncio.timeout(self._control.transfer_timeout_s):
                return await future
        except TimeoutError:
            timeout = self._control.transfer_timeout_s
            if self._transfer_progress:
                # The PBX took the REFER and is ringing the target (some report the result
                # only when the target answers): the caller is already in its hands.
                return TransferResult(
                    accepted=True, reason=f"in progress after {timeout:g} s (REFER accepted)"
                )
            return TransferResult(accepted=False, reason=f"no answer to REFER in {timeout:g} s")
        finally:
            self._transfer = None

    def refer_uri(self, target: str) -> str:
        """A REFER needs a URI: a bare extension ("1000") is taken as one on the calling PBX."""
        if ":" in target.split("@", 1)[0]:
            return target  # sip:, sips:, tel:
        host = self._metadata.extra.get("source_address")
        if "@" in target or not host:
            return f"sip:{target}"
        return f"sip:{target}@[{host}]" if ":" in host else f"sip:{target}@{host}"

    async def disconnect(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Hangs up (BYE, or a final answer before the call was confirmed) unless the peer did."""
        if not self._hung_up:
            self._hung_up = True
            if self.playout.played and self._hangup_tail_s:
                # The phone's jitter buffer still holds the last ~100 ms of what the clock took;
                # a BYE now would cut the goodbye's end. (Bounded: a shutdown cancel skips it.)
                await asyncio.sleep(self._hangup_tail_s)
            with contextlib.suppress(Exception):
                await self._control.hangup()
        self.playout.flush()
        self._set_closed()

    def _set_closed(self) -> None:
        self.closed = True
        if not self._ended.done():
            self._ended.set_result(None)

    async def run_pacer(self) -> None:
        """PJSIP's clock paces the audio; this only lives as long as the call."""
        await asyncio.shield(self._ended)
