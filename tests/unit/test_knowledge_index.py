"""Retrieval over lemmas, direct FAQ answers only when confident, and the LLM's grounded message."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceplat.knowledge.grounding import NOTHING_FOUND, grounded_message, system_instruction
from voiceplat.knowledge.index import KnowledgeBase, load_knowledge
from voiceplat.knowledge.passages import parse_passages
from voiceplat.knowledge.settings import KnowledgeSettings

CLINIC = """\
# Клиника

## Часы работы

По будням с 8:00 до 20:00. В субботу с 9:00 до 15:00. В воскресенье закрыто.

## Цены

- Приём терапевта — 1500 рублей.
- Приём кардиолога — 2000 рублей.
- УЗИ брюшной полости — 2200 рублей.
- В выходные приём на 20 процентов дороже.

## Адрес

Улица Ленина, дом 10, от метро «Центральная» 7 минут пешком.

## Подготовка к анализам

Кровь сдают натощак: не есть 8 часов.

# Частые вопросы

## Сколько стоит приём терапевта?

1500 рублей.

## Вы работаете в субботу?

Да, с 9:00 до 15:00.

## Есть ли у вас парковка?

Да, бесплатная, во дворе.

## Можно ли оплатить картой?

Да, картой или наличными.

## Принимаете ли вы детей?

Да, педиатр принимает детей с рождения.

## Можно ли вызвать врача на дом?

