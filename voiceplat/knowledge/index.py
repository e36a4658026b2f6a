"""Retrieval over a robot's knowledge files: BM25 (the `bm25s` package) over Russian lemmas.

Each passage (title and text) becomes its content lemmas (voiceplat/knowledge/lemmas.py), with
the configured synonym groups folded into one term, so "сколько стоит приём" finds "Цены: приём
терапевта — 1500 ₽". bm25s takes pre-tokenised documents and scores with numpy alone; a search on
a ~200-passage file takes well under a millisecond after the lemma cache is warm
(benchmarks/retrieval.py). The index is built once, when the robot starts.

An FAQ answer is spoken directly (`direct_answer`) only when retrieval is confident:
- the FAQ question matching the caller's words best (idf-weighted) matches `direct_margin` times
  better than the next FAQ question (two questions alike: the LLM decides), and its passage
  scores at least `direct_min_score`;
- the caller said no word that this FAQ pair lacks but other passages have: "Сколько стоит
  приём в субботу?" is not "Сколько стоит приём?" when the knowledge talks about Saturdays;
- most of the caller's words are in the pair (`direct_coverage`) and most of the question's
  words were said (`direct_question_coverage`).
Greetings and question words ("здравствуйте", "сколько", "где") count for none of this.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voiceplat.errors import RobotError
from voiceplat.forms.match import says_any
from voiceplat.forms.numbers import tokenize
from voiceplat.forms.state import is_question
from voiceplat.knowledge.facts import FactAnswer, FactIndex
from voiceplat.knowledge.lemmas import (
    STOP_LEMMAS,
    content_lemmas,
    is_noun,
    lemma,
    lemma_candidates,
    names_a_thing,
    words,
)
from voiceplat.knowledge.passages import Passage, read_passages
from voiceplat.knowledge.settings import KnowledgeSettings

if TYPE_CHECKING:
    import bm25s

IGNORED_LEMMAS = frozenset(
    "здравствуйте здравствовать привет алло добрый спасибо благодарить "
    "девушка извинить простить интересовать узнать уточнить вопрос спросить "
    "есть сколько где когда куда откуда почему зачем кто чем чего нужно надо нужный".split()
)
"""Words around a question rather than in it: greetings, "меня интересует", question words,
"есть ли у вас" (the rare "есть" = eat is lost: "натощак" says it in a knowledge file)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage retrieval found and its score (higher is more relevant)."""

    passage: Passage
    score: float
    """BM25 over the largest idf the files can give (a word only one passage has): ~0.4 for each
    such word matched, whatever the number of passages, so one threshold suits every file."""


class KnowledgeBase:
    """A BM25 index over passages. Build once (~30 ms for 200 passages); search per turn."""

    def __init__(self, passages: list[Passage], settings: KnowledgeSettings) -> None:
        import bm25s  # imported here: robots without knowledge files never load it

        self.passages = passages
        self.settings = settings
        self._synonyms = _synonym_map(settings.synonym_groups())
        # The heading twice: it names what the passage is about ("Часы работы"), where its
        # text may use the caller's words for something else ("работаете по ОМС").
        documents = [self._terms(f"{p.title}\n{_leaf(p.title)}\n{p.text}") for p in passages]
        self._vocabulary = {term for document in documents for term in document}
        self._bm25: bm25s.BM25 | None = None
        if self._vocabulary:
            self._bm25 = bm25s.BM25()
            self._bm25.index(documents, show_progress=False)
        # bm25s's idf (Lucene's): log(1 + (N - df + 0.5) / (df + 0.5)); at df = 1 the largest.
        count = max(len(passages), 1)
        self._max_idf = math.log(1 + (count - 0.5) / 1.5)
        self._scale = 1 / self._max_idf
        frequency = Counter(term for document in documents for term in set(document))
        self._idf = {
            term: math.log(1 + (count - df + 0.5) / (df + 0.5)) for term, df in frequency.items()
        }
        self._faq = [i for i, p in enumerate(passages) if p.answer]
        self._pair_terms = [set(document) for document in documents]
        self._question_terms = [set(self._terms(p.question or "")) for p in passages]
        self._asked_in: dict[str, list[int]] = {}  # term → the FAQ passages whose question has it
        for i in self._faq:
            for term in self._question_terms[i]:
                self._asked_in.setdefault(term, []).append(i)
        self._last: tuple[str, list[str], np.ndarray] | None = None
        self._known_forms: dict[str, str | None] = {}
        self._last_fact: tuple[str, FactAnswer | None] | None = None
        self.facts = FactIndex(passages, self._terms)

    def __len__(self) -> int:
        return len(self.passages)

    def search(self, text: str, k: int | None = None) -> list[Hit]:
        """The passages for the caller's words, best first: at most `k` (settings.top_k)."""
        k = self.settings.top_k if k is None else k
        _, scores = self._scored(text)
        if k <= 0 or not scores.any():
            return []
        order = np.argsort(-scores, kind="stable")[:k]
        floor = max(
            self.settings.min_score, float(scores[order[0]]) * self.settings.min_relative_score
        )
        return [
            Hit(self.passages[i], float(scores[i]))
            for i in order
            if scores[i] > 0 and scores[i] >= floor
        ]

    def direct_answer(self, text: str) -> Hit | None:
        """The FAQ passage whose answer can be spoken as is, or None (the LLM answers)."""
        settings = self.settings
        if not settings.direct_answers or not self._faq:
            return None
        said, scores = self._scored(text)
        if not said:
            return None
        said_terms = set(said)
        # Rival FAQ pairs are compared by their questions: an answer that mentions the caller's
        # words ("терапевт выезжает на дом…") does not make its question a rival.
        candidates = {i for term in said_terms for i in self._asked_in.get(term, ())}
        matches = sorted(
            ((self._question_match(said_terms, i), i) for i in candidates), reverse=True
        )
        if not matches:
            return None
        (match, best), runner_up = matches[0], matches[1][0] if len(matches) > 1 else 0.0
        top = float(scores[best])
        if (
            not match
            or top < settings.direct_min_score
            or match < runner_up * settings.direct_margin
        ):
            return None
        pair, question = self._pair_terms[best], self._question_terms[best]
        if any(term in self._vocabulary for term in said_terms - pair):
            return None  # the caller asked something more specific that the knowledge has
        covered = len(said_terms & pair) / len(said_terms)
        asked = len(said_terms & question) / len(question) if question else 0.0
        if covered < settings.direct_coverage or asked < settings.direct_question_coverage:
            return None
        return Hit(self.passages[best], top)

    def _question_match(self, said: set[str], passage: int) -> float:
        """How well an FAQ question matches the caller's words: idf-weighted Jaccard."""
        question = self._question_terms[passage]
        union = sum(self._idf.get(term, self._max_idf) for term in said | question)
        return sum(self._idf[term] for term in said & question) / union if union else 0.0

    def fact_answer(self, text: str) -> FactAnswer | None:
        """The knowledge sentences that answer the caller's words, or None (the LLM answers):
        `facts_*` settings; voiceplat/knowledge/facts.py."""
        settings = self.settings
        if not settings.fact_answers or not asks(text):
            return None  # "Мне бы к неврологу на понедельник": a request, for the form or LLM
        if self._last_fact is not None and self._last_fact[0] == text:
            return self._last_fact[1]  # the form's check and the answer ask about the same words
        found = self._fact_answer(without_greetings(text))
        self._last_fact = (text, found)
        return found

    def _fact_answer(self, text: str) -> FactAnswer | None:
        settings = self.settings
        said = list(dict.fromkeys(self.caller_terms(text)))
        found = self.facts.best(
            said, min_score=settings.facts_min_score, min_coverage=settings.facts_min_coverage
        )
        if found is None:
            return None
        named = [self.known_form(word) or lemma(word) for word in self._things(text)]
        if any(term not in self._vocabulary for term in named):
            # The caller named something the files lack ("холтер", "сертификат"): only an
            # answer about most of what they named is theirs ("папа … медсестра домой кровь").
            share = sum(term in found.terms for term in named) / len(named)
            if share <= settings.facts_unknown_noun_share:
                return None
        return found

    def sentences(self, text: str, k: int | None = None) -> list[str]:
        """The knowledge sentences that match the caller's words best, best first (at most
        `k`, settings.top_k): what the LLM reads with `knowledge.reference` "sentences"."""
        said = set(self.caller_terms(text))
        return self.facts.ranked(said, self.settings.top_k if k is None else k)

    def asks_about_the_unknown(self, text: str) -> bool:
        """A question that names something no knowledge file has ("а холтер у вас ставят?"),
        not "медленнее можно?" nor "терапевт в субботу принимает?"."""
        if not asks(text):
            return False
        things = self._things(without_greetings(text))
        return any(self.known_form(word) is None for word in things)

    def caller_terms(self, text: str) -> list[str]:
        """The caller's content terms, each read as a word the knowledge files have where one of
        its possible lemmas (or a near form: "щитовидка" → "щитовидный") is there."""
        terms = []
        for word in words(text):
            term = self.known_form(word) or self._synonyms.get(lemma(word), lemma(word))
            if term not in STOP_LEMMAS and term not in IGNORED_LEMMAS:
                terms.append(term)
        return terms

    def known_form(self, word: str) -> str | None:
        """The knowledge files' term for one said word, or None when they have none."""
        if word in self._known_forms:
            return self._known_forms[word]
        found: str | None = None
        candidates = lemma_candidates(word)
        for candidate in candidates:
            term = self._synonyms.get(candidate, candidate)
            if term in self._vocabulary:
                found = term
                break
        else:
            found = self._near_term(candidates[0])
        self._known_forms[word] = found
        return found

    def _near_term(self, term: str) -> str | None:
        """The vocabulary term sharing the longest prefix with `term`, when that prefix is at
        least NEAR_MIN_PREFIX letters and all but NEAR_MAX_SUFFIX of the shorter word
        ("справочка" ~ "справка", "щитовидка" ~ "щитовидный", "стоматолог" ~ "стоматология")."""
        if len(term) < NEAR_MIN_PREFIX or not term.isalpha():
            return None
        best, best_length = None, 0
        for known in self._vocabulary:
            length = _common_prefix(term, known)
            need = max(NEAR_MIN_PREFIX, min(len(term), len(known)) - NEAR_MAX_SUFFIX)
            if length >= need and length > best_length:
                best, best_length = known, length
        return best

    def _nouns(self, text: str) -> list[str]:
        return _content_words(text, shortest=4, kind=is_noun)

    def _things(self, text: str) -> list[str]:
        """The words of `text` that name something, abbreviations ("ВИЧ") and words the
        dictionary lacks ("холтер") included."""
        return _content_words(text, shortest=3, kind=names_a_thing)

    def unknown_nouns(self, text: str) -> list[str]:
        """The caller's nouns that no knowledge file has (as said): "витамин" in "сколько стоит
        анализ на витамин Д?" — the files say nothing of it, whatever passages share the rest."""
        return [word for word in self._nouns(text) if self.known_form(word) is None]

    def _terms(self, text: str) -> list[str]:
        terms = (self._synonyms.get(x, x) for x in content_lemmas(text))
        return [term for term in terms if term not in IGNORED_LEMMAS]

    def _scored(self, text: str) -> tuple[list[str], np.ndarray]:
        """The caller's terms (unique, in order) and every passage's score; the last is cached."""
        if self._last is not None and self._last[0] == text:
            return self._last[1], self._last[2]
        said = list(dict.fromkeys(self._terms(text)))
        known = [term for term in said if term in self._vocabulary]
        if self._bm25 is None or not known:
            scores = np.zeros(len(self.passages), dtype=np.float32)
        else:
            scores = self._bm25.get_scores(known) * self._scale
        self._last = (text, said, scores)
        return said, scores


