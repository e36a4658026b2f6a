"""`RecordingChannel`: any `CallChannel` with a tape recorder on it.

It forwards every method and property to the channel it wraps and taps the audio on the way:
caller audio from `audio()` / `receive_audio()` onto the tape's left track, robot audio given to
`play()` onto the right one, `clear()` (a barge-in) cuts the robot track at what the caller heard,
and `disconnect()` / `close()` stop the tape at what had been heard by then. Taking audio is a
list append: nothing here waits or does I/O on the audio path.
"""

from __future__ import annotations

import asyncio
from typing import Any

from voiceplat.recording.tape import Tape
from voiceplat.telephony.channel import AudioHandler, CallChannel, DtmfHandler
from voiceplat.telephony.events import AudioIn, CallMetadata, TransferResult


class RecordingChannel:
    def __init__(self, channel: CallChannel, tape: Tape | None = None) -> None:
        self.inner = channel
        self.tape = tape or Tape()

    def __getattr__(self, name: str) -> Any:
        # What an ingress offers beyond the protocol (a SIP channel's end cause...) stays reachable.
        return getattr(self.inner, name)

    @property
    def closed(self) -> bool:
        return self.inner.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self.inner.closed = value

    # -- inbound -------------------------------------------------------------------------------
    async def metadata(self) -> CallMetadata:
        return await self.inner.metadata()

    async def audio(self) -> AudioIn:
        audio = await self.inner.audio()
        self.tape.caller(audio.data)
        return audio

    async def receive_audio(self, handler: AudioHandler) -> None:
        tape = self.tape

        def taped(audio: AudioIn) -> Any:
            tape.caller(audio.data)
            return handler(audio)

        await self.inner.receive_audio(taped)

    def on_dtmf(self, handler: DtmfHandler) -> None:
        self.inner.on_dtmf(handler)

    # -- outbound ------------------------------------------------------------------------------
    @property
    def queued_ms(self) -> float:
        return self.inner.queued_ms

    def heard_ms(self) -> float:
        return self.inner.heard_ms()

    def speaking(self) -> bool:
        return self.inner.speaking()

    def play(self, data: bytes) -> tuple[float, float]:
        start, end = self.inner.play(data)
        self.tape.robot(data, start)
        return start, end

    def mark(self, name: str) -> asyncio.Future[str]:
        return self.inner.mark(name)

    async def clear(self) -> float:
        heard = await self.inner.clear()
        self.tape.cut(heard)
        return heard

    async def wait_heard(self, timeout_s: float) -> None:
        await self.inner.wait_heard(timeout_s)

    async def transfer(self, target: str) -> TransferResult:
        return await self.inner.transfer(target)

    async def disconnect(self) -> None:
        self._stop_tape()
        await self.inner.disconnect()

    async def close(self) -> None:
        self._stop_tape()
        await self.inner.close()

    async def run_pacer(self) -> None:
        await self.inner.run_pacer()

    def _stop_tape(self) -> None:
        if not self.tape.stopped:
            self.tape.stop(self.inner.heard_ms())
