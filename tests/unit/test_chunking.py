"""ChunkPlanner: each cutting rule with a fake clock and fixed rates, and a simulated reply."""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from dataclasses import dataclass, field

import pytest

from voiceplat.sessions.chunking import ChunkingSettings, ChunkPlanner
from voiceplat.sessions.speech_rates import Priors, SpeechRates
from voiceplat.sessions.text import SentenceSplitter

# Rates that stay fixed (prior_weight huge): each test knows what the planner expects.
PRIORS = Priors(
    llm_chars_per_s=30.0,
    tts_first_audio_base_s=0.2,
    tts_first_audio_s_per_char=0.008,
    tts_rtf=0.15,
    speech_s_per_char=0.085,
    clause_chars=30.0,
)


def fixed_rates(**changes: float) -> SpeechRates:
    return SpeechRates(dataclasses.replace(PRIORS, **changes), prior_weight=10**9)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def llm_tokens(text: str) -> list[str]:
    """Chunks the way LLM streams look: a word with its leading space, punctuation apart."""
    return re.findall(r"\s*\w+|\s*[^\w\s]", text)


def planner(clock: Clock, rates: SpeechRates | None = None, **settings: int) -> ChunkPlanner:
    return ChunkPlanner(
        rates or fixed_rates(), clock, ChunkingSettings(**settings), measure_llm=False
    )


def push_all(p: ChunkPlanner, text: str) -> list[str]:
    return [chunk for token in llm_tokens(text) for chunk in p.push(token)]


# --- rule 1: the first chunk ---


def test_first_chunk_goes_by_the_time_budget_without_punctuation() -> None:
    clock = Clock()
    p = planner(clock, first_chunk_budget_ms=600)
    assert push_all(p, "Доставка в выходные может быть включена в стоимость") == []
    assert p.next_due_s() == pytest.approx(0.6)
    clock.t += 0.599
    assert p.due() == []
    clock.t += 0.001
    # The last word boundary that reads naturally: not after "в", and the half-written last
    # word "стоимость" may go on.
    assert p.due() == ["Доставка в выходные может быть включена"]
    assert p.flush() == ["в стоимость"]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Запишу вас на приём к врачу на", "Запишу вас на приём к врачу"),
        ("Мы находимся по адресу ул. Ленина", "Мы находимся по адресу"),
        ("Приём стоит ровно 1500 рублей в", "Приём стоит ровно 1500 рублей"),
        ("Приём стоит ровно 1500 рублей", "Приём стоит ровно"),
        ("Врач Иванов и Петров примет", "Врач Иванов и Петров"),
        ("Вы не могли бы перезвонить", "Вы не могли бы"),
        ("Вы не могли б", None),
        ("Скажите, пожалуйста, что", "Скажите, пожалуйста,"),
        ("I can book you for the", "I can book you"),
    ],
)
def test_the_budget_cut_reads_naturally(text: str, first: str | None) -> None:
    clock = Clock()
    p = planner(clock, first_clause_min_chars=1000, min_chunk_chars=5)
    push_all(p, text)
    clock.t += 10
    assert p.due() == ([first] if first else [])


def test_no_natural_boundary_waits_for_more_text_not_the_timer() -> None:
    clock = Clock()
    p = planner(clock)
    p.push("Здравствуйте")
    assert p.next_due_s() is None  # no word is complete yet: nothing the timer could cut
    clock.t += 5
    assert p.due() == []
    assert p.push(" дорогой") == ["Здравствуйте"]  # over budget: cut at once


def test_first_chunk_ends_earlier_at_a_sentence_or_a_long_enough_clause() -> None:
    clock = Clock()
    p = planner(clock, first_clause_min_chars=8)
    assert push_all(p, "Да.") == []
    assert p.push(" Конечно") == ["Да."]
    clock = Clock()
    p = planner(clock, first_clause_min_chars=8)
    assert push_all(p, "Да, конечно, записываю") == ["Да, конечно,"]


def test_budget_counts_from_the_first_token() -> None:
    clock = Clock()
    p = planner(clock, first_chunk_budget_ms=600)
    p.push("Доставка")
    clock.t += 0.5
    assert push_all(p, " в выходные может") == []
    clock.t += 0.1
    assert p.push(" быть") == ["Доставка в выходные может"]


