"""Knowledge files → passages, the settings' checks, and the problems `voiceplat check` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from voiceplat.errors import RobotError
from voiceplat.knowledge.index import knowledge_problems, load_knowledge
from voiceplat.knowledge.passages import parse_passages, read_passages
from voiceplat.knowledge.settings import KnowledgeSettings

CLINIC = """\
# Клиника

Работаем по будням с 8:00 до 20:00.

## Цены / анализы

- Общий анализ крови — 500 рублей.
- ЭКГ — 800 рублей.

**В:** Можно ли без записи?
**О:** Да, в порядке живой очереди,
но лучше записаться.

Вопрос: Есть парковка?
Ответ: Да, бесплатная, во дворе.

Q: Вопрос без ответа

## Можно ли прийти с ребёнком?

Да, педиатр принимает с 9:00.
"""


def test_markdown_sections_keep_their_heading_path_and_line() -> None:
    passages = parse_passages(CLINIC, "knowledge.md", 700)
    plain = [p for p in passages if p.answer is None]
    assert [(p.source, p.title) for p in plain] == [
        ("knowledge.md:3", "Клиника"),
        ("knowledge.md:7", "Клиника / Цены / анализы"),
    ]
    # Paragraphs of one section share a passage while they fit; a question nobody answered
    # stays text, not an FAQ pair.
    assert plain[1].text == (
        "- Общий анализ крови — 500 рублей.\n- ЭКГ — 800 рублей.\nВопрос без ответа"
    )


def test_faq_pairs_in_every_supported_form() -> None:
    faq = [p for p in parse_passages(CLINIC, "knowledge.md", 700) if p.answer]
    assert [(p.source, p.question, p.answer) for p in faq] == [
        (
            "knowledge.md:10",
            "Можно ли без записи?",
            "Да, в порядке живой очереди, но лучше записаться.",
        ),
        ("knowledge.md:14", "Есть парковка?", "Да, бесплатная, во дворе."),
        ("knowledge.md:19", "Можно ли прийти с ребёнком?", "Да, педиатр принимает с 9:00."),
    ]
    # The "## question?" pair's title is the section above it, not the question again.
    assert faq[2].title == "Клиника"
    assert faq[0].text == "Можно ли без записи?\nДа, в порядке живой очереди, но лучше записаться."


def test_latin_q_a_pairs_and_a_plain_text_file_titled_by_its_name() -> None:
    passages = parse_passages(
        "Q: Do you open on Sunday?\nA: No.\n", "knowledge/hours_info.txt", 700
    )
    assert [(p.title, p.question, p.answer) for p in passages] == [
        ("hours info", "Do you open on Sunday?", "No.")
    ]


def test_long_sections_split_by_paragraph_sentence_and_word_within_the_limit() -> None:
    sentence = "Приём терапевта длится тридцать минут и стоит полторы тысячи рублей. "
    long_paragraph = sentence * 12
    text = f"## Терапевт\n\n{long_paragraph}\n\nКороткий абзац.\n\n{'слово ' * 300}\n"
    passages = parse_passages(text, "k.md", 200)
    assert len(passages) > 6
    assert all(len(p.text) <= 200 for p in passages)
    assert all(p.title == "Терапевт" for p in passages)
    # Nothing lost: every word of the section is in some passage, in order.
    assert " ".join(" ".join(p.text.split()) for p in passages) == " ".join(
        f"{long_paragraph} Короткий абзац. {'слово ' * 300}".split()
    )
    # Sentences are not cut in the middle while they fit.
    assert passages[0].text.endswith("рублей.")


def test_an_faq_answer_too_long_to_speak_becomes_ordinary_passages() -> None:
    text = "## Как подготовиться к УЗИ?\n\n" + "Не ешьте за восемь часов до исследования. " * 10
    passages = parse_passages(text, "k.md", 200)
    assert passages and all(p.answer is None for p in passages)
    assert passages[0].title == "Как подготовиться к УЗИ?"


def _robot(tmp_path: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return tmp_path


def test_files_from_every_default_pattern_are_read(tmp_path: Path) -> None:
    robot = _robot(
        tmp_path,
        {
            "knowledge.md": "## Часы\n\nС 8 до 20.\n",
            "knowledge/prices.md": "## Цены\n\nЭКГ 800 рублей.\n",
            "knowledge/notes.txt": "\ufeffПарковка во дворе.\r\n",
            "knowledge/ignored.pdf": "not a pattern",
        },
    )
    kb = load_knowledge(robot, KnowledgeSettings())
    assert kb is not None
    assert sorted(p.source for p in kb.passages) == [
        "knowledge.md:3",
        "knowledge/notes.txt:1",
        "knowledge/prices.md:3",
    ]
    assert knowledge_problems(robot, KnowledgeSettings()) == []


def test_no_knowledge_file_is_no_knowledge_and_no_problem(tmp_path: Path) -> None:
    assert load_knowledge(tmp_path, KnowledgeSettings()) is None
    assert knowledge_problems(tmp_path, KnowledgeSettings()) == []


def test_configured_patterns_that_match_nothing_are_a_problem(tmp_path: Path) -> None:
    settings = KnowledgeSettings(files=["faq/*.md", "prices.txt"])
    assert knowledge_problems(tmp_path, settings) == [
        f"knowledge.files: faq/*.md, prices.txt match no file in {tmp_path}"
    ]
    assert load_knowledge(tmp_path, settings) is None


def test_bad_files_are_named_in_the_problems(tmp_path: Path) -> None:
    robot = _robot(
        tmp_path,
        {
            "knowledge.md": "  \n\n",
            "knowledge/latin1.txt": "Цена".encode("cp1251"),
            "knowledge/headings.md": "# Один\n## Два\n",
        },
    )
    problems = knowledge_problems(robot, KnowledgeSettings())
    assert problems == [
        "knowledge.md: the file is empty",
        "knowledge/headings.md: has headings but no text under them",
        "knowledge/latin1.txt: not UTF-8 text (bad byte at offset 0); save it as UTF-8",
    ]
    with pytest.raises(RobotError) as raised:
        load_knowledge(robot, KnowledgeSettings())
    assert raised.value.problems == problems


def test_a_file_that_cannot_be_read_is_named_with_the_reason(tmp_path: Path) -> None:
    # Root reads any file whatever its mode: a directory is what fails to read for everyone.
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(
        RobotError, match=r"^knowledge/folder.md: cannot be read \(Is a directory\)$"
    ):
        read_passages(tmp_path / "folder.md", "knowledge/folder.md", 700)


def test_too_much_knowledge_names_the_file_that_crosses_the_limit(tmp_path: Path) -> None:
    robot = _robot(
        tmp_path,
        {
            "knowledge/a.md": "## А\n\n" + "текст " * 50,
            "knowledge/b.md": "## Б\n\n" + "текст " * 200,
        },
    )
    problems = knowledge_problems(robot, KnowledgeSettings(max_total_kb=1))
    assert len(problems) == 1
    assert problems[0].startswith("knowledge/b.md: the knowledge files come to 3 KiB with this one")
    assert "knowledge.max_total_kb = 1" in problems[0]


@pytest.mark.parametrize("pattern", ["/etc/*.md", "../other/knowledge.md", "  "])
def test_patterns_outside_the_robot_folder_are_refused(pattern: str) -> None:
    with pytest.raises(ValidationError, match="relative to the robot folder"):
        KnowledgeSettings(files=[pattern])


def test_settings_refuse_unknown_keys_and_odd_synonym_groups() -> None:
    with pytest.raises(ValidationError, match="extra"):
        KnowledgeSettings.model_validate({"topk": 3})
    with pytest.raises(ValidationError, match="two words or more"):
        KnowledgeSettings(synonyms=[["цена"]])
    with pytest.raises(ValidationError, match="a synonym is one word"):
        KnowledgeSettings(synonyms=[["цена", "сколько стоит"]])
    assert KnowledgeSettings(default_synonyms=False, synonyms=[["а", "б"]]).synonym_groups() == [
        ["а", "б"]
    ]