ASKING_PHRASES = (
    "подскажите", "скажите", "расскажите", "уточните", "интересует", "хотел узнать",
    "хотела узнать", "хочу узнать", "не подскажете", "не скажете",
)  # fmt: skip
"""An indirect question ("подскажите, пожалуйста, ваш адрес."), which ASR ends with a full stop."""


_GREETING = re.compile(
    r"\bдобр(?:ый|ое|ого|ой)\s+(?:день|дня|утро|утра|вечер|вечера)\b", re.IGNORECASE
)


def without_greetings(text: str) -> str:
    """`text` without "добрый день": its "день" names nothing the caller asks about."""
    return _GREETING.sub(" ", text)


def asks(text: str) -> bool:
    """The caller asks something: a question, or words that ask for an answer."""
    tokens = tokenize(text)
    return is_question(text, tokens) or says_any(tokens, ASKING_PHRASES)


def _content_words(text: str, *, shortest: int, kind: Callable[[str], bool]) -> list[str]:
    """The words of `text` (as said, each once) of a kind, not shorter than `shortest`."""
    found = []
    for word in words(text):
        term = lemma(word)
        if len(word) >= shortest and term not in IGNORED_LEMMAS and term not in STOP_LEMMAS:
            if kind(word):
                found.append(word)
    return list(dict.fromkeys(found))


