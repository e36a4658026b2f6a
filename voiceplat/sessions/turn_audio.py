"""A robot turn's audio on its way to the caller, and the wait until the caller has heard it.

Text goes through the robot's TTS, is resampled to the call's 8 kHz and queued on the channel; each
sentence gets its place on the playout clock and a mark, which is how the turn later knows what the
caller heard of it. Which sentences to say, and what to do when this fails, is the session's.

A turn can be *paused* (turn-taking thinks the caller is interrupting): its unheard audio is
flushed from the channel and held here, with whatever the TTS adds meanwhile, until it is
*resumed* from the start of the word the caller stopped hearing (a backchannel, a cough) or the
turn is cancelled (a real interruption).

Starvation: while a turn is not finished, every moment the channel had nothing left to play is
counted (`RobotTurn.starved_ms` / `starved_max_ms`), on the playout clock the channel paces by.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import numpy as np

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
BYTES_PER_MS = 16
WORD_GAP_MS = 30
"""A quiet stretch this long inside speech is taken as a boundary between words."""

AudioSent = Callable[[bytes, float], None]
"""(8 kHz audio, clock time its playout starts): what the robot says, for the echo guard."""


class TurnAudio:
    def __init__(
        self,
        channel: CallChannel,
        call: CallLog,
        *,
        tts: Callable[[], TTS],
        clock: Callable[[], float],
        on_audio: AudioSent | None = None,
        on_flush: Callable[[float], None] | None = None,
        on_synthesized: Callable[[int, float, float, float], None] | None = None,
    ) -> None:
        """`tts`: the robot's TTS, looked up only when a turn is synthesised (a mode may have none).
        `on_synthesized(chars, synth_s, audio_s, first_audio_s)`: the TTS's measured speed."""
        self._channel = channel
        self._call = call
        self._tts = tts
        self._clock = clock
        self._on_audio = on_audio
        self._on_flush = on_flush
        self._on_synthesized = on_synthesized
        self._turn: RobotTurn | None = None
        self._pieces: list[tuple[float, bytes]] = []
        """The current turn's audio as queued: (stream position ms, audio)."""
        self._dry_at: float | None = None
        """Clock time the audio queued so far runs out (the playout clock's model)."""
        self._held: bytearray | None = None
        """Audio of a paused turn, from its resume point on (None: not paused)."""
        self._held_from_ms = 0.0
        """Stream position (as first queued) of the held audio's first byte."""
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._moves: list[tuple[float, float]] = []
        """(cut, shift) of each resume of the current turn: where its positions moved."""

    def echo_guard(self, on_audio: AudioSent, on_flush: Callable[[float], None]) -> None:
        """Tells the echo guard what the robot says and when its audio is flushed."""
        self._on_audio, self._on_flush = on_audio, on_flush

    # -- queueing ----------------------------------------------------------------------------------
    @property
    def position_ms(self) -> float:
        """Where the next audio of the turn goes, on the turn's stream clock."""
        if self._held is not None:
            return self._held_from_ms + len(self._held) / BYTES_PER_MS
        return self._channel.queued_ms

    def runs_dry_in_s(self, turn: RobotTurn) -> float | None:
        """Seconds until `turn`'s audio queued so far has played (None: it has none yet, or it
        is paused)."""
        if turn is not self._turn or self._dry_at is None or self._held is not None:
            return None
        return self._dry_at - self._clock()

    async def render(self, text: str) -> bytes:
        """`text` synthesised at the call rate, not queued (a speculative answer's first chunk)."""
        return await render(self._tts(), text)

    async def synthesize(self, turn: RobotTurn, text: str) -> None:
        """Synthesises `text` and queues it as the turn's next sentence."""
        ready = turn.ready_audio.pop(text, None)
        if ready is not None:
            if turn.tts_ttfb_ms is None:
                turn.tts_ttfb_ms = 0.0  # synthesised while the caller was finishing
            self.queue(turn, ready, text)
            if turn.planner is not None:
                turn.planner.audio_queued(len(ready) / 16000, chunk_done=True)
            return
        tts = self._tts()
        asked = self._clock()
        first_audio: float | None = None
        samples = 0
        resampler: StreamResampler | None = None
        start = self.position_ms
        moves = len(self._moves)
        stream = with_gap_timeout(tts.synthesize(text), session_timeout(tts), "TTS")
        async for chunk in stream:
            if resampler is None:
                resampler = StreamResampler(chunk.rate, 8000)
                first_audio = self._clock() - asked
                if turn.tts_ttfb_ms is None:
                    turn.tts_ttfb_ms = first_audio * 1000
            data = resampler.process(chunk.data)
            samples += len(data) // 2
            self.queue(turn, data, None)
            if turn.planner is not None:
                turn.planner.audio_queued(len(data) / 16000, chunk_done=False)
        tail = b""
        if resampler is not None:
            tail = resampler.flush()
            samples += len(tail) // 2
            self.queue(turn, tail, None)
            if self._on_synthesized is not None and first_audio is not None:
                self._on_synthesized(len(text), self._clock() - asked, samples / 8000, first_audio)
        if turn.planner is not None:
            turn.planner.audio_queued(len(tail) / 16000, chunk_done=True)
        for cut, shift in self._moves[moves:]:  # resumed while this sentence was synthesised
            if start >= cut:
                start += shift
        turn.sentences.append(SpokenSentence(text, start, self.position_ms))
        self._mark(turn)

    def queue(self, turn: RobotTurn, data: bytes, text: str | None) -> None:
        """Queues 8 kHz audio of the turn; with `text`, the audio is a whole sentence."""
        if turn is not self._turn:
            self._start_turn(turn)
        now = self._clock()
        if turn.first_audio_at is None and data:
            turn.first_audio_at = now
            if turn.user_speech_ended is not None:
                turn.v2v_ms = (turn.first_audio_at - turn.user_speech_ended) * 1000
            self._call.event("tts_first_audio", turn=turn.idx, v2v_ms=turn.v2v_ms)
        start = self.position_ms
        if data:
            if self._held is not None:
                self._held += data
            else:
                self._send(turn, data, now)
        if text is not None:
            turn.sentences.append(SpokenSentence(text, start, self.position_ms))
            self._mark(turn)

    def _start_turn(self, turn: RobotTurn) -> None:
        self._turn = turn
        self._pieces = []
        self._dry_at = None
        self._held = None
        self._moves = []
        self._resumed.set()

    def _send(self, turn: RobotTurn, data: bytes, now: float) -> None:
        if not self._pieces and not turn.sentences and not turn.resumed:
            # Names the turn before its first audio: a peer (or the simulator) that sees that
            # audio cut before the first sentence's mark still knows whose it was.
            self._channel.mark(f"t{turn.idx}s0")
        if self._dry_at is not None and now > self._dry_at:
            gap_ms = (now - self._dry_at) * 1000
            turn.starved_ms = (turn.starved_ms or 0.0) + gap_ms
            turn.starved_max_ms = max(turn.starved_max_ms or 0.0, gap_ms)
            self._call.event("starved", turn=turn.idx, ms=round(gap_ms))
        plays_at = max(now, self._dry_at or now)
        start, _ = self._channel.play(data)
        self._pieces.append((start, data))
        self._dry_at = plays_at + len(data) / BYTES_PER_MS / 1000
        if self._on_audio is not None:
            self._on_audio(data, plays_at)

    def _mark(self, turn: RobotTurn) -> None:
        if self._held is None:
            self._channel.mark(f"t{turn.idx}s{len(turn.sentences)}")

    # -- pause and resume ------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._held is not None

    async def pause(self, turn: RobotTurn, rewind_ms: float) -> float:
        """Stops the turn's audio at once and holds what the caller has not heard, from the start
        of the word they were hearing (looked for at most `rewind_ms` back). Returns the heard
        position."""
        heard = await self._channel.clear()
        if self._on_flush is not None:
            self._on_flush(self._clock())
        if turn is not self._turn or self._held is not None:
            return heard
        audio, first_ms = self._turn_audio()
        resume_ms = _word_start(audio, first_ms, heard, rewind_ms)
        offset = int((resume_ms - first_ms) * BYTES_PER_MS) & ~1
        self._held = bytearray(audio[max(0, offset) :])
        self._held_from_ms = max(first_ms, resume_ms)
        self._dry_at = None
        self._resumed.clear()
        return heard

    def resume(self, turn: RobotTurn) -> float:
        """Plays a paused turn's held audio again; its sentences move to their new positions.
        Returns how much audio (ms) came back."""
        held, self._held = self._held, None
        self._resumed.set()
        if held is None or turn is not self._turn:
            return 0.0
        shift = self._channel.queued_ms - self._held_from_ms
        cut = self._held_from_ms
        for sentence in turn.sentences:
            if sentence.end_ms > cut:
                sentence.start_ms += shift
                sentence.end_ms += shift
        self._pieces = []
        self._moves.append((cut, shift))
        now = self._clock()
        position = cut
        for n, sentence in enumerate(turn.sentences, start=1):
            end = sentence.end_ms - shift
            if end <= cut:
                continue
            size = int((end - position) * BYTES_PER_MS) & ~1
            self._send(turn, bytes(held[:size]), now)
            del held[:size]
            position = end
            self._channel.mark(f"t{turn.idx}s{n}")
        if held:  # the sentence being synthesised when the turn was paused
            self._send(turn, bytes(held), now)
        turn.resumed += 1
        return (self._channel.queued_ms - (cut + shift)) if turn.sentences else 0.0

    def _turn_audio(self) -> tuple[bytes, float]:
        """The current turn's queued audio, contiguous from its first piece's position."""
        if not self._pieces:
            return b"", self._channel.queued_ms
        first = self._pieces[0][0]
        return b"".join(data for _, data in self._pieces), first

    # -- waiting ----------------------------------------------------------------------------------
    async def wait_heard(self, *, bounded: bool) -> None:
        """Waits until the caller has heard what is queued (a paused turn: once it resumed).
        `bounded` (a final turn): no longer than the playout clock says it takes, plus
        FINAL_HEARD_SLACK_S."""
        while True:
            await self._resumed.wait()
            if not bounded:
                await self._channel.wait_heard(HEARD_TIMEOUT_S)
            else:
                unheard_s = max(0.0, self._channel.queued_ms - self._channel.heard_ms()) / 1000.0
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(unheard_s + FINAL_HEARD_SLACK_S):
                        await self._channel.wait_heard(HEARD_TIMEOUT_S)
            if self._resumed.is_set():
                return


