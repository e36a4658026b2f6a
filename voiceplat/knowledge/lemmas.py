"""Words as lemmas, so "приём", "приёма" and "приёму" match: pymorphy3's most likely normal form.

Used by retrieval (BM25 over lemmas), form parsing (choices, yes/no) and the answers benchmark's
judge. Lower case, "ё" as "е", digits kept as they are; Latin words are lower-cased, not lemmatised.
The analyser loads its dictionaries once per process (~1 s, ~15 MB), on first use.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymorphy3 import MorphAnalyzer

_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)

STOP_LEMMAS = frozenset(
    "а и в во на по к ко с со у о об от до из за для при про над под без же ли бы не ни "
    "это этот тот то та те что как так вот да нет ну я ты вы мы он она оно они мой ваш наш "
    "свой быть который какой или но если уже еще ещё тоже также весь всё все сам там тут здесь "
    "пожалуйста сказать подсказать можно хотеть мочь".split()
)
"""Lemmas that say nothing about a topic; retrieval ignores them (a form's yes/no does not)."""


@cache
def _analyzer() -> MorphAnalyzer:
    from pymorphy3 import MorphAnalyzer

    return MorphAnalyzer(lang="ru")


def words(text: str) -> list[str]:
    """The words of `text`, lower case, "ё" as "е" (hyphenated words stay one word)."""
    return [w.lower().replace("ё", "е") for w in _WORD.findall(text)]


@lru_cache(maxsize=65536)
def lemma(word: str) -> str:
    """The lemma of one lower-case word (a Russian word's most likely normal form)."""
    if not _CYRILLIC.search(word):
        return word
    return _analyzer().parse(word)[0].normal_form.replace("ё", "е")


_PARTICLE = re.compile(r"-(?:то|ка|де|таки)$")


@lru_cache(maxsize=65536)
def lemma_candidates(word: str) -> tuple[str, ...]:
    """Every normal form pymorphy3 thinks a lower-case word may have, likeliest first, without
    a spoken particle ("приём-то" → "прием"): "мочу" is "моча" or "мочить", and a knowledge
    file's "мочи" was read as the latter, so retrieval tries each against the file's words."""
    word = _PARTICLE.sub("", word) or word
    if not _CYRILLIC.search(word):
        return (word,)
    forms = (parse.normal_form.replace("ё", "е") for parse in _analyzer().parse(word))
    return tuple(dict.fromkeys(forms))


def lemmas(text: str) -> list[str]:
    """Every word of `text` as its lemma, in order."""
    return [lemma(w) for w in words(text)]


def content_lemmas(text: str) -> list[str]:
    """The lemmas of `text` without stop words: what retrieval matches on."""
    return [x for x in lemmas(text) if x not in STOP_LEMMAS]


@lru_cache(maxsize=65536)
def names_a_thing(word: str) -> bool:
    """A noun, or a word the dictionary does not know ("холтер", "фгдс"): pymorphy3 guesses
    those, often as verbs, where a caller's unknown word is almost always a name of something."""
    if not _CYRILLIC.search(word):
        return False
    analyzer = _analyzer()
    return analyzer.parse(word)[0].tag.POS == "NOUN" or not analyzer.word_is_known(word)


@lru_cache(maxsize=65536)
def is_noun(word: str) -> bool:
    """Whether a lower-case Russian word is most likely a noun ("витамин", "прививки")."""
    if not _CYRILLIC.search(word):
        return False
    return _analyzer().parse(word)[0].tag.POS == "NOUN"
