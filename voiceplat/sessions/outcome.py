"""What a call achieved, decided from its finished record: the `outcome` in the call record.

Rules, first match wins:

1. a tool's outcome (`tool_outcome`, e.g. "booked"): a webhook that declares an outcome
   succeeded during the call. What was done for the caller counts most, so a booking stays a
   booking even if the call was then handed over or broke off afterwards;
2. "transferred": the call was handed over to a person (end_reason "transferred");
3. "failed": the call failed (status "failed": a provider or protocol error ended it);
4. "abandoned": the caller said nothing that was a turn (every user turn empty or ignored as
   noise), or hung up before the robot answered any of it;
5. "no_answer_given": the robot did not answer what the caller asked. The caller's questions
   are their turns with a "?" or a question word ("сколько", "когда", "где", "можно", ...);
   the answer to a turn is the robot's turns after it, up to the caller's next turn. An answer
   is no answer when it is a fallback (the turn has an error) or says that the robot does not
   know ("не знаю", "нет информации", "не могу подсказать", "затрудняюсь ответить", or one of
   the robot's own `dont_know` phrases). If the caller asked questions, it is every question's
   answer that must be no answer; if they asked none, every answer. The call's last tool call
   failing (a booking that did not go through, nothing succeeded after it) is no answer too;
6. "answered": otherwise.

Pure: no I/O, no clock. Lemmas and words come from voiceplat.knowledge.lemmas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from voiceplat.knowledge.lemmas import lemmas, words
from voiceplat.storage.records import CallSnapshot, TurnRecord

OUTCOMES = ("transferred", "failed", "abandoned", "no_answer_given", "answered")
"""The outcomes decided here; a tool adds its own (e.g. "booked")."""

QUESTION_LEMMAS = frozenset(
    "что чем чего как какой каков когда где куда откуда сколько почему зачем кто чей "
    "ли можно разве".split()
)
"""Lemmas that make a caller's turn a question even without a "?" (ASR may drop it)."""

_ONE = r"(?:\w+ )?"  # "не могу вам ответить", "этого не знаю"
_FEW = r"(?:\w+ ){0,3}"  # "информации об этом у меня нет"
_DONT_KNOW = re.compile(
    r"\b(?:"
    rf"не {_ONE}(?:знаю|знаем|располага\w*|подскажу|подскажем|нашл\w*|нашел|найдено)"
    rf"|не {_ONE}(?:могу|можем|смогу|сможем) {_ONE}(?:ответить|сказать|подсказать|уточнить)"
    r"|неизвестно|затрудняюсь|затрудняемся"
    rf"|нет {_ONE}{_ONE}(?:информаци\w*|сведени\w*|данных)"
    rf"|(?:информаци\w*|сведени\w*|данных) {_FEW}нет"
    rf"|ничего {_ONE}{_ONE}(?:нет|не сказано|не указано|не известно)"
    r")\b"
)
"""What a robot says when it does not know, over `words()` joined by spaces (lower case, е)."""


def is_question(text: str) -> bool:
    """A caller's turn that asks something: a "?" or a question word."""
    return "?" in text or not QUESTION_LEMMAS.isdisjoint(lemmas(text))


def says_dont_know(text: str, dont_know: Iterable[str] = ()) -> bool:
    """Whether a robot's answer says it does not know (or is one of the robot's own phrases)."""
    normal = " ".join(words(text))
    if _DONT_KNOW.search(normal):
        return True
    for phrase in dont_know:
        own = " ".join(words(phrase))
        if own and own in normal:
            return True
    return False


@dataclass
class _Exchange:
    """One real caller turn and the robot's turns that answered it."""

    caller: TurnRecord
    answers: list[TurnRecord] = field(default_factory=list)


def _is_caller_words(turn: TurnRecord) -> bool:
    return turn.role == "user" and turn.ignored is None and bool(turn.text.strip())


def _exchanges(turns: list[TurnRecord]) -> list[_Exchange]:
    exchanges: list[_Exchange] = []
    for turn in sorted(turns, key=lambda t: t.idx):
        if _is_caller_words(turn):
            exchanges.append(_Exchange(turn))
        elif turn.role == "robot" and exchanges and (turn.text.strip() or turn.error):
            exchanges[-1].answers.append(turn)
    return exchanges


def _no_answer(answers: list[TurnRecord], dont_know: Iterable[str]) -> bool:
    """The robot's turns after a caller turn gave them nothing: each a fallback, a "don't know",
    or an answer whose tool failed (the booking did not go through)."""
    return all(
        turn.error is not None
        or says_dont_know(turn.text, dont_know)
        or any(not call.ok for call in turn.tool_calls)
        for turn in answers
    )


def decide_outcome(
    snapshot: CallSnapshot, *, tool_outcome: str | None, dont_know: Iterable[str] = ()
) -> str:
    """The call's outcome by the rules in the module docstring.

    `tool_outcome`: the outcome of a tool that succeeded during the call (the last one, if
    several did), None if none. `dont_know`: the robot's own "I do not know" phrases (its
    knowledge instruction's wording), matched as word sequences inside an answer.
    """
    call = snapshot.call
    if tool_outcome:
        return tool_outcome
    if call.end_reason == "transferred":
        return "transferred"
    if call.status == "failed":
        return "failed"
    dont_know = tuple(dont_know)
    answered = [ex for ex in _exchanges(snapshot.turns) if ex.answers]
    if not answered:
        return "abandoned"
    calls = [c for turn in snapshot.turns for c in turn.tool_calls]
    if calls and not calls[-1].ok:
        return "no_answer_given"
    questions = [ex for ex in answered if is_question(ex.caller.text)]
    if all(_no_answer(ex.answers, dont_know) for ex in questions or answered):
        return "no_answer_given"
    return "answered"
