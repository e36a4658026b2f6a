"""What the caller asks for that the robot does itself, whatever the LLM would write: to speak to
a person (`transfer.caller_phrases`) or to end the call (`goodbye_words`, with `goodbye_text`).

A small local model often answers "соедините с врачом" with "Конечно, можно." and a goodbye with
another question; these two requests are frequent, easy to hear by lemma, and costly to miss. A
goodbye counts only when the caller asks nothing more in the same breath ("до свидания, а во
сколько вы открываетесь?" is a question for the LLM).
"""

from __future__ import annotations

from typing import Literal

from voiceplat.forms.match import find_phrase, phrase_tokens, says_any
from voiceplat.forms.numbers import Token, tokenize
from voiceplat.forms.state import NO, YES, is_question

Intent = Literal["transfer", "goodbye"]
GOODBYE_TAIL_WORDS = 4
ACCEPT_MAX_WORDS = 4
COURTESY_LEMMAS = frozenset("спасибо вам тебе большой всего доброго хороший ну всё".split())
"""What may follow a goodbye in the same breath ("до свидания, спасибо вам большое")."""


def caller_intent(
    text: str, *, transfer_phrases: list[str], goodbye_words: list[str], goodbye: bool
) -> Intent | None:
    """ "transfer" or "goodbye" when the caller's words ask for it; None: an ordinary turn.
    `goodbye`: whether the robot has a goodbye of its own to say (`goodbye_text`)."""
    if not text.strip():
        return None
    tokens = tokenize(text)
    if transfer_phrases and says_any(tokens, transfer_phrases):
        return "transfer"
    # At the end of what they said: "пока" in "пока не знаю" is no goodbye.
    if goodbye and goodbye_words and _ends_with_goodbye(tokens, goodbye_words):
        if not is_question(text, tokens):
            return "goodbye"
    return None


def _ends_with_goodbye(tokens: list[Token], goodbye_words: list[str]) -> bool:
    """A goodbye phrase near the end with nothing but courtesy after it: "пока" in "пока не
    знаю" is followed by words of another sentence."""
    tail = tokens[-GOODBYE_TAIL_WORDS:]
    for phrase in goodbye_words:
        at = find_phrase(tail, phrase)
        if at is not None:
            rest = tail[at + len(phrase_tokens(phrase)) :]
            if all(token.forms & COURTESY_LEMMAS for token in rest):
                return True
    return False


def accepts(text: str) -> bool:
    """A short yes ("да, соедините", "давайте") with no no and no question of its own."""
    tokens = tokenize(text)
    if len(tokens) > ACCEPT_MAX_WORDS or is_question(text, tokens):
        return False
    return says_any(tokens, YES) and not says_any(tokens, NO)
