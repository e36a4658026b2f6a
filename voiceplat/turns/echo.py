"""Echo guard: tells the robot's own voice, coming back on the caller's channel, from the caller.

On speakerphones and some lines the caller's channel carries the robot's audio back, attenuated
(typically −15…−25 dB) and delayed (40–200 ms), through μ-law. VAD calls that speech, and the
robot interrupts itself. The robot knows exactly what it sent, so the guard keeps that audio on
a timeline (`played`, `flushed`) and, for each 20 ms caller frame (`process`), asks whether the
frame is explained by it:

1. No robot audio could be in the frame (nothing audible played within the lag range): not
   echo, whatever the frame holds.
2. The robot is talking and the frame is quieter than `quiet_rms`: not speech ("quiet").
3. With a known echo lag, the frame is fitted by least squares to the robot's audio at that lag
   (one tap; three taps, lag−1…lag+1, when one nearly fits: a fractional or slightly coloured
   path). The frame is echo when what is left — the residual, the caller's own audio — is at
   least `residual_db` below the robot's audio at that point, or quieter than `quiet_rms`.
4. Otherwise (no lag yet, the timing of `played` jumped, or the caller is talking) the lag is
   estimated: normalised cross-correlation, by FFT, of the caller's last 200 ms with the
   robot's audio at every lag in the range. A peak of at least 0.5 is taken only if a strict fit
   at that lag explains the frame (under 1 % of its energy left, and `residual_db`): caller
   speech over the robot decorrelates the window, so double talk does not lock onto a wrong
   lag, and its frames leave a large residual: not echo ("caller").

Cost: a frame with no robot audio near is a few microseconds; an echo frame is a one-tap fit.
The FFT estimate runs only when the fit fails: at most every third frame when the frame looks
like echo (10 dB quieter than the robot's audio), else backing off to every 25th frame, so a
caller talking over the robot on a clean line costs little (numbers: benchmarks/echo.py).

Sans-I/O: the user of the guard passes times (any monotonic clock, the same for `played`,
`flushed` and `process`).

Timelines are kept in samples, not in the times passed: caller frames are taken as contiguous
(their `end_t` may jitter with packet arrival) unless one is more than 60 ms off, and a played
chunk starting within 50 ms of the previous one's end is appended to it (not the first after a
flush). The echo lag found
includes any constant error in the predicted playout time (up to `timing_error_ms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from voiceplat.audio.pcm import CALL_RATE

_WINDOW = CALL_RATE // 5
"""Caller audio the lag estimate correlates: 200 ms."""
_ECHO_LIKE = 10.0 ** (-10 / 20)
"""A frame this much quieter than the robot's loudest audio within the lag range may be its
echo: the lag is looked for at every third such frame, however often it was not found."""
_LOCK_NCC = 0.5
"""Normalised correlation that makes a lag the echo path."""
_ESTIMATE_GAP = 3
"""After an estimate that found nothing better, frames until the next one; doubled after each
such estimate up to _ESTIMATE_GAP_MAX, unless the frames look like echo (_ECHO_LIKE)."""
_ESTIMATE_GAP_MAX = 25
_NEAR_FIT = 100.0
"""The three-tap fit is tried only when one tap leaves less than this times the residual allowed
(within 20 dB): a misaligned echo does, caller speech does not."""
_SNAP = CALL_RATE * 50 // 1000
"""A played chunk starting this close to the previous one's end follows it directly."""
_REANCHOR = CALL_RATE * 60 // 1000
"""A caller frame this far from where the previous one ended starts a new timeline."""
_SILENT_REF = 30.0
"""Robot audio with no sample louder than this (int16 units, −60 dBFS) has no audible echo."""


class EchoSettings(BaseModel):
    """How the robot tells its own voice on the caller's channel from the caller."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Off: every frame is the caller's (what the robot did before the guard existed)."""
    max_delay_ms: int = Field(400, ge=0, le=1000)
    """Longest delay looked for between the robot's audio as predicted to play and its echo:
    the caller's echo path (40–200 ms) plus what the prediction does not know of — the peer's
    playout buffer (FreeSWITCH mod_audio_fork pre-buffers 160 ms, then 80 ms) and the network."""
    timing_error_ms: int = Field(100, ge=0, le=500)
    """How far the playout time given to `played` may be off (either way)."""
    residual_db: float = Field(-30.0, le=0)
    """A frame is echo when what the robot's audio does not explain is at least this far below
    the robot's own level; caller speech louder than that counts as the caller's."""
    quiet_rms: float = Field(60.0, ge=0)
    """While the robot's audio may be coming back, a frame (or, once the echo path is known, the
    residual) quieter than this int16 RMS (about −55 dBFS) is not caller speech: the echo's
    first quiet frames, μ-law noise on the echo of the robot's quiet sounds, line noise."""


