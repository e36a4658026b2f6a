"""Streamed LLM text → chunks for TTS, sized from the measured speeds so the caller hears no gaps.

`ChunkPlanner` replaces `SentenceSplitter` in the pipeline and cuts with the same rules
(`text.boundaries`: never inside numbers, abbreviations, initials). One planner per robot reply:

1. The first chunk goes to TTS at the first sentence end, or at a clause mark once it has
   `first_clause_min_chars`, or — whatever the punctuation — `first_chunk_budget_ms` after the
   LLM's first token, at the last word boundary that reads naturally (never right after a
   preposition, conjunction or particle such as "в", "на", "и", "не", "что"; never after a
   number or an abbreviation; never before "же", "ли", "бы").
2. Later chunks end at every sentence end; at a clause mark when the audio in hand (queued,
   being synthesised, and this clause) covers the time the next clause takes: the LLM writing
   it at its measured chars/s, then TTS's time to first audio. A clause mark is passed over when
   the audio already ahead of the caller lasts long enough to wait for one more clause (fewer,
   longer chunks read better and cost less synthesis), and when the clause would not cover the
   next one (a longer chunk gives the LLM more time).
3. Whatever the punctuation, when the audio ahead of the caller is about to run out (less than
   this text's time to first audio plus `safety_margin_ms`), the text in hand goes at its last
   natural word boundary, if it has `min_chunk_chars`.

Rules 1 and 3 depend on time passing without new text: call `due()` when `next_due_s()` says (a
timer next to the LLM stream). The planner keeps a timeline of this reply's audio: what was queued
for playout (`audio_queued`, from the TTS side) and what it expects of the chunks still being
synthesised (from `SpeechRates`). Sans-I/O: the clock is injected, nothing here sleeps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.sessions.speech_rates import SpeechRates
from voiceplat.sessions.text import (
    Boundary,
    boundaries,
    cut_long,
    is_abbreviation,
    speakable,
    word_before,
)

# A chunk must not end right after these: they lean on the next word ("в | Москве", "не | могу").
_LEANS_RIGHT = frozenset(
    "а без безо в во вне для до за и из изо или к ко как когда либо между на над надо "
    "не ни но о об обо около от ото перед по под подо при про ради с со сквозь у через что чтобы "
    "чем если то либо нежели будто словно хотя пусть это этот эта эти этого этой эту этих этим "
    "тот та те того той ту тех ваш ваша ваше ваши вашего вашей вашу ваших наш наша наше наши "
    "нашего нашей нашу наших мой моя моё мое мои моего моей свой своя своё свое свои своего своей "
    "который которая которое которые которого которой самый самая самое очень более менее "
    "a an the to of in on at for and or but with by from not that as if your our my their its "
    "than into onto about".split()
)  # fmt: skip
# A chunk must not start with these: they lean on the word before ("могли | бы" reads badly).
_LEANS_LEFT = ("же", "ж", "ли", "ль", "бы", "б")
_CLOSERS_AND_TERMINATORS = ".!?…\"'»”’)]"
_WORD_EDGE = "\"'«»“”„‘’()[]"


class ChunkingSettings(BaseModel):
    """How the pipeline cuts the LLM's answer into chunks for TTS (RobotConfig `chunking`)."""

    model_config = ConfigDict(extra="forbid")

    first_chunk_budget_ms: int = Field(
        600,
        ge=0,
        le=10000,
        description="the first chunk goes to TTS at most this long after the LLM's first token, "
        "at a natural word boundary, whatever the punctuation",
    )
    first_clause_min_chars: int = Field(
        8, ge=0, description="the first chunk may end at a clause mark once it is this long"
    )
    min_chunk_chars: int = Field(
        12, ge=1, description="a chunk cut between words (not at punctuation) has at least this"
    )
    safety_margin_ms: int = Field(
        150,
        ge=0,
        le=5000,
        description="audio that should still be ahead of the caller when the next chunk's first "
        "audio is expected",
    )
    max_chars: int = Field(200, ge=20, description="longest chunk; longer text is cut at a clause")


@dataclass(slots=True)
class _Chunk:
    """A chunk handed to TTS whose synthesis has not finished."""

    chars: int
    emitted_t: float
    started_t: float | None  # synthesis start, when known (the chunk TTS is working on)
    queued_s: float = 0.0  # audio of it already queued