# --- rule 2: later chunks at clause marks ---


def start_reply(clock: Clock, p: ChunkPlanner, audio_s: float) -> None:
    """The first chunk was cut and its audio (audio_s long) is playing from now."""
    assert p.push("Здравствуйте!") == []
    assert p.push(" ") == ["Здравствуйте!"]
    p.audio_queued(audio_s)


def test_a_clause_that_covers_the_next_one_is_cut() -> None:
    clock = Clock()
    p = planner(clock)  # 30 chars/s: the next clause is written in 1 s, heard after 0.44 s
    start_reply(clock, p, audio_s=1.5)
    out = push_all(p, "Я могу записать вас на завтра, на десять утра")
    assert out == ["Я могу записать вас на завтра,"]  # 2.5 s of audio covers ~1.5 s


def test_a_clause_that_cannot_cover_a_slow_llm_is_kept_growing() -> None:
    clock = Clock()
    p = planner(clock, fixed_rates(llm_chars_per_s=5.0))  # the next clause takes 6 s to write
    start_reply(clock, p, audio_s=10.0)
    clock.t += 9.0  # 1 s of audio left; the clause (2.5 s) would not outlast the next 6 s
    assert push_all(p, "Я могу записать вас на завтра, на") == []


def test_with_much_audio_ahead_a_clause_waits_to_join_the_next() -> None:
    clock = Clock()
    p = planner(clock)
    start_reply(clock, p, audio_s=10.0)
    assert push_all(p, "Я могу записать вас на завтра, на десять утра") == []
    assert push_all(p, ". Вам") == ["Я могу записать вас на завтра, на десять утра."]


def test_the_same_clause_is_cut_once_the_audio_ahead_runs_low() -> None:
    clock = Clock()
    p = planner(clock)
    start_reply(clock, p, audio_s=10.0)
    assert push_all(p, "Я могу записать вас на завтра, ") == []
    clock.t += 9.5  # 0.5 s of audio left: the clause is needed now
    assert p.due() == ["Я могу записать вас на завтра,"]


# --- rule 3: about to run dry ---


def test_running_dry_cuts_at_a_word_boundary() -> None:
    clock = Clock()
    p = planner(clock)
    start_reply(clock, p, audio_s=2.0)
    assert push_all(p, "Стоимость доставки в выходные может") == []
    due = p.next_due_s()
    assert due is not None and 0 < due < 2.0
    clock.t += due - 0.01
    assert p.due() == []
    clock.t += 0.01
    assert p.due() == ["Стоимость доставки в выходные"]


def test_short_text_is_not_cut_even_when_running_dry() -> None:
    clock = Clock()
    p = planner(clock, min_chunk_chars=12)
    start_reply(clock, p, audio_s=0.5)
    clock.t += 1.0
    assert push_all(p, "Доставка в") == []


def test_chunks_still_in_synthesis_count_as_audio_ahead() -> None:
    clock = Clock()
    p = planner(clock)
    start_reply(clock, p, audio_s=1.5)
    assert push_all(p, "Я могу записать вас на завтра, на") == ["Я могу записать вас на завтра,"]
    # 1.5 s queued, then the clause (30 chars: 0.44 s to synthesise, 2.55 s of audio).
    assert p.ahead_s() == pytest.approx(1.5 + 2.55)
    clock.t += 0.44
    p.audio_queued(2.55)
    assert p.ahead_s() == pytest.approx(1.5 + 2.55 - 0.44)
    clock.t += 1.0
    assert p.ahead_s() == pytest.approx(1.5 + 2.55 - 1.44)


def test_a_late_synthesis_is_expected_any_moment_not_in_the_past() -> None:
    clock = Clock()
    p = planner(clock)
    start_reply(clock, p, audio_s=1.5)
    assert push_all(p, "Я могу записать вас на завтра, на") == ["Я могу записать вас на завтра,"]
    clock.t += 3.0  # its audio was due long ago and has not come
    assert p.ahead_s() == pytest.approx(2.55)
    assert p.silence_ahead_s() == 0.0  # the LLM at 30 chars/s keeps up with that


