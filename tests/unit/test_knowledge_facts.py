"""Fact answers: the knowledge sentences a caller's question clearly points at, said as written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.answerer_calls import FORM, Calls, text
from voiceplat.knowledge.facts import fact_sentences
from voiceplat.knowledge.index import KnowledgeBase
from voiceplat.knowledge.passages import Passage, parse_passages
from voiceplat.knowledge.settings import KnowledgeSettings

CLINIC = """\
# Клиника

## Цены на анализы и обследования

- Общий анализ крови — 500 рублей.
- Общий анализ мочи — 350 рублей.
- УЗИ щитовидной железы — 1 700 рублей.
- ЭКГ с расшифровкой — 800 рублей.

## Справки

- Справка для спортивной секции — 900 рублей: нужна ЭКГ, её делаем здесь же.
- Больничный лист оформляет терапевт на приёме, бесплатно.

## Подготовка

УЗИ щитовидной железы и ЭКГ подготовки не требуют. Кровь сдают
натощак: не есть 8 часов.

## Врачи

- Кардиолог Смирнова Елена Павловна: вторник и четверг с 10:00 до 18:00.
Стоматологии и МРТ в клинике нет.
"""


def clinic(**settings: object) -> KnowledgeBase:
    chosen = KnowledgeSettings.model_validate({"fact_answers": True, **settings})
    return KnowledgeBase(parse_passages(CLINIC, "knowledge.md", 700), chosen)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return clinic()


def said(kb: KnowledgeBase, question: str) -> str | None:
    found = kb.fact_answer(question)
    return found.text if found is not None else None


def test_sentences_are_list_lines_and_the_sentences_of_wrapped_paragraphs() -> None:
    passage = Passage("k.md:1", "Подготовка", "- **Первое** — да\nОдин. Два\nтри.\n\n- Последнее.")
    assert fact_sentences(passage) == ["Первое — да.", "Один.", "Два три.", "Последнее."]


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # "щитовидки" is no word of the file: its near form "щитовидной" is.
        ("Сколько у вас стоит УЗИ щитовидки?", "УЗИ щитовидной железы — 1 700 рублей."),
        # Of two sentences with the caller's words, the shorter one is about them.
        ("Почём ЭКГ?", "ЭКГ с расшифровкой — 800 рублей."),
        # "мочу" is read "моча", the file's "мочи" "мочить": each lemma is tried.
        ("Общий анализ мочи почём?", "Общий анализ мочи — 350 рублей."),
        ("Стоматолог у вас есть?", "Стоматологии и МРТ в клинике нет."),
        ("Больничный у вас платный?", "Больничный лист оформляет терапевт на приёме, бесплатно."),
    ],
)
def test_a_question_gets_the_sentence_it_points_at(
    kb: KnowledgeBase, question: str, answer: str
) -> None:
    assert said(kb, question) == answer


def test_a_two_part_question_gets_a_second_sentence_for_what_the_first_lacks(
    kb: KnowledgeBase,
) -> None:
    found = kb.fact_answer("Мне УЗИ щитовидки назначили, почём оно и нужна ли подготовка?")
    assert found is not None
    assert found.text == (
        "УЗИ щитовидной железы и ЭКГ подготовки не требуют. УЗИ щитовидной железы — 1 700 рублей."
    )
    assert found.sources == ["knowledge.md:17", "knowledge.md:5"]


@pytest.mark.parametrize(
    "question",
    [
        # Something the file lacks, with words it has: not the cardiologist's days.
        "Кардиолог сказал холтер поставить, у вас это делают?",
        "А анализ на ВИЧ у вас сдать можно?",
        # No question: a request is the form's or the LLM's.
        "Мне бы к кардиологу во вторник",
        # Nothing the file has.
        "Как у вас дела?",
    ],
)
def test_no_fact_is_said_when_the_question_is_not_clearly_about_one(
    kb: KnowledgeBase, question: str
) -> None:
    assert kb.fact_answer(question) is None


def test_nothing_is_said_with_fact_answers_off() -> None:
    assert clinic(fact_answers=False).fact_answer("Почём ЭКГ?") is None


def test_a_stricter_score_leaves_a_vague_match_to_the_llm() -> None:
    question = "Кардиолог когда?"
    assert clinic().fact_answer(question) is not None
    assert clinic(facts_min_score=5.0).fact_answer(question) is None


# -- in a call's answer ------------------------------------------------------------------------


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Calls]:
    calls = Calls(tmp_path)
    yield calls
    await calls.close()


async def test_the_answer_is_the_fact_and_the_llm_is_not_asked(make: Calls) -> None:
    call = make(knowledge={"fact_answers": True})
    pieces, notes = await call.say("А почём у вас приём терапевта?")
    assert pieces == ["Приём терапевта стоит 1500 рублей."]
    assert call.llm.responded == []
    assert notes.direct and notes.passages == ["knowledge.md:7"]
    assert call.event_names() == ["fact_answer"]
    assert call.events[0][1]["sources"] == ["knowledge.md:7"]


async def test_without_fact_answers_the_llm_answers_from_the_passage(make: Calls) -> None:
    call = make()
    pieces, notes = await call.say("А почём у вас приём терапевта?")
    assert not notes.direct and len(call.llm.responded) == 1
    assert "1500 рублей" in text(pieces)  # the fake LLM echoes the grounded message


UNSURE = "Точно не подскажу. Соединить вас с администратором?"


async def test_an_uncertain_question_gets_unsure_text_and_a_yes_transfers(make: Calls) -> None:
    call = make(knowledge={"fact_answers": True, "unsure_text": UNSURE})
    pieces, notes = await call.say("А холтер у вас ставят?")
    assert pieces == [UNSURE] and call.llm.responded == []
    assert call.event_names() == ["unsure_answer"]
    pieces, notes = await call.say("Да, давайте.")
    assert pieces == [call.config.transfer.marker] and notes.intent == "transfer"


async def test_a_no_to_unsure_text_is_an_ordinary_turn(make: Calls) -> None:
    call = make(knowledge={"unsure_text": UNSURE})
    await call.say("А холтер у вас ставят?")
    pieces, notes = await call.say("Нет, не надо, спасибо.")
    assert notes.intent is None and call.config.transfer.marker not in text(pieces)
    # and a yes later on is no longer an answer to the offer
    pieces, notes = await call.say("Да.")
    assert notes.intent is None


@pytest.mark.parametrize(
    "question",
    [
        "А можно помедленнее?",  # names nothing
        "А парковка у вас во дворе?",  # names only what the knowledge has
    ],
)
async def test_other_questions_still_go_to_the_llm(make: Calls, question: str) -> None:
    call = make(knowledge={"unsure_text": UNSURE, "direct_answers": False})
    pieces, _ = await call.say(question)
    assert UNSURE not in text(pieces) and len(call.llm.responded) == 1


async def test_a_question_naming_a_doctor_and_a_day_gets_the_fact_not_the_form(
    make: Calls,
) -> None:
    call = make(knowledge={"fact_answers": True}, form=FORM)
    pieces, notes = await call.say("Почём приём терапевта, если прийти завтра?")
    assert pieces == ["Приём терапевта стоит 1500 рублей."] and notes.form_step is None
    _, notes = await call.say("Записаться к терапевту на понедельник можно?")
    assert notes.form_step == "Confirm"  # a trigger word: the form, with both fields filled


def test_ranked_sentences_are_the_best_matches_each_once(kb: KnowledgeBase) -> None:
    assert kb.sentences("Почём ЭКГ?", k=1) == ["ЭКГ с расшифровкой — 800 рублей."]
    found = kb.sentences("Почём ЭКГ и УЗИ щитовидки?", k=3)
    assert len(found) == 3 and len(set(found)) == 3
    assert "УЗИ щитовидной железы и ЭКГ подготовки не требуют." in found  # both words
    assert kb.sentences("Как у вас дела?") == []


async def test_with_reference_sentences_the_llm_reads_sentences_not_passages(
    make: Calls,
) -> None:
    call = make(knowledge={"reference": "sentences", "direct_answers": False})
    prompt = call.answerer.prompt(call.dialog("Где находится клиника?"))[-1].content
    assert "Клиника находится на улице Ленина, дом 5, второй этаж." in prompt
    assert "Адрес:" not in prompt  # a passage would come with its heading


def test_an_indirect_question_ending_in_a_full_stop_is_a_question(kb: KnowledgeBase) -> None:
    # Whisper ends "подскажите …" with a full stop: no "?", no question word first.
    assert said(kb, "Добрый день, подскажите, пожалуйста, почём ЭКГ.") == (
        "ЭКГ с расшифровкой — 800 рублей."
    )
    assert said(kb, "Почём ЭКГ, мне всё равно.") is None  # no question: no answer of its own