class ChunkPlanner:
    """Cuts one reply's streamed text into TTS chunks by time (see the module docstring)."""

    def __init__(
        self,
        rates: SpeechRates,
        clock: Callable[[], float],
        settings: ChunkingSettings | None = None,
        *,
        measure_llm: bool = True,
    ) -> None:
        self.rates = rates
        self.clock = clock
        self.settings = settings or ChunkingSettings()
        self.measure_llm = measure_llm
        self._buf = ""
        self._text: list[str] = []
        self._first = True
        self._first_token_t: float | None = None
        self._last_push_t: float | None = None
        self._synthesising: deque[_Chunk] = deque()
        self._play_end: float | None = None  # when the audio queued so far ends

    # --- the LLM side ---

    def push(self, text: str) -> list[str]:
        """Adds streamed text; returns the chunks ready for TTS (often none)."""
        if not text:
            return []
        now = self.clock()
        if self._first_token_t is None:
            self._first_token_t = now
        elif self.measure_llm and self._last_push_t is not None:
            self.rates.llm_chunk(len(text), now - self._last_push_t)
        self._last_push_t = now
        self._text.append(text)
        self._buf = (self._buf + text) if self._buf else text.lstrip()
        return self._cut(now, final=False)

    def due(self) -> list[str]:
        """Chunks that time alone made ready (rules 1 and 3); call it when next_due_s() says."""
        return self._cut(self.clock(), final=False)

    def flush(self) -> list[str]:
        """The LLM finished: everything left, cut at sentences. Reports the clause lengths."""
        out = self._cut(self.clock(), final=True)
        self.rates.clauses(_clause_lengths("".join(self._text)))
        self._text.clear()
        self._first = True
        self._first_token_t = self._last_push_t = None
        return out

    def next_due_s(self) -> float | None:
        """Seconds until due() may cut the text in hand; None: only new text can change it."""
        if not self._buf:
            return None
        now = self.clock()
        end = self._time_cut(list(boundaries(self._buf)))
        if end is None:
            return None
        if self._first:
            assert self._first_token_t is not None  # there is text
            return max(0.0, self._first_token_t + self.settings.first_chunk_budget_ms / 1000 - now)
        return max(0.0, self._slack(now, end) - self.settings.safety_margin_ms / 1000)

    # --- the TTS side ---

    def audio_queued(
        self, audio_s: float, *, chunk_done: bool = True, of_chunk: bool = True
    ) -> None:
        """Audio of the oldest chunk still being synthesised was queued for playout now;
        `chunk_done`: that chunk's synthesis has finished (the next one starts now).
        `of_chunk=False`: audio from elsewhere (a filler): it only lengthens what is ahead."""
        now = self.clock()
        self._play_end = max(now, self._play_end or now) + max(0.0, audio_s)
        if not self._synthesising or not of_chunk:
            return
        self._synthesising[0].queued_s += audio_s
        if chunk_done:
            self._synthesising.popleft()
            if self._synthesising:
                self._synthesising[0].started_t = max(now, self._synthesising[0].emitted_t)

    def ahead_s(self) -> float:
        """Expected seconds of this reply's audio still ahead of the caller, from now."""
        now = self.clock()
        return self._timeline(now, [])[0] - now

    def silence_ahead_s(self) -> float:
        """Expected silence before the next chunk's audio if the LLM goes on at its speed (0 when
        none is expected): when it is long, a short filler may cover it."""
        if self._first_token_t is None:
            return 0.0
        now = self.clock()
        c_next = max(len(self._buf), round(self.rates.clause_chars))
        write_s = self.rates.llm_s(max(0, c_next - len(self._buf)))
        return max(0.0, -self._timeline(now, [(c_next, now + write_s)])[1])

    # --- decisions ---

    def _cut(self, now: float, *, final: bool) -> list[str]:
        out: list[str] = []
        while self._buf and (end := self._next_end(now, final)) is not None:
            segment = self._buf[:end].strip()
            self._buf = self._buf[end:].lstrip()
            if speakable(segment):
                out.append(segment)
                self._first = False
                started = None if self._synthesising else now
                self._synthesising.append(_Chunk(len(segment), now, started))
        return out

    def _next_end(self, now: float, final: bool) -> int | None:
        """End of the next chunk in the buffer, or None to wait for more text or time."""
        found = list(boundaries(self._buf))
        limit = self.settings.max_chars
        for boundary in found:
            if boundary.end > limit:
                break
            if boundary.kind in ("newline", "sentence"):
                return boundary.end
            if boundary.kind == "pending" and final:
                return boundary.end
            if boundary.kind == "clause" and self._clause_is_a_chunk(now, boundary.end):
                return boundary.end
        if len(self._buf) > limit:
            return self._long()
        if final:
            return len(self._buf)
        end = self._time_cut(found)
        if end is None:
            return None
        if self._first:
            assert self._first_token_t is not None
            waited_ms = (now - self._first_token_t) * 1000
            return end if waited_ms >= self.settings.first_chunk_budget_ms - 1e-6 else None
        # Rule 3: the audio ahead runs out before this text could be heard if it waited.
        return end if self._slack(now, end) <= self.settings.safety_margin_ms / 1000 else None

    def _long(self) -> int:
        return cut_long(self._buf, self.settings.max_chars)

    def _clause_is_a_chunk(self, now: float, end: int) -> bool:
        if self._first:
            return end >= self.settings.first_clause_min_chars
        rates, margin = self.rates, self.settings.safety_margin_ms / 1000
        written_after = len(self._buf) - end
        clause = round(rates.clause_chars)
        more_s = rates.llm_s(max(0, clause - written_after))
        # Enough audio ahead to wait for one more clause and synthesise both as one chunk.
        if self._timeline(now, [(end + clause, now + more_s)])[1] >= margin:
            return False
        # Cut only if the next clause can be written and synthesised before this one is heard.
        chunks = [(end, now), (clause, now + more_s)]
        return self._timeline(now, chunks)[1] >= margin

    def _slack(self, now: float, end: int) -> float:
        """How long the caller would still hear audio when text buf[:end], cut now, is ready."""
        return self._timeline(now, [(end, now)])[1]

    def _timeline(self, now: float, extra: list[tuple[int, float]]) -> tuple[float, float]:
        """(when the audio runs out, slack before the last chunk's first audio) with chunks of
        `extra` (chars, handed to TTS at) added after the pending ones. Slack is the audio
        still ahead when that chunk's first audio arrives; negative: silence that long."""
        rates = self.rates
        audio_end = max(now, self._play_end or now)
        tts_free = now
        slack = audio_end - now
        chunks = [(c.chars, c.emitted_t, c.started_t, c.queued_s) for c in self._synthesising]
        chunks += [(chars, at, None, 0.0) for chars, at in extra]
        for chars, emitted_t, started_t, queued_s in chunks:
            start = started_t if started_t is not None else max(emitted_t, tts_free)
            tts_free = start + rates.synth_s(chars)
            remaining = max(0.0, rates.speech_s(chars) - queued_s)
            if queued_s > 0:  # its audio is streaming in already
                slack = audio_end - now
                audio_end += remaining
                continue
            ready = max(now, start + rates.first_audio_s(chars))  # late: it may come any moment
            slack = audio_end - ready
            audio_end = max(audio_end, ready) + remaining
        return audio_end, slack

    def _time_cut(self, found: list[Boundary]) -> int | None:
        """Where rules 1 and 3 may cut: the last boundary in `found` that ends a chunk naturally
        and is long enough, or a sentence end still waiting for the next token."""
        minimum = self.settings.min_chunk_chars
        best = None
        for boundary in found:
            if boundary.end > self.settings.max_chars:
                break
            if boundary.kind == "pending":
                # "клиентов." at the end of the text: almost surely a sentence end, kept back only
                # until the next token shows no "»" or digit follows. Time presses: cut there.
                if _ends_with_a_sentence_mark(self._buf):
                    best = boundary.end
            elif boundary.end < minimum:
                continue
            elif boundary.kind == "clause" or (
                boundary.kind == "space" and _reads_naturally(self._buf, boundary.end)
            ):
                best = boundary.end
        return best