def test_a_filler_lengthens_the_audio_ahead_without_finishing_a_chunk() -> None:
    clock = Clock()
    p = planner(clock)
    start_reply(clock, p, audio_s=1.5)
    push_all(p, "Я могу записать вас на завтра, на")
    p.audio_queued(0.7, of_chunk=False)  # "Так..." while the clause is synthesised
    assert p.ahead_s() == pytest.approx(1.5 + 0.7 + 2.55)
    clock.t += 0.44
    p.audio_queued(2.55)
    assert p.ahead_s() == pytest.approx(1.5 + 0.7 + 2.55 - 0.44)


def test_a_slow_llm_means_silence_ahead() -> None:
    clock = Clock()
    p = planner(clock, fixed_rates(llm_chars_per_s=3.0))
    start_reply(clock, p, audio_s=1.0)
    assert p.silence_ahead_s() == pytest.approx(30 / 3.0 + 0.44 - 1.0, abs=0.01)


# --- the text rules of SentenceSplitter ---


def test_numbers_and_abbreviations_are_never_cut_even_under_time_pressure() -> None:
    text = (
        "Приём стоит 3.5 тыс. руб. в месяц, врач А. С. Иванов, т.е. терапевт, на ул. Ленина "
        "д. 5 примет вас с 9.00 до 18.00 и т.д. Также Dr. Lee, e.g. at 9.30 a.m. today."
    )
    clock = Clock()
    p = planner(clock, fixed_rates(llm_chars_per_s=2.0), min_chunk_chars=1)
    chunks: list[str] = []
    for token in llm_tokens(text):
        clock.t += 1.0  # starved all the time: every rule wants to cut
        chunks += p.push(token) + p.due()
    chunks += p.flush()
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        last = chunk.split()[-1]
        assert not any(c.isdigit() for c in last), chunks
        assert last not in {"тыс.", "А.", "С.", "т.е.", "ул.", "д.", "Dr.", "e.g.", "в", "и"}


def test_same_sentences_as_the_splitter_when_time_does_not_press() -> None:
    text = "Здравствуйте! Приём длится 30 мин. Записать вас? Это 500 руб. Подходит?"
    clock = Clock()
    p = planner(clock)
    got = push_all(p, text) + p.flush()
    splitter = SentenceSplitter(first_clause_min_chars=8)
    want = [s for token in llm_tokens(text) for s in splitter.push(token)] + splitter.flush()
    assert got == want == ["Здравствуйте!", "Приём длится 30 мин.", "Записать вас?",
                           "Это 500 руб.", "Подходит?"]  # fmt: skip


def test_long_text_is_cut_at_max_chars() -> None:
    clock = Clock()
    p = planner(clock, max_chars=40, first_chunk_budget_ms=10**4)
    chunks = push_all(p, " ".join(["слово"] * 30)) + p.flush()
    assert all(len(c) <= 40 for c in chunks)
    assert " ".join(chunks) == " ".join(["слово"] * 30)


# --- what the planner feeds SpeechRates ---


def test_push_measures_the_llm_and_flush_the_clauses() -> None:
    clock = Clock()
    rates = SpeechRates(PRIORS, prior_weight=0)
    p = ChunkPlanner(rates, clock)
    p.push("Да")  # first token: its wait is prompt evaluation, not counted
    for token in [", я", " могу", " вас", " записать", "."]:
        clock.t += 0.1
        p.push(token)
    assert rates.llm_chars_per_s == pytest.approx(len(", я могу вас записать.") / 0.5)
    p.flush()
    assert rates.clause_chars == pytest.approx((3 + 20) / 2)


def test_each_reply_starts_over_after_flush() -> None:
    clock = Clock()
    p = planner(clock)
    push_all(p, "Первый ответ. ")
    p.flush()
    clock.t += 100
    assert push_all(p, "Второй ответ без") == []  # a new budget, from this first token
    clock.t += 0.6
    assert p.due() == ["Второй ответ"]


# --- a whole reply, simulated: no gaps where the splitter leaves seconds ---


@dataclass
class Playout:
    first_token_at: float
    first_audio_at: float | None = None
    gaps: list[float] = field(default_factory=list)
    end: float = 0.0