Да, терапевт выезжает на дом, стоимость вызова 3500 рублей.
"""


@pytest.fixture(scope="module")
def clinic() -> KnowledgeBase:
    return KnowledgeBase(parse_passages(CLINIC, "knowledge.md", 700), KnowledgeSettings())


def _titles(kb: KnowledgeBase, text: str) -> list[str]:
    return [hit.passage.title for hit in kb.search(text)]


@pytest.mark.parametrize(
    ("said", "title"),
    [
        # Another form of the words than the file's ("кардиолога" → "кардиолог").
        ("Сколько у вас стоит приём у кардиолога?", "Клиника / Цены"),
        # A synonym group: "стоимость" is "цена", the section's heading.
        ("Какая стоимость УЗИ?", "Клиника / Цены"),
        ("Где вы находитесь?", "Клиника / Адрес"),
        ("Как к вам добраться от метро?", "Клиника / Адрес"),
        ("Нужно ли сдавать кровь натощак?", "Клиника / Подготовка к анализам"),
        ("До скольки вы открыты в воскресенье?", "Клиника / Часы работы"),
    ],
)
def test_search_finds_the_passage_whatever_the_word_forms(
    clinic: KnowledgeBase, said: str, title: str
) -> None:
    hits = clinic.search(said)
    assert hits and hits[0].passage.title == title
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_search_gives_at_most_k_passages(clinic: KnowledgeBase) -> None:
    assert len(clinic.search("Сколько стоит приём терапевта в субботу?")) == 3
    assert len(clinic.search("Сколько стоит приём терапевта в субботу?", k=1)) == 1


@pytest.mark.parametrize("said", ["Здравствуйте!", "Вы делаете МРТ?", "", "ну да"])
def test_nothing_is_found_for_words_the_knowledge_does_not_have(
    clinic: KnowledgeBase, said: str
) -> None:
    assert clinic.search(said) == []
    assert clinic.direct_answer(said) is None


def test_weak_passages_are_left_out(clinic: KnowledgeBase) -> None:
    strict = KnowledgeBase(clinic.passages, KnowledgeSettings(min_score=5))
    assert strict.search("Сколько стоит приём терапевта?") == []
    relative = KnowledgeBase(clinic.passages, KnowledgeSettings(min_relative_score=0.99))
    assert len(relative.search("Сколько стоит приём терапевта?")) == 1


@pytest.mark.parametrize(
    ("said", "answer"),
    [
        # The next FAQ pair's answer has "терапевт" and a price too, but its question is another.
        ("Сколько стоит приём терапевта?", "1500 рублей."),
        ("А сколько у вас стоит приём у терапевта?", "1500 рублей."),
        ("Здравствуйте, подскажите, есть парковка?", "Да, бесплатная, во дворе."),
        ("Парковка у вас бесплатная?", "Да, бесплатная, во дворе."),
        ("Вы принимаете детей?", "Да, педиатр принимает детей с рождения."),
        ("Оплатить картой можно?", "Да, картой или наличными."),
    ],
)
def test_a_confident_faq_match_is_answered_directly(
    clinic: KnowledgeBase, said: str, answer: str
) -> None:
    hit = clinic.direct_answer(said)
    assert hit is not None and hit.passage.answer == answer


@pytest.mark.parametrize(
    "said",
    [
        # A more specific question: the knowledge has "кардиолог", this FAQ pair does not.
        "Сколько стоит приём кардиолога?",
        # The weekend surcharge is in the price list, not in the FAQ's answer.
        "Сколько стоит приём терапевта в выходные?",
        "Вы работаете в воскресенье?",
        "Принимаете ли вы детей на УЗИ?",
        # The best question ("вызвать врача на дом") has a third of the caller's words.
        "Сколько стоит вызов терапевта на дом?",
        # Less specific: which doctor was not said.
        "Сколько стоит приём?",
        # Half of what the caller said is not in the pair.
        "Парковка платная?",
        "Можно оплатить картой через телефон?",
    ],
)
def test_near_miss_questions_are_not_answered_directly(clinic: KnowledgeBase, said: str) -> None:
    assert clinic.direct_answer(said) is None
    # They still get passages for the LLM.
    assert clinic.search(said)


def test_two_faq_questions_alike_leave_the_answer_to_the_llm() -> None:
    text = "## Есть ли парковка?\n\nДа, во дворе.\n\n## Есть ли у вас парковка?\n\nНет.\n"
    kb = KnowledgeBase(parse_passages(text, "k.md", 700), KnowledgeSettings())
    assert kb.direct_answer("Есть ли парковка?") is None
    other = text.replace("Есть ли у вас парковка?", "Есть ли у вас скидки?")
    distinct = KnowledgeBase(parse_passages(other, "k.md", 700), KnowledgeSettings())
    hit = distinct.direct_answer("Есть ли парковка?")
    assert hit is not None and hit.passage.answer == "Да, во дворе."


def test_direct_answers_can_be_turned_off(clinic: KnowledgeBase) -> None:
    off = KnowledgeBase(clinic.passages, KnowledgeSettings(direct_answers=False))
    assert off.direct_answer("Сколько стоит приём терапевта?") is None
    assert off.search("Сколько стоит приём терапевта?")


def test_robot_synonyms_add_to_the_defaults(clinic: KnowledgeBase) -> None:
    assert clinic.search("Надо ли голодать?") == []
    settings = KnowledgeSettings(synonyms=[["натощак", "голодать"]])
    own = KnowledgeBase(clinic.passages, settings)
    assert _titles(own, "Надо ли голодать?") == ["Клиника / Подготовка к анализам"]
    assert _titles(own, "Какая стоимость УЗИ?")[0] == "Клиника / Цены"


def test_the_grounded_message_gives_the_passages_then_the_question(
    clinic: KnowledgeBase,
) -> None:
    hits = clinic.search("Сколько стоит приём терапевта?")
    message = grounded_message(" Сколько стоит приём терапевта? ", hits, KnowledgeSettings())
    lines = message.splitlines()
    assert lines[0] == "Справка:"
    assert lines[-1] == KnowledgeSettings().question_prefix + "Сколько стоит приём терапевта?"
    assert "Сколько стоит приём терапевта: 1500 рублей." in lines
    # Titled by its own heading: the document's title above it is not worth its tokens.
    assert any(line.startswith("Цены: - Приём терапевта — 1500 рублей.") for line in lines)


def test_the_grounded_message_keeps_to_its_character_budget(clinic: KnowledgeBase) -> None:
    hits = clinic.search("Сколько стоит приём терапевта?")
    settings = KnowledgeSettings(max_prompt_chars=100)
    message = grounded_message("Сколько стоит приём терапевта?", hits, settings)
    reference = message.split("\n\n")[0].removeprefix("Справка:\n")
    assert 0 < len(reference) <= 100
    full = grounded_message("Сколько стоит приём терапевта?", hits, KnowledgeSettings())
    assert len(full) > len(message)


def test_words_that_ask_nothing_and_match_nothing_go_as_they_are() -> None:
    # Told "the reference has nothing", a small model answers "Меня зовут Анна" with "не знаю".
    assert grounded_message(" Меня зовут Анна. ", [], KnowledgeSettings()) == "Меня зовут Анна."


def test_the_grounded_message_says_when_the_reference_has_nothing() -> None:
    message = grounded_message("Вы делаете МРТ?", [], KnowledgeSettings())
    assert NOTHING_FOUND in message
    assert message.endswith(KnowledgeSettings().question_prefix + "Вы делаете МРТ?")
    # The instruction is in the system prompt, evaluated once: say you do not know.
    system = system_instruction("Ты администратор.", KnowledgeSettings())
    assert system.startswith("Ты администратор.\n\n")
    assert "не знаешь" in system


def test_the_robot_folder_is_indexed_at_load(tmp_path: Path) -> None:
    (tmp_path / "knowledge.md").write_text(CLINIC, encoding="utf-8")
    kb = load_knowledge(tmp_path, KnowledgeSettings())
    assert kb is not None and len(kb) == 10
    hit = kb.direct_answer("Есть ли у вас парковка?")
    assert hit is not None and hit.passage.source == "knowledge.md:32"


def test_nouns_no_knowledge_file_has_are_named_in_the_grounded_message(
    clinic: KnowledgeBase,
) -> None:
    question = "Сколько стоит анализ на витамин Д?"
    assert clinic.unknown_nouns(question) == ["витамин"]
    assert clinic.unknown_nouns("Сколько стоит приём терапевта?") == []
    hits = clinic.search(question)
    assert hits  # "стоить", "анализ": the price list matches the rest of the question
    message = grounded_message(question, hits, KnowledgeSettings(), clinic.unknown_nouns(question))
    assert "(В справке нет сведений про: витамин.)" in message.splitlines()
    # A statement gets no such line: it asks for nothing the reference could lack.
    statement = "Я сдавал анализ на витамин."
    plain = grounded_message(statement, clinic.search(statement), KnowledgeSettings(), ["витамин"])
    assert "нет сведений" not in plain
