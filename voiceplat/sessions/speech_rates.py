"""How fast a robot's LLM writes and its TTS speaks, measured while it runs.

One `SpeechRates` per robot, shared by its calls (they share the models and the cores). The
pipeline feeds it what it observes and `chunking.ChunkPlanner` reads it to size the chunks it
hands to TTS:

- `llm_chunk(chars, seconds)`: the LLM streamed `chars` characters `seconds` after its previous
  chunk (the planner does this itself on every push after the first; the first chunk's wait is
  prompt evaluation, not writing speed);
- `tts_done(chars, synth_s, audio_s, first_audio_s)`: one chunk of `chars` characters took
  `synth_s` to synthesise into `audio_s` of audio, the first of it after `first_audio_s`;
- `clauses(lengths)`: lengths of the clauses in a finished answer (the planner reports them).

Every estimate is a ratio of sums over the last `window` samples plus a prior worth `prior_weight`
samples, so one odd sample moves it little, a change of load moves it within a few answers, and
before any measurement the priors (measured on the shipped robot, see `Priors`) apply.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Priors:
    """Estimates before the first measurement: the shipped Russian robot (llama.cpp Qwen2.5-Coder
    1.5B, Festival msu_ru_nsh_clunits) on 2 cores with LLM and TTS running at once, rounded to the
    slow side (slower LLM, slower TTS: chunks come out larger, never starved by optimism)."""

    llm_chars_per_s: float = 20.0
    """Measured 21-43 chars/s per answer (13-36 with other work on the cores; 1-5 in episodes
    when the 2 cores were oversubscribed)."""
    tts_first_audio_base_s: float = 0.3
    """Festival's cost of any chunk (a forked child, the utterance set-up): measured 0.175 s
    alone, 0.35 s with the LLM generating at the same time."""
    tts_first_audio_s_per_char: float = 0.012
    """Festival's synthesis per character: measured 6.5 ms alone, 15.5 ms with the LLM running."""
    tts_rtf: float = 0.25
    """Synthesis seconds per audio second: measured 0.13 (median) alone, 0.26-0.28 with the LLM."""
    speech_s_per_char: float = 0.088
    """Audio seconds per character of text: measured 0.076-0.107 (median 0.089, short clauses
    more: Festival adds silence at both ends)."""
    clause_chars: float = 25.0
    """A typical clause of the shipped robot's answers (comma to comma, or to the sentence end):
    its answers measured 3-55, median about 21."""


LLM_PRIOR_S = 0.5
"""The LLM prior counts as this many seconds of streaming."""


@dataclass(frozen=True, slots=True)
class _Synthesis:
    chars: int
    synth_s: float
    audio_s: float
    first_audio_s: float


class SpeechRates:
    """Measured LLM and TTS speeds of one robot (sans-I/O: callers pass the durations)."""

    def __init__(self, priors: Priors | None = None, *, window: int = 64, prior_weight: int = 2):
        if window < 1 or prior_weight < 0:
            raise ValueError("window must be >= 1 and prior_weight >= 0")
        self.priors = priors or Priors()
        self.prior_weight = prior_weight
        self._llm: deque[tuple[int, float]] = deque(maxlen=window * 4)  # tokens are small
        self._tts: deque[_Synthesis] = deque(maxlen=window)
        self._clauses: deque[int] = deque(maxlen=window)

    # --- what the pipeline observes ---

    def llm_chunk(self, chars: int, seconds: float) -> None:
        """`chars` characters arrived `seconds` after the previous chunk of the same stream."""
        if chars > 0 and seconds >= 0:
            self._llm.append((chars, seconds))

    def tts_done(
        self, chars: int, synth_s: float, audio_s: float, first_audio_s: float | None = None
    ) -> None:
        """A chunk of `chars` characters: synthesis took `synth_s` for `audio_s` of audio, the
        first audio came after `first_audio_s` (None: only at the end, as Festival does)."""
        if chars <= 0 or audio_s <= 0 or synth_s < 0:
            return
        first = synth_s if first_audio_s is None else min(first_audio_s, synth_s)
        self._tts.append(_Synthesis(chars, synth_s, audio_s, first))

    def clauses(self, lengths: list[int]) -> None:
        """Lengths in characters of the clauses of one finished answer."""
        self._clauses.extend(length for length in lengths if length > 0)

    # --- read-outs ---

    @property
    def llm_chars_per_s(self) -> float:
        return _blend(
            sum(c for c, _ in self._llm),
            sum(s for _, s in self._llm),
            self.priors.llm_chars_per_s,
            self.prior_weight * LLM_PRIOR_S,
        )

    @property
    def tts_rtf(self) -> float:
        """Synthesis seconds per second of audio (below 1 is faster than real time)."""
        p = self.priors
        return _blend(
            sum(s.synth_s for s in self._tts),
            sum(s.audio_s for s in self._tts),
            p.tts_rtf,
            self.prior_weight * p.clause_chars * p.speech_s_per_char,
        )

    @property
    def speech_s_per_char(self) -> float:
        """Seconds of audio per character of text."""
        p = self.priors
        return _blend(
            sum(s.audio_s for s in self._tts),
            sum(s.chars for s in self._tts),
            p.speech_s_per_char,
            self.prior_weight * p.clause_chars,
        )

    @property
    def tts_first_audio_s(self) -> float:
        """Median time to the first audio of a chunk (of whatever length chunks had)."""
        if not self._tts:
            return self.first_audio_s(round(self.priors.clause_chars))
        return statistics.median(s.first_audio_s for s in self._tts)

    @property
    def clause_chars(self) -> float:
        """Characters in a typical clause of this robot's answers."""
        return _blend(
            sum(self._clauses), len(self._clauses), self.priors.clause_chars, self.prior_weight
        )

    # --- predictions for a chunk of a given length ---

    def first_audio_s(self, chars: int) -> float:
        """Expected time from handing `chars` characters to TTS to its first audio.

        The prior's shape (a fixed cost plus a cost per character) scaled by how the measured
        chunks compare with it: robust with few samples and with chunks of similar lengths.
        """
        p = self.priors

        def prior(n: int) -> float:
            return p.tts_first_audio_base_s + p.tts_first_audio_s_per_char * n

        expected = sum(prior(s.chars) for s in self._tts)
        measured = sum(s.first_audio_s for s in self._tts)
        weight = prior(round(p.clause_chars)) * self.prior_weight
        return prior(chars) * (measured + weight) / (expected + weight)

    def synth_s(self, chars: int) -> float:
        """Expected time to synthesise all of `chars` characters."""
        return max(self.first_audio_s(chars), self.tts_rtf * self.speech_s(chars))

    def speech_s(self, chars: int) -> float:
        """Expected length of the audio of `chars` characters."""
        return chars * self.speech_s_per_char

    def llm_s(self, chars: int) -> float:
        """Expected time for the LLM to write `chars` more characters."""
        return chars / self.llm_chars_per_s


def _blend(total: float, count: float, prior: float, prior_count: float) -> float:
    """total / count, with the prior counted as `prior_count` more of count."""
    den = count + prior_count
    return (total + prior * prior_count) / den if den > 0 else prior
