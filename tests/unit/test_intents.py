"""caller_intent: the caller asking for a person or saying goodbye, heard by lemma."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.answerer_calls import (
    BOOK,
    Calls,
    text,
)
from voiceplat.dialog.answerer import Unspeculative
from voiceplat.dialog.intents import caller_intent

TRANSFER = ["соединить", "оператор", "живой человек"]
GOODBYE = ["до свидания", "всего доброго", "пока"]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Calls]:
    calls = Calls(tmp_path)
    yield calls
    await calls.close()


def intent(text: str, *, goodbye: bool = True, transfer: list[str] = TRANSFER) -> str | None:
    return caller_intent(text, transfer_phrases=transfer, goodbye_words=GOODBYE, goodbye=goodbye)


@pytest.mark.parametrize(
    "words",
    [
        "Соедините меня с врачом",  # "соединить" by lemma
        "Можно оператора?",
        "Дайте живого человека",
        "Соедините, пожалуйста. До свидания",  # the transfer wins over a goodbye
    ],
)
def test_transfer_phrases_are_heard_in_any_form(words: str) -> None:
    assert intent(words) == "transfer"


def test_no_transfer_phrases_no_transfer() -> None:
    assert intent("Соедините меня с врачом", transfer=[]) is None


@pytest.mark.parametrize(
    "words",
    ["Спасибо, до свидания", "До свидания!", "Ну всё, пока", "Всего доброго"],
)
def test_a_goodbye_at_the_end_without_a_question(words: str) -> None:
    assert intent(words) == "goodbye"


@pytest.mark.parametrize(
    "words",
    [
        "До свидания, а во сколько вы открываетесь?",  # asks more: the LLM answers
        "Ладно, пока. А где вы?",  # a goodbye in the tail, then a question
        "Пока вы на связи, запишите меня на завтра",  # "пока" not at the end
        "Сколько стоит приём?",
        "",
        "   ",
    ],
)
def test_what_is_no_goodbye(words: str) -> None:
    assert intent(words) is None


def test_poka_ne_znayu_is_no_goodbye() -> None:
    assert intent("Пока не знаю") is None


def test_a_goodbye_needs_the_robots_own_goodbye_text() -> None:
    assert intent("Спасибо, до свидания", goodbye=False) is None


# -- through the Answerer ---------------------------------------------------------------------


async def test_a_transfer_phrase_hands_over_without_the_llm(make: Calls) -> None:
    call = make(transfer={"target": "100", "caller_phrases": ["соединить"]})
    pieces, notes = await call.say("Соедините меня с врачом")
    assert pieces == ["[TRANSFER]"]
    assert notes.intent == "transfer" and call.llm.responded == []
    assert call.events == [("caller_intent", {"intent": "transfer"})]


async def test_transfer_phrases_need_a_target(make: Calls) -> None:
    call = make(
        tools=[BOOK], transfer={"caller_phrases": ["соединить"]}
    )  # no target: nowhere to hand the caller
    pieces, notes = await call.say("Соедините меня с врачом")
    assert notes.intent is None and len(call.llm.responded) == 1
    assert "[TRANSFER]" not in text(pieces)


@pytest.mark.parametrize(
    ("words", "goodbye"),
    [
        ("Спасибо, до свидания", True),
        ("Всё, пока. А где вы?", False),  # a question for the LLM
    ],
)
async def test_a_goodbye_says_goodbye_text_and_ends(make: Calls, words: str, goodbye: bool) -> None:
    call = make(goodbye_text="Всего доброго!")
    pieces, notes = await call.say(words)
    if goodbye:
        assert pieces == ["Всего доброго! [END]"]
        assert notes.intent == "goodbye" and call.llm.responded == []
    else:
        assert notes.intent is None and len(call.llm.responded) == 1
        assert "[END]" not in text(pieces)


async def test_a_goodbye_without_goodbye_text_is_the_llms(make: Calls) -> None:
    call = make()
    pieces, notes = await call.say("Спасибо, до свидания")
    assert notes.intent is None
    assert text(pieces) == "Вы сказали: Спасибо, до свидания."


async def test_a_speculative_goodbye_waits_for_the_real_turn(make: Calls) -> None:
    call = make(goodbye_text="Всего доброго!")
    with pytest.raises(Unspeculative):
        await call.say("Спасибо, до свидания", speculative=True)
    assert call.events == []
