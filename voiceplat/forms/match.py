"""Phrases found in an utterance by lemma: "записать" in "запишите меня", "ухо горло нос" in
"мне к ухо-горло-носу"; a word matches when any of its lemmas is one of the phrase word's."""

from __future__ import annotations

from functools import lru_cache

from voiceplat.forms.numbers import Token, tokenize


@lru_cache(maxsize=4096)
def phrase_tokens(phrase: str) -> tuple[Token, ...]:
    return tuple(tokenize(phrase))


def _same(a: Token, b: Token) -> bool:
    if a.value is not None or b.value is not None:
        return a.value == b.value
    return bool(a.forms & b.forms)


def find_phrase(tokens: list[Token], phrase: str, start: int = 0) -> int | None:
    """Index of the first place at or after `start` where `phrase` is said, or None."""
    words = phrase_tokens(phrase)
    if not words:
        return None
    for i in range(start, len(tokens) - len(words) + 1):
        if all(_same(tokens[i + k], w) for k, w in enumerate(words)):
            return i
    return None


def says_any(tokens: list[Token], phrases: list[str] | tuple[str, ...]) -> bool:
    return any(find_phrase(tokens, p) is not None for p in phrases)
