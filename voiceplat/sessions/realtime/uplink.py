"""Realtime mode's caller audio on its way up to the service."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from voiceplat.audio.pcm import CALL_RATE
from voiceplat.audio.resample import StreamResampler
from voiceplat.providers.realtime import protocol
from voiceplat.providers.realtime.connection import RealtimeConnection
from voiceplat.providers.realtime.protocol import AudioFormat
from voiceplat.providers.realtime.timelines import InputTimeline

BACKLOG_MS = 3000.0
"""Caller audio kept while the service is reconnecting, sent when it is back."""


class CallerUplink:
    """Caller audio resampled to the service's rate and encoded as it arrives, then sent; while
    the service is reconnecting, the last BACKLOG_MS of it wait for the new session.

    `timeline` maps the service's input-buffer times back to the session clock.
    """

    def __init__(self, fmt: AudioFormat, clock: Callable[[], float]) -> None:
        self.format = fmt
        self.timeline = InputTimeline()
        self._clock = clock
        self._resampler = StreamResampler(CALL_RATE, fmt.rate)
        self._backlog: deque[bytes] = deque()
        self._backlog_ms = 0.0

    def set_format(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._resampler = StreamResampler(CALL_RATE, fmt.rate)

    def send(self, pcm8k: bytes, link: RealtimeConnection | None) -> None:
        fmt = self.format
        wire = fmt.encode(pcm8k if fmt.rate == CALL_RATE else self._resampler.process(pcm8k))
        if not wire:
            return
        if link is None or link.closed:
            self._backlog.append(wire)
            self._backlog_ms += fmt.wire_ms(len(wire))
            while self._backlog_ms > BACKLOG_MS:
                self._backlog_ms -= fmt.wire_ms(len(self._backlog.popleft()))
            return
        link.send(protocol.input_audio_append(wire))
        self.timeline.on_sent(fmt.wire_ms(len(wire)), self._clock())

    def flush(self, link: RealtimeConnection | None) -> None:
        """Sends the backlog over `link` (dropped without one)."""
        backlog, self._backlog, self._backlog_ms = self._backlog, deque(), 0.0
        if link is None:
            return
        for wire in backlog:
            link.send(protocol.input_audio_append(wire))
            self.timeline.on_sent(self.format.wire_ms(len(wire)), self._clock())
