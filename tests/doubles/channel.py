"""`FakeChannel`: a `CallChannel` with no protocol under it, for driving a whole session in a test.

It keeps what the robot did (audio played, split into sentences by the marks a robot turn queues
after each sentence; flushes; transfers asked for; hang-ups) and lets the test act as the caller:
push audio, press keys, hang up, and answer transfers as a PBX would. The caller hears audio the
moment it is queued, unless `hold_playout()`: then a turn waits until `release_playout()`, so a
test can act while the robot is "still talking". Nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from voiceplat.telephony.channel import AudioHandler, DtmfHandler, Hangup
from voiceplat.telephony.events import AudioIn, CallMetadata, DtmfIn, DtmfMethod, TransferResult

BYTES_PER_MS = 16  # 8 kHz s16le mono


class FakeChannel:
    def __init__(
        self,
        metadata: CallMetadata | None = None,
        *,
        transfer_answer: TransferResult | None = None,
    ) -> None:
        self._metadata = metadata or CallMetadata(call_id="fake-call", source="sip")
        self.transfer_answer = transfer_answer or TransferResult(accepted=True)
        """What `transfer` answers; a test may change it between transfers."""
        self.closed = False
        self.disconnected = False
        self.transfers: list[str] = []
        self.cleared = 0
        self.played = bytearray()
        self.sentences: list[bytes] = []
        """The audio of each sentence queued (what was played between two marks)."""
        self.sentence_queued = asyncio.Event()
        """Set each time a sentence is complete (the test clears it to wait for the next)."""
        self.transfer_asked = asyncio.Event()
        self.transfer_gate: asyncio.Event | None = None
        """When set to an Event, `transfer` answers only once it is set (a slow PBX)."""
        self._sentence = bytearray()
        self._inbox: asyncio.Queue[AudioIn | BaseException] = asyncio.Queue()
        self._dtmf: DtmfHandler | None = None
        self._early_keys: list[DtmfIn] = []
        self._ended = asyncio.Event()
        self._released = asyncio.Event()
        self._released.set()

    # -- the caller's side (what the test does) --------------------------------------------
    def say(self, data: bytes) -> None:
        self._inbox.put_nowait(AudioIn(data))

    def press(self, digits: str, method: DtmfMethod = "rfc4733") -> None:
        """Presses the keys one after another, at once (no pause between them)."""
        for digit in digits:
            key = DtmfIn(digit, method)
            if self._dtmf is None:
                self._early_keys.append(key)
            else:
                self._dtmf(key)

    def hang_up(self) -> None:
        self._inbox.put_nowait(Hangup())

    def hold_playout(self) -> None:
        self._released.clear()

    def release_playout(self) -> None:
        self._released.set()

    # -- CallChannel: inbound --------------------------------------------------------------
    async def metadata(self) -> CallMetadata:
        return self._metadata

    async def audio(self) -> AudioIn:
        item = await self._inbox.get()
        if isinstance(item, BaseException):
            self._inbox.put_nowait(item)  # every later read ends the same way
            raise item
        return item

    async def receive_audio(self, handler: AudioHandler) -> None:
        while True:
            work: Coroutine[Any, Any, None] | None = handler(await self.audio())
            if work is not None:
                await work

    def on_dtmf(self, handler: DtmfHandler) -> None:
        self._dtmf = handler
        early, self._early_keys = self._early_keys, []
        for key in early:
            handler(key)

    # -- CallChannel: outbound -------------------------------------------------------------
    @property
    def queued_ms(self) -> float:
        return len(self.played) / BYTES_PER_MS

    def heard_ms(self) -> float:
        return self.queued_ms

    def speaking(self) -> bool:
        return not self._released.is_set()

    def play(self, data: bytes) -> tuple[float, float]:
        start = self.queued_ms
        self.played += data
        self._sentence += data
        return start, self.queued_ms

    def mark(self, name: str) -> asyncio.Future[str]:
        reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if name.endswith("s0"):  # a turn's opening mark: no sentence ends there
            reply.set_result("playout")
            return reply
        self.sentences.append(bytes(self._sentence))
        self._sentence.clear()
        self.sentence_queued.set()
        reply.set_result("playout")
        return reply

    async def clear(self) -> float:
        self.cleared += 1
        self._sentence.clear()
        return self.heard_ms()

    async def wait_heard(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self._released.wait()

    async def transfer(self, target: str) -> TransferResult:
        self.transfers.append(target)
        self.transfer_asked.set()
        if self.transfer_gate is not None:
            await self.transfer_gate.wait()
        return self.transfer_answer

    async def disconnect(self) -> None:
        self.disconnected = True
        await self.close()

    async def close(self) -> None:
        self.closed = True
        self._ended.set()

    async def run_pacer(self) -> None:
        await self._ended.wait()