NEAR_MIN_PREFIX = 5
NEAR_MAX_SUFFIX = 2
"""A said word is a knowledge word when they share a prefix of at least 5 letters that is all
but at most 2 letters of the shorter one."""


def _common_prefix(a: str, b: str) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def _synonym_map(groups: list[list[str]]) -> dict[str, str]:
    """Every lemma of a group → the group's first lemma."""
    mapping: dict[str, str] = {}
    for group in groups:
        lemmas = [lemma(word.lower().replace("ё", "е")) for word in group]
        for term in lemmas:
            mapping[term] = lemmas[0]
    return mapping


def knowledge_files(robot_dir: Path, settings: KnowledgeSettings) -> list[Path]:
    """The files the settings' patterns match, in pattern order, each once."""
    found: dict[Path, None] = {}
    for pattern in settings.files:
        for path in sorted(robot_dir.glob(pattern)):
            if path.is_file():
                found.setdefault(path, None)
    return list(found)


def _read_all(robot_dir: Path, settings: KnowledgeSettings) -> tuple[list[Passage], list[str]]:
    passages: list[Passage] = []
    problems: list[str] = []
    limit = settings.max_total_kb * 1024
    total = 0
    for path in knowledge_files(robot_dir, settings):
        label = path.relative_to(robot_dir).as_posix()
        try:
            total += path.stat().st_size
        except OSError as error:
            problems.append(f"{label}: cannot be read ({error.strerror or error})")
            continue
        if total > limit:
            problems.append(
                f"{label}: the knowledge files come to {-(-total // 1024)} KiB with this one, over "
                f"knowledge.max_total_kb = {settings.max_total_kb}; leave out what callers never "
                "ask about or raise the limit"
            )
            break
        try:
            passages.extend(read_passages(path, label, settings.max_passage_chars))
        except RobotError as error:
            problems.extend(error.problems)
    return passages, problems


def knowledge_problems(robot_dir: Path, settings: KnowledgeSettings) -> list[str]:
    """What `voiceplat check` reports about the knowledge files.

    No file matching the default patterns is no problem (a robot without knowledge); patterns
    the robot's config names itself that match nothing are.
    """
    if "files" in settings.model_fields_set and not knowledge_files(robot_dir, settings):
        return [f"knowledge.files: {', '.join(settings.files)} match no file in {robot_dir}"]
    return _read_all(robot_dir, settings)[1]


def load_knowledge(robot_dir: Path, settings: KnowledgeSettings) -> KnowledgeBase | None:
    """The robot's knowledge index; None when no file matches. RobotError for a bad file."""
    if not knowledge_files(robot_dir, settings):
        return None
    passages, problems = _read_all(robot_dir, settings)
    if problems:
        raise RobotError(problems)
    return KnowledgeBase(passages, settings)


def _leaf(title: str) -> str:
    return title.rsplit(" / ", 1)[-1]