EchoReason = Literal["off", "no_robot_audio", "quiet", "echo", "caller"]
"""off: the guard is disabled; no_robot_audio: nothing the robot played can be in the frame;
quiet: the robot is talking and the frame is below `quiet_rms`; echo: the robot's audio
explains the frame; caller: it does not (caller speech, maybe over the echo)."""


@dataclass(frozen=True, slots=True)
class EchoDecision:
    echo: bool
    """True: the frame is the robot's own audio coming back; do not count it as caller speech."""
    reason: EchoReason
    delay_ms: float | None
    """The echo lag in use (playout prediction error included); None until one is found."""
    residual_db: float | None
    """Unexplained audio relative to the robot's audio at the lag; None when not fitted."""


class EchoGuard:
    """Per call: the robot's played audio and the caller's recent audio on one sample timeline."""

    def __init__(self, settings: EchoSettings | None = None) -> None:
        self.settings = s = settings or EchoSettings()
        self._lag_min = -s.timing_error_ms * CALL_RATE // 1000
        self._lag_max = (s.max_delay_ms + s.timing_error_ms) * CALL_RATE // 1000
        self._residual_ratio = 10.0 ** (s.residual_db / 10.0)
        self._quiet_energy_per_sample = s.quiet_rms**2
        # Robot audio: _ref[0] is absolute sample _ref_start; _ref_end is the end of what played.
        self._ref = np.zeros(0, dtype=np.float64)
        self._ref_start = 0
        self._ref_end: int | None = None
        self._follows = False
        """Whether the next played chunk may continue the last one (not after a flush)."""
        # Caller audio: the last _WINDOW samples, ending at absolute sample _mic_end.
        self._mic = np.zeros(_WINDOW, dtype=np.float64)
        self._mic_end: int | None = None
        self._lag: int | None = None
        self._frames_to_estimate = 0
        self._estimate_gap = _ESTIMATE_GAP

    # -- robot side ---------------------------------------------------------------------------

    def played(self, pcm8k: bytes, start_t: float) -> None:
        """Robot audio (8 kHz int16) that the caller will hear from `start_t` on."""
        samples = np.frombuffer(pcm8k[: len(pcm8k) // 2 * 2], dtype="<i2").astype(np.float64)
        if not samples.size:
            return
        start = round(start_t * CALL_RATE)
        if self._follows and self._ref_end is not None and abs(start - self._ref_end) <= _SNAP:
            start = self._ref_end  # the next chunk of the same stream: no gap, no overlap
        if self._ref_end is None or not self._ref.size:
            self._ref_start = start
        end = start + samples.size
        if start < self._ref_start:  # audio older than anything kept: only its tail can matter
            samples = samples[self._ref_start - start :]
            start = self._ref_start
            if not samples.size:
                return
        needed = end - self._ref_start
        if needed > self._ref.size:
            grown = np.zeros(max(needed, 2 * self._ref.size), dtype=np.float64)
            grown[: self._ref.size] = self._ref
            self._ref = grown
        self._ref[start - self._ref_start : end - self._ref_start] = samples
        self._ref_end = end if self._ref_end is None else max(self._ref_end, end)
        self._follows = True

    def flushed(self, at_t: float) -> None:
        """The channel dropped the robot's queued audio at `at_t`: nothing after it is heard.

        What lies within `timing_error_ms` after `at_t` is kept: if the playout prediction runs
        late, that audio was heard, and its echo is still to come; keeping audio that was not
        heard costs nothing (its echo is simply absent).
        """
        self._follows = False  # what plays next (a resume) starts where it is predicted to
        if self._ref_end is None:
            return
        cut = round(at_t * CALL_RATE) + self.settings.timing_error_ms * CALL_RATE // 1000
        if cut >= self._ref_end:
            return
        self._ref[max(cut - self._ref_start, 0) :] = 0.0
        self._ref_end = max(cut, self._ref_start)

    # -- caller side --------------------------------------------------------------------------

    def is_echo(self, frame: bytes, end_t: float) -> bool:
        """`process(frame, end_t).echo`."""
        return self.process(frame, end_t).echo

    def process(self, frame: bytes, end_t: float) -> EchoDecision:
        """Decides one caller frame (8 kHz int16, normally 20 ms) that ended at `end_t`.

        Call it for every caller frame in order, robot speaking or not: the guard needs the
        caller's recent audio to find the echo path.
        """
        x = self._push_mic(frame, end_t)
        if not self.settings.enabled:
            return EchoDecision(False, "off", None, None)
        assert self._mic_end is not None
        start = self._mic_end - x.size
        ref_peak = self._robot_peak(start - self._lag_max, self._mic_end - self._lag_min)
        if ref_peak < _SILENT_REF:
            return EchoDecision(False, "no_robot_audio", self._delay_ms(), None)
        if float(x @ x) <= self._quiet_energy_per_sample * x.size:
            # Quieter than any caller who means to interrupt, while the robot talks: whether it
            # is the start of the echo (before its path is known) or line noise, not speech.
            return EchoDecision(True, "quiet", self._delay_ms(), None)
        if self._lag is not None:
            explained, residual_db = self._fit(x, start, self._lag)
            if explained:
                return EchoDecision(True, "echo", self._delay_ms(), residual_db)
        else:
            residual_db = None
        self._frames_to_estimate -= 1
        if float(np.max(np.abs(x))) <= _ECHO_LIKE * ref_peak:
            self._frames_to_estimate = min(self._frames_to_estimate, _ESTIMATE_GAP - 1)
            self._estimate_gap = _ESTIMATE_GAP
        if self._frames_to_estimate <= 0:
            lag = self._estimate()
            if lag is not None and lag != self._lag:
                # Taken only if it explains this frame: a correlation peak between the caller's
                # speech and the robot's can reach the threshold, a strict fit does not.
                explained, fitted_db = self._fit(x, start, lag, strict=True)
                if explained:
                    self._lag = lag
                    self._estimate_gap = _ESTIMATE_GAP
                    return EchoDecision(True, "echo", self._delay_ms(), fitted_db)
            # Nothing better found (double talk, or no echo on this line): back off, so a
            # caller talking over the robot on a clean line costs little.
            self._frames_to_estimate = self._estimate_gap
            self._estimate_gap = min(2 * self._estimate_gap, _ESTIMATE_GAP_MAX)
        return EchoDecision(False, "caller", self._delay_ms(), residual_db)

    def _push_mic(self, frame: bytes, end_t: float) -> np.ndarray:
        if len(frame) % 2 or not 0 < len(frame) // 2 <= _WINDOW:
            raise ValueError(
                f"a caller frame must be 2…{2 * _WINDOW} bytes of int16, got {len(frame)}"
            )
        x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        end = round(end_t * CALL_RATE)
        if self._mic_end is not None and abs(end - (self._mic_end + x.size)) <= _REANCHOR:
            end = self._mic_end + x.size  # the next frame of the stream: arrival jitter ignored
        else:
            self._mic[:] = 0.0  # a gap in the stream: what came before is on another timeline
        self._mic_end = end
        self._mic[: -x.size] = self._mic[x.size :]
        self._mic[-x.size :] = x
        self._trim_ref(end - x.size - _WINDOW - self._lag_max - 2)
        return x

    def _robot_peak(self, a: int, b: int) -> float:
        """The loudest robot sample played in absolute samples [a, b) (0 for none)."""
        if self._ref_end is None or b <= self._ref_start or a >= self._ref_end:
            return 0.0
        span = self._ref_slice(a, min(b, self._ref_end))
        return float(np.max(np.abs(span))) if span.size else 0.0

    def _ref_slice(self, a: int, b: int) -> np.ndarray:
        """Robot audio for absolute samples [a, b), zeros where nothing is kept."""
        lo, hi = a - self._ref_start, b - self._ref_start
        if 0 <= lo and hi <= self._ref.size:
            return self._ref[lo:hi]
        out = np.zeros(b - a, dtype=np.float64)
        src_lo, src_hi = max(lo, 0), min(hi, self._ref.size)
        if src_lo < src_hi:
            out[src_lo - lo : src_hi - lo] = self._ref[src_lo:src_hi]
        return out

    def _trim_ref(self, keep_from: int) -> None:
        # Amortised: copy only when a second of audio behind any possible lag has piled up.
        drop = keep_from - self._ref_start
        if drop >= CALL_RATE:
            self._ref = self._ref[drop:].copy()
            self._ref_start = keep_from

    def _fit(
        self, x: np.ndarray, start: int, lag: int, *, strict: bool = False
    ) -> tuple[bool, float]:
        """Least-squares fit of the frame by the robot's audio at the lag (then lag−1…lag+1).

        `strict` (a lag not yet taken): the fit must explain the frame itself — leave under 1 %
        of its energy, and `residual_db` — not just leave something quiet.
        """
        seg = self._ref_slice(start - lag - 1, start - lag + x.size + 1)
        y = seg[1:-1]
        ref_energy = float(y @ y)
        frame_energy = float(x @ x)
        if ref_energy > 0.0:
            xy = float(x @ y)
            residual = max(frame_energy - xy * xy / ref_energy, 0.0)
        else:
            residual = frame_energy
        allowed = self._residual_ratio * ref_energy
        if allowed < residual <= _NEAR_FIT * allowed and not self._explained(
            residual, ref_energy, x.size
        ):
            # A fractional or coloured echo path: three taps fit what one cannot. Rarely needed
            # on a pure delay, so only paid when the one-tap fit fails.
            taps = np.vstack((seg[2:], y, seg[:-2]))
            gram = taps @ taps.T
            proj = taps @ x
            gram.flat[::4] += 1e-9 * float(np.trace(gram)) + 1e-6
            residual = max(frame_energy - _explained_energy(gram.tolist(), proj.tolist()), 0.0)
        residual_db = 10.0 * math.log10((residual + 1e-9) / (ref_energy + 1e-9))
        if strict:
            return (
                residual <= self._residual_ratio * ref_energy and residual <= 0.01 * frame_energy
            ), residual_db
        return self._explained(residual, ref_energy, x.size), residual_db

    def _explained(self, residual: float, ref_energy: float, samples: int) -> bool:
        return (
            residual <= self._residual_ratio * ref_energy
            or residual <= self._quiet_energy_per_sample * samples
        )

    def _estimate(self) -> int | None:
        """The lag with the highest normalised correlation, if it reaches _LOCK_NCC."""
        assert self._mic_end is not None
        mic = self._mic
        mic_energy = float(mic @ mic)
        if mic_energy <= 0.0:
            return None
        n0 = self._mic_end - _WINDOW
        ref = self._ref_slice(n0 - self._lag_max, self._mic_end - self._lag_min)
        size = _fft_size(ref.size)  # zero padding beyond ref.size keeps the lags wanted unwrapped
        corr = np.fft.irfft(np.fft.rfft(ref, size) * np.conj(np.fft.rfft(mic, size)), size)
        corr = corr[: ref.size - _WINDOW + 1]  # index k: ref[k:k+W] against the caller's window
        sq = np.concatenate(([0.0], np.cumsum(ref * ref)))
        ref_energy = sq[_WINDOW:] - sq[:-_WINDOW]
        ncc = np.abs(corr) / np.sqrt(mic_energy * np.maximum(ref_energy, 1.0))
        best = int(np.argmax(ncc))
        if ncc[best] < _LOCK_NCC:
            return None
        return self._lag_max - best

    def _delay_ms(self) -> float | None:
        return None if self._lag is None else self._lag * 1000.0 / CALL_RATE


def _fft_size(n: int) -> int:
    """The smallest 2^a·3^b·5^c at or above n: FFTs of such sizes are the fast ones."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35
            while size < n:
                size *= 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def _explained_energy(g: list[list[float]], b: list[float]) -> float:
    """b·h for the h solving g h = b (3×3, symmetric positive definite), by Cramer's rule:
    np.linalg.solve costs ten times more on a matrix this small."""
    (a, d, e), (_, b2, f), (_, _, c) = g
    cof = (
        b2 * c - f * f,
        e * f - d * c,
        d * f - e * b2,
        a * c - e * e,
        d * e - a * f,
        a * b2 - d * d,
    )
    det = a * cof[0] + d * cof[1] + e * cof[2]
    if det <= 0.0:
        return 0.0
    h0 = (cof[0] * b[0] + cof[1] * b[1] + cof[2] * b[2]) / det
    h1 = (cof[1] * b[0] + cof[3] * b[1] + cof[4] * b[2]) / det
    h2 = (cof[2] * b[0] + cof[4] * b[1] + cof[5] * b[2]) / det
    return h0 * b[0] + h1 * b[1] + h2 * b[2]
