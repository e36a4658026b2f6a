"""A robot turn's audio on its way to the caller, and the wait until the caller has heard it.

Text goes through the robot's TTS, is resampled to the call's 8 kHz and queued on the channel; each
sentence gets its place on the playout clock and a mark, which is how the turn later knows what the
caller heard of it. Which sentences to say, and what to do when this fails, is the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from voiceplat.audio.resample import StreamResampler
from voiceplat.providers.base import TTS
from voiceplat.sessions.timeouts import session_timeout, with_gap_timeout
from voiceplat.sessions.turn import RobotTurn, SpokenSentence
from voiceplat.storage.recorder import CallLog
from voiceplat.telephony.channel import CallChannel

HEARD_TIMEOUT_S = 60.0
FINAL_HEARD_SLACK_S = 1.0
"""A final turn waits for the caller to hear it at most this long after the playout clock says
all its audio has played (a peer that never answers marks must not hold the call open)."""


class TurnAudio:
    def __init__(
        self,
        channel: CallChannel,
        call: CallLog,
        *,
        tts: Callable[[], TTS],
        clock: Callable[[], float],
    ) -> None:
        """`tts`: the robot's TTS, looked up only when a turn is synthesised (a mode may have none)."""
        self._channel = channel
        self._call = call
        self._tts = tts
        self._clock = clock

    async def synthesize(self, turn: RobotTurn, text: str) -> None:
        """Synthesises `text` and queues it as the turn's next sentence."""
        tts = self._tts()
        asked = self._clock()
        resampler: StreamResampler | None = None
        start = self._channel.queued_ms
        stream = with_gap_timeout(tts.synthesize(text), session_timeout(tts), "TTS")
        async for chunk in stream:
            if resampler is None:
                resampler = StreamResampler(chunk.rate, 8000)
                if turn.tts_ttfb_ms is None:
                    turn.tts_ttfb_ms = (self._clock() - asked) * 1000
            self.queue(turn, resampler.process(chunk.data), None)
        if resampler is not None:
            self.queue(turn, resampler.flush(), None)
        turn.sentences.append(SpokenSentence(text, start, self._channel.queued_ms))
        self._channel.mark(f"t{turn.idx}s{len(turn.sentences)}")

    def queue(self, turn: RobotTurn, data: bytes, text: str | None) -> None:
        """Queues 8 kHz audio of the turn; with `text`, the audio is a whole sentence."""
        if turn.first_audio_at is None and data:
            turn.first_audio_at = self._clock()
            if turn.user_speech_ended is not None:
                turn.v2v_ms = (turn.first_audio_at - turn.user_speech_ended) * 1000
            self._call.event("tts_first_audio", turn=turn.idx, v2v_ms=turn.v2v_ms)
        start, end = self._channel.play(data)
        if text is not None:
            turn.sentences.append(SpokenSentence(text, start, end))
            self._channel.mark(f"t{turn.idx}s{len(turn.sentences)}")

    async def wait_heard(self, *, bounded: bool) -> None:
        """Waits until the caller has heard what is queued. `bounded` (a final turn): no longer
        than the playout clock says it takes, plus FINAL_HEARD_SLACK_S."""
        if not bounded:
            await self._channel.wait_heard(HEARD_TIMEOUT_S)
            return
        unheard_s = max(0.0, self._channel.queued_ms - self._channel.heard_ms()) / 1000.0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(unheard_s + FINAL_HEARD_SLACK_S):
                await self._channel.wait_heard(HEARD_TIMEOUT_S)
