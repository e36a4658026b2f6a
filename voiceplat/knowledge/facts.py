"""Answers read out of the knowledge files themselves: the one or two sentences that answer the
caller, said as the robot author wrote them, without the LLM.

Why: the shipped local model (a 1.5B model on two cores) takes 2–5 s to read passages and then
often reads them wrong ("Стоматолог есть." over "Стоматологии … в клинике нет"). A knowledge file is
mostly one fact per sentence or list line ("УЗИ щитовидной железы — 1 700 рублей."), so when the
caller's words point at one or two of them clearly, saying those is faster and cannot invent.

Every sentence (a list line, or a sentence of a paragraph or an FAQ answer) is a fact; its
passage's heading (or FAQ question) is its context. A fact's match with the caller's words is the
idf of the caller's terms it has (a term its context has counts `CONTEXT_WEIGHT`), over the
largest idf, so a word only one fact has counts 1. The best fact is said when
- its match is at least `facts_min_score`, and
- it holds at least `facts_min_coverage` of the caller's known terms' idf (the caller's words that
  some fact has: the others say nothing the knowledge could answer), and
- the caller named nothing the knowledge lacks unless the fact matches strongly
  (`facts_unknown_min_score`): "холтер" in "у вас холтер ставят, сколько стоит?" must not get the
  price of a cardiologist's visit.
A second fact is added when it matches a caller term the first lacks ("почём, и надо ли натощак?").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from voiceplat.knowledge.passages import Passage

CONTEXT_WEIGHT = 0.5
"""What a term of a fact's heading counts against one of its own words."""
MAX_FACTS = 2
RANKED_RELATIVE_FLOOR = 0.3
"""A sentence under this share of the best one's match is not given to the LLM."""
LENGTH_WEIGHT = 0.25
"""How much a sentence's length (in terms, against the mean) lowers its match."""
SECOND_MIN_SCORE = 0.6
"""What a second fact must match (`_adds`) of the terms the first left out: a word only a few
facts have, or a common one ("цена") in a sentence about the same thing."""

_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[A-ZА-ЯЁ«\d])")
_EMPHASIS = re.compile(r"\*\*|__|`")


@dataclass(frozen=True, slots=True)
class Fact:
    source: str
    text: str
    """As it is said: one sentence of the knowledge file, markup removed."""
    terms: frozenset[str]
    context: frozenset[str]
    """The terms of its heading or FAQ question that it lacks itself."""


@dataclass(frozen=True, slots=True)
class FactAnswer:
    facts: tuple[Fact, ...]
    score: float
    coverage: float
    terms: frozenset[str]
    """Every term of the facts' own words (not their headings')."""

    @property
    def text(self) -> str:
        return " ".join(fact.text for fact in self.facts)

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(fact.source for fact in self.facts))


def fact_sentences(passage: Passage) -> list[str]:
    """The sentences of a passage that can be said alone: list lines, and the sentences of its
    paragraphs (whose lines a file wraps anywhere)."""
    text = passage.answer if passage.answer else passage.text
    units: list[str] = []
    joining = False
    for raw in text.splitlines():
        item = _LIST_ITEM.match(raw) is not None
        line = _EMPHASIS.sub("", _LIST_ITEM.sub("", raw)).strip()
        if not line:
            joining = False
        elif joining and not item:
            units[-1] += " " + line
        else:
            units.append(line)
            joining = not item
    found: list[str] = []
    for unit in units:
        for sentence in _SENTENCE_END.split(unit):
            sentence = sentence.strip()
            if len(sentence) > 1:
                found.append(sentence if sentence[-1] in ".!?…" else sentence + ".")
    return found


class FactIndex:
    """Every sentence of the knowledge files, scored against the caller's terms."""

    def __init__(self, passages: list[Passage], terms: Callable[[str], list[str]]) -> None:
        facts: list[Fact] = []
        for passage in passages:
            heading = passage.question or passage.title.rsplit(" / ", 1)[-1]
            heading_terms = frozenset(terms(heading))
            for sentence in fact_sentences(passage):
                own = frozenset(terms(sentence))
                if own:
                    facts.append(Fact(passage.source, sentence, own, heading_terms - own))
        self.facts = facts
        self._mean_terms = sum(len(f.terms) for f in facts) / len(facts) if facts else 1.0
        count = max(len(facts), 1)
        frequency = Counter(term for fact in facts for term in fact.terms | fact.context)
        top = math.log(1 + (count - 0.5) / 1.5)
        self.idf = {
            term: math.log(1 + (count - df + 0.5) / (df + 0.5)) / top
            for term, df in frequency.items()
        }

    def match(self, fact: Fact, said: set[str]) -> float:
        own = sum(self.idf[t] for t in said & fact.terms)
        matched = own + CONTEXT_WEIGHT * sum(self.idf[t] for t in said & fact.context)
        # Of two sentences with the same words, the shorter is about them ("ЭКГ — 800 рублей"
        # over "справка … нужна ЭКГ, её делаем здесь же").
        return matched / (1 + LENGTH_WEIGHT * (len(fact.terms) / self._mean_terms - 1))

    def _adds(self, fact: Fact, left: set[str], covered: set[str]) -> float:
        """How well a second fact answers what the first left out: by its own words (a heading
        shared with the first says nothing new), the more if it is about the same thing."""
        new = sum(self.idf[t] for t in left & fact.terms)
        same = sum(self.idf[t] for t in covered & fact.terms)
        return new + CONTEXT_WEIGHT * same

    def ranked(self, said: set[str], k: int) -> list[str]:
        """The texts of the `k` facts that match `said` best (each text once), best first."""
        known = {term for term in said if term in self.idf}
        scored = sorted(
            ((self.match(fact, known), -i) for i, fact in enumerate(self.facts)), reverse=True
        )
        floor = max(scored[0][0] * RANKED_RELATIVE_FLOOR, 1e-9) if scored else 0.0
        found: list[str] = []
        for score, negative_index in scored:
            if score < floor or len(found) >= k:
                break
            text = self.facts[-negative_index].text
            if text not in found:
                found.append(text)
        return found

    def best(self, said: list[str], *, min_score: float, min_coverage: float) -> FactAnswer | None:
        """The fact (or two) for the caller's terms, or None when none is clearly it."""
        known = {term for term in said if term in self.idf}
        if not known or not self.facts:
            return None
        mass = sum(self.idf[t] for t in known)
        ranked = sorted(
            ((self.match(fact, known), i) for i, fact in enumerate(self.facts)), reverse=True
        )
        score, first = ranked[0]
        fact = self.facts[first]
        covered = known & (fact.terms | fact.context)
        if score < min_score or sum(self.idf[t] for t in covered) / mass < min_coverage:
            return None
        chosen = [fact]
        left = known - covered
        if left:
            # A second fact for what the first leaves out ("почём, и надо ли натощак?"), by its
            # own words only: a heading shared with the first says nothing new.
            extra = sorted(
                (
                    (self._adds(other, left, covered), i)
                    for i, other in enumerate(self.facts)
                    if i != first and other.text != fact.text and left & other.terms
                ),
                reverse=True,
            )
            if extra and extra[0][0] >= SECOND_MIN_SCORE:
                other = self.facts[extra[0][1]]
                chosen.append(other)
                covered |= known & (other.terms | other.context)
        coverage = sum(self.idf[t] for t in covered) / mass
        terms = frozenset().union(*(f.terms for f in chosen))
        return FactAnswer(tuple(chosen[:MAX_FACTS]), score, coverage, terms)