def _reads_naturally(buf: str, end: int) -> bool:
    """Whether a chunk may end at buf[end] (a space after a word) and the next start after it."""
    word = buf[:end].rstrip().split()[-1].strip(_WORD_EDGE)
    if not word or word.endswith(("-", "—", "–")) or any(c.isdigit() for c in word):
        return False
    if word.endswith(".") and is_abbreviation(word_before(word, len(word) - 1).lower()):
        return False
    if word.rstrip(".,;:!?…").lower() in _LEANS_RIGHT:
        return False
    rest = buf[end:].split()
    if not rest:
        return True
    following = rest[0].strip(_WORD_EDGE).lower()
    complete = len(rest) > 1 or buf[-1].isspace() or not following.isalpha()
    if complete:
        return following.rstrip(".,;:!?…") not in _LEANS_LEFT
    # The next word is still being written: it may turn out to be "бы" or "же".
    return not any(enclitic.startswith(following) for enclitic in _LEANS_LEFT)


def _ends_with_a_sentence_mark(buf: str) -> bool:
    """Whether buf ends with ".", "!", "?" or "…" after a word that is no abbreviation."""
    body = buf.rstrip(_CLOSERS_AND_TERMINATORS)
    if len(body) == len(buf) or not body or not body[-1].isalpha():
        return False
    return not is_abbreviation(word_before(body, len(body)).lower())


def _clause_lengths(text: str) -> list[int]:
    """Lengths of the clauses (to a clause mark, sentence end or line end) of a whole answer."""
    text = text.strip()
    ends = [b.end for b in boundaries(text) if b.kind in ("clause", "sentence", "newline")]
    ends.append(len(text))
    lengths, start = [], 0
    for end in ends:
        if end > start:
            lengths.append(len(text[start:end].strip()))
            start = end
    return [length for length in lengths if length]