async def render(tts: TTS, text: str) -> bytes:
    """`text` in `tts`'s voice as 8 kHz PCM, whole (a filler, a chunk made ahead of its turn)."""
    resampler: StreamResampler | None = None
    parts: list[bytes] = []
    async for chunk in with_gap_timeout(tts.synthesize(text), session_timeout(tts), "TTS"):
        resampler = resampler or StreamResampler(chunk.rate, 8000)
        parts.append(resampler.process(chunk.data))
    if resampler is not None:
        parts.append(resampler.flush())
    return b"".join(parts)


def _word_start(audio: bytes, first_ms: float, heard_ms: float, rewind_ms: float) -> float:
    """Stream position of the last quiet stretch (a word boundary) at or before `heard_ms`, at
    most `rewind_ms` back; `heard_ms` itself when there is none (or no audio)."""
    if not audio or rewind_ms <= 0:
        return heard_ms
    samples = np.frombuffer(audio[: len(audio) - len(audio) % 2], dtype="<i2").astype(np.float32)
    window = 80  # 10 ms at 8 kHz
    frames = len(samples) // window
    if frames == 0:
        return heard_ms
    rms = np.sqrt(np.mean(samples[: frames * window].reshape(frames, window) ** 2, axis=1))
    loud = float(np.percentile(rms, 90))
    quiet = rms < max(loud * 0.1, 30.0)
    end = min(frames, int((heard_ms - first_ms) / 10))
    stop = max(0, end - int(rewind_ms / 10))
    run = 0
    for i in range(end - 1, stop - 1, -1):
        run = run + 1 if quiet[i] else 0
        if run * 10 >= WORD_GAP_MS:
            # The boundary is the end of the quiet stretch: the next word starts there.
            j = i + run
            while j < end and quiet[j]:
                j += 1
            return first_ms + max(0, j - 1) * 10
    return heard_ms