def simulate(
    text: str, cut: str, llm_cps: float, tts: tuple[float, float] = (0.2, 0.008), step: float = 0.01
) -> Playout:
    """A fake LLM writes `text` at llm_cps after 0.5 s; a fake TTS takes tts[0] s + tts[1] s/char
    to the audio of 85 ms/char, one chunk at a time; the caller hears it in order."""
    clock = Clock()
    start = clock.t
    tokens = llm_tokens(text)
    times, written = [], 0
    for token in tokens:
        written += len(token)
        times.append(start + 0.5 + written / llm_cps)
    rates = SpeechRates(Priors(llm_chars_per_s=llm_cps), prior_weight=2)
    p = ChunkPlanner(rates, clock)
    splitter = SentenceSplitter(first_clause_min_chars=8)
    queue: deque[str] = deque()
    busy_until: float | None = None
    busy_start = 0.0
    current = ""
    out = Playout(first_token_at=times[0] - start)
    flushed = False
    while not (flushed and not queue and busy_until is None):
        now = clock.t
        while tokens and times[0] <= now:
            token = tokens.pop(0)
            times.pop(0)
            queue.extend(p.push(token) if cut == "planner" else splitter.push(token))
        if not tokens and not flushed:
            queue.extend(p.flush() if cut == "planner" else splitter.flush())
            flushed = True
        if cut == "planner":
            queue.extend(p.due())
        if busy_until is not None and now >= busy_until:
            audio_s = 0.085 * len(current)
            p.audio_queued(audio_s)
            rates.tts_done(len(current), busy_until - busy_start, audio_s)
            if out.first_audio_at is None:
                out.first_audio_at, out.end = now - start, now
            elif now > out.end:
                out.gaps.append(now - out.end)
            out.end = max(out.end, now) + audio_s
            busy_until = None
        if busy_until is None and queue:
            current = queue.popleft()
            busy_start, busy_until = now, now + tts[0] + tts[1] * len(current)
        clock.t = round(now + step, 6)
    return out


REPLY = (
    "Здравствуйте! Доставка в выходные может быть включена в стоимость заказа если его сумма "
    "больше пяти тысяч рублей а в будние дни она бесплатна для всех постоянных клиентов. "
    "Оформить заказ можно по телефону или на сайте."
)


# Festival measured alone, and with the LLM generating at the same time on the 2 cores.
@pytest.mark.parametrize("tts", [(0.2, 0.008), (0.35, 0.0155)])
def test_simulated_reply_has_no_gaps_inside_it(tts: tuple[float, float]) -> None:
    splitter = simulate(REPLY, "splitter", llm_cps=25, tts=tts)
    chunked = simulate(REPLY, "planner", llm_cps=25, tts=tts)
    # The splitter waits for the long sentence to end: the caller hears seconds of silence.
    assert max(splitter.gaps) > 1.0
    assert max(chunked.gaps, default=0.0) <= 0.1
    assert chunked.first_audio_at is not None
    assert chunked.first_audio_at - chunked.first_token_at <= 0.6 + 0.5


def test_simulated_long_first_sentence_is_heard_by_the_budget() -> None:
    text = REPLY.removeprefix("Здравствуйте! ")
    splitter = simulate(text, "splitter", llm_cps=25)
    chunked = simulate(text, "planner", llm_cps=25)
    assert splitter.first_audio_at is not None and splitter.first_audio_at > 4.0
    # The budget (0.6 s) after the first token, the token that shows the word ended, synthesis.
    assert chunked.first_audio_at is not None
    assert chunked.first_audio_at - chunked.first_token_at <= 0.6 + 0.5
    assert max(chunked.gaps, default=0.0) <= 0.1


def test_simulated_slow_llm_leaves_short_gaps_instead_of_a_long_one() -> None:
    # 12 chars/s is about real time for speech (85 ms/char): some gaps cannot be avoided, but
    # they are split small instead of one silence the length of the sentence.
    splitter = simulate(REPLY, "splitter", llm_cps=12)
    chunked = simulate(REPLY, "planner", llm_cps=12)
    assert max(splitter.gaps) > 10.0
    assert max(chunked.gaps) < 0.7
    assert sum(chunked.gaps) < 1.5
