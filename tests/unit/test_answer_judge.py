"""The answers benchmark's judge: lemmatised fact matching, numbers said any way, claims, tools."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.answer_judge import (
    CATEGORIES,
    HALVES,
    Case,
    CaseError,
    case_from_dict,
    judge,
    load_cases,
    numbers,
    tokens,
)

ROOT = Path(__file__).resolve().parents[2]
CLINIC_SET = ROOT / "benchmarks" / "data" / "answers" / "clinic.jsonl"
FRESH_SET = ROOT / "benchmarks" / "data" / "answers" / "clinic_fresh.jsonl"
FRESH2_SET = ROOT / "benchmarks" / "data" / "answers" / "clinic_fresh2.jsonl"
FRESH3_SET = ROOT / "benchmarks" / "data" / "answers" / "clinic_fresh3.jsonl"
CLINIC_KNOWLEDGE = ROOT / "robots" / "pipeline_russian" / "knowledge.md"


def case(**fields: Any) -> Case:
    data: dict[str, Any] = {"id": "c", "half": "tune", "category": "known", "say": "Вопрос?"}
    data.update(fields)
    return case_from_dict(data)


@dataclass
class Call:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    text: str
    tool_calls: list[Call] = field(default_factory=list)
    form_step: str | None = None
    ends_call: bool = False
    transfer: bool = False


@pytest.mark.parametrize(
    ("said", "number"),
    [
        ("полторы тысячи рублей", "1500"),
        ("1 500 руб.", "1500"),
        ("1500 ₽", "1500"),
        ("1,5 тысячи", "1500"),
        ("тысяча пятьсот рублей", "1500"),
        ("две тысячи двести", "2200"),
        ("пятисот рублей", "500"),
        ("три тысячи пятьсот", "3500"),
        ("двадцать пять минут", "25"),
        ("до восьми вечера", "20"),
        ("до 20:00", "20"),
        ("до трёх часов дня", "15"),
        ("в 3 часа дня", "15"),
        ("двадцать третьего", "23"),
    ],
)
def test_a_number_said_in_words_or_digits_is_one_number(said: str, number: str) -> None:
    assert number in numbers(said)


def test_numbers_that_follow_each_other_stay_apart() -> None:
    assert [t for t in tokens("в девять тридцать") if t[0].isdigit()] == ["9", "30"]
    assert [t for t in tokens("с 9:30 до 15:00") if t[0].isdigit()] == ["9", "30", "15"]
    # Days are not hours: "через три дня" is 3, not 15.
    assert numbers("результаты через три дня") == {"3"}


def test_word_forms_match_as_lemmas() -> None:
    facts = case(must=[["приём терапевта"], ["улица Ленина"]])
    verdict = judge(facts, "Приёмы у терапевтов идут на улице Ленина.")
    assert verdict.correct and verdict.missing == []


def test_a_price_in_words_satisfies_a_price_in_digits() -> None:
    price = case(must=[["1 500"]])
    assert judge(price, "Приём стоит полторы тысячи рублей.").correct
    assert judge(price, "Приём стоит 1500 руб.").correct
    wrong = judge(price, "Приём стоит две тысячи рублей.")
    assert not wrong.correct and wrong.missing == ["1 500"]


def test_any_alternative_satisfies_a_fact_and_every_fact_is_needed() -> None:
    hours = case(must=[["суббота"], ["15", "3"]])
    assert judge(hours, "В субботу работаем с девяти до трёх.").correct
    assert judge(hours, "В субботу с 9:00 до 15:00.").correct
    assert judge(hours, "В субботу с девяти утра.").missing == ["15"]


def test_a_claim_counts_only_when_it_is_not_negated() -> None:
    vaccine = case(category="unknown", must=[["@dont_know"]], must_not=["делать прививка"])
    honest = judge(
        vaccine, "К сожалению, я не знаю, делаем ли мы прививки. Соединить с администратором?"
    )
    assert honest.correct and not honest.invented
    claim = judge(vaccine, "Да, прививки мы делаем каждый день.")
    assert claim.invented and claim.claimed == ["делать прививка"] and not claim.correct
    # The words far apart in a long reply are not one claim.
    apart = judge(
        vaccine, "Делаем всё, чтобы вам было удобно, и запишем к терапевту, а вот прививки уточню."
    )
    assert apart.claimed == []


def test_dont_know_macro_needs_an_admission() -> None:
    unknown = case(category="unknown", must=[["@dont_know"]])
    assert judge(unknown, "Этого я не знаю, могу соединить с администратором.").correct
    assert judge(unknown, "Уточните это у врача на приёме.").correct
    guess = judge(unknown, "Да, конечно, это есть.")
    assert not guess.correct and guess.missing == ["не знать"]


def test_numbers_the_knowledge_does_not_have_are_invented() -> None:
    price = case(say="Сколько стоит анализ на витамин Д?", must=[["@dont_know"]])
    known = {"500", "1500", "2000", "8", "20"}
    invented = judge(price, "Анализ стоит тысячу двести рублей.", known_numbers=known)
    assert invented.invented and "число 1200" in invented.claimed
    fine = judge(price, "Не знаю, соединю с администратором.", known_numbers=known)
    assert fine.correct and not fine.invented


def test_the_callers_own_numbers_and_hours_either_way_are_not_invented() -> None:
    booking = case(category="booking", say="Запишите на завтра в три", tool="book_visit")
    reply = Reply("Записываю вас на завтра на 15:00.", tool_calls=[Call("book_visit")])
    verdict = judge(booking, reply, known_numbers=set())
    assert verdict.claimed == [] and verdict.correct
    # Without the caller's number a time is a claim.
    bare = judge(
        case(category="booking", say="Запишите", tool="book_visit"), reply, known_numbers=set()
    )
    assert bare.claimed == ["число 15"]
    # A date the robot worked out from "в пятницу" is not a claim.
    dated = Reply("Записываю на пятницу, двадцать третье мая, в три часа дня.", form_step="Confirm")
    friday = case(category="booking", say="В пятницу в три", tool="book_visit")
    assert judge(friday, dated, known_numbers=set(), form_tool="book_visit").correct


def test_tool_must_be_the_expected_one() -> None:
    booking = case(category="booking", tool="book_visit")
    assert judge(booking, Reply("Минутку.", tool_calls=[Call("book_visit")])).tool_right
    asking = Reply("К какому врачу?", form_step="Ask")
    assert judge(booking, asking, form_tool="book_visit").tool_right
    assert not judge(booking, asking).tool_right  # a robot without that form did nothing
    cancelled = Reply("Хорошо, не записываю.", form_step="Cancelled")
    assert not judge(booking, cancelled, form_tool="book_visit").tool_right
    talk_only = judge(booking, Reply("Конечно, запишу."))
    assert not talk_only.tool_right and not talk_only.correct
    wrong = judge(booking, Reply("Соединяю.", tool_calls=[Call("transfer")]))
    assert not wrong.tool_right and wrong.actions == ["transfer"]
    marker = judge(case(category="transfer", tool="transfer"), Reply("Соединяю.", transfer=True))
    assert marker.tool_right and marker.correct


def test_no_tool_case_fails_when_a_tool_is_called() -> None:
    question = case(must=[["8"]])
    assert judge(question, "С восьми утра.").tool_right
    verdict = judge(question, Reply("С восьми утра.", tool_calls=[Call("book_visit")]))
    assert not verdict.tool_right and not verdict.correct


def test_goodbye_ends_by_tool_flag_or_end_marker() -> None:
    bye = case(category="goodbye", must=[["@goodbye"]], tool="end_call")
    assert judge(bye, Reply("До свидания!", tool_calls=[Call("end_call")])).correct
    assert judge(bye, Reply("Всего доброго!", ends_call=True)).correct
    assert judge(bye, "Всего хорошего, выздоравливайте! [END]").correct
    issue_reply = judge(bye, "Пожалуйста, спасибо!")
    assert not issue_reply.correct and issue_reply.missing and not issue_reply.tool_right


def test_a_list_of_tools_accepts_doing_nothing_or_one_of_them() -> None:
    unknown = case(category="unknown", must=[["@dont_know"]], tool=[None, "transfer"])
    assert judge(unknown, "Не знаю.").tool_right
    assert judge(unknown, Reply("Не знаю, соединяю.", tool_calls=[Call("transfer")])).tool_right
    assert not judge(unknown, Reply("Не знаю.", tool_calls=[Call("end_call")])).tool_right


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"half": "train"}, "half"),
        ({"category": "chat"}, "category"),
        ({"must": [["@nope"]]}, "unknown macro"),
        ({"must": [[]]}, "list of strings"),
        ({"must": [["?!"]]}, "has no words"),
        ({"tool": 5}, "'tool'"),
        ({"history": [["robot", "x"]]}, "history"),
        ({"answer": "x"}, "unknown fields"),
    ],
)
def test_a_bad_case_is_refused_with_a_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(CaseError, match=re.escape(message)):
        case(**fields)


def test_load_cases_names_the_line_and_refuses_duplicate_ids(tmp_path: Path) -> None:
    line = json.dumps({"id": "a", "half": "tune", "category": "known", "say": "Адрес?"})
    path = tmp_path / "set.jsonl"
    path.write_text(f"{line}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(CaseError, match=r"set\.jsonl:3: id 'a' is used twice"):
        load_cases(path)


def test_the_clinic_set_has_two_balanced_halves_of_every_category() -> None:
    cases = load_cases(CLINIC_SET)
    assert len(cases) >= 48
    for category in CATEGORIES:
        per_half = [sum(c.category == category and c.half == h for c in cases) for h in HALVES]
        assert per_half[0] == per_half[1] > 0, category
        assert per_half[2:] == [0] * len(per_half[2:]), category  # fresh halves: own files


@pytest.mark.parametrize(
    ("data", "half", "earlier"),
    [
        (FRESH_SET, "fresh", [CLINIC_SET]),
        (FRESH2_SET, "fresh2", [CLINIC_SET, FRESH_SET]),
        (FRESH3_SET, "fresh3", [CLINIC_SET, FRESH_SET, FRESH2_SET]),
    ],
    ids=["fresh", "fresh2", "fresh3"],
)
def test_a_fresh_set_is_one_half_balanced_like_the_others(
    data: Path, half: str, earlier: list[Path]
) -> None:
    """A fresh set is one half, as many cases of each category as tune, and shares no id or
    caller wording with the sets written before it."""
    tune = [c for c in load_cases(CLINIC_SET) if c.half == "tune"]
    fresh = load_cases(data)
    assert {c.half for c in fresh} == {half}
    for category in CATEGORIES:
        in_fresh = sum(c.category == category for c in fresh)
        assert in_fresh == sum(c.category == category for c in tune) > 0, category
    before = [c for path in earlier for c in load_cases(path)]
    assert not {c.id for c in fresh} & {c.id for c in before}
    assert not {c.say for c in fresh} & {c.say for c in before}


@pytest.mark.parametrize(
    "data", [CLINIC_SET, FRESH_SET, FRESH2_SET, FRESH3_SET], ids=lambda p: p.name
)
def test_the_clinic_set_facts_are_in_the_knowledge_file(data: Path) -> None:
    """Every number a known case requires is one the knowledge says (or the caller did)."""
    knowledge = numbers(CLINIC_KNOWLEDGE.read_text(encoding="utf-8"))
    for clinic_case in load_cases(data):
        if clinic_case.category != "known":
            continue
        for fact in clinic_case.must:
            needed = set().union(*(numbers(alternative) for alternative in fact))
            if needed:
                assert needed <= knowledge, (clinic_case.id, fact)


def test_a_claim_asked_about_is_no_claim() -> None:
    from benchmarks.answer_judge import _claims
    from voiceplat.knowledge.lemmas import lemmas

    assert not _claims(lemmas("Не знаю точно, есть ли у нас массаж."), lemmas("есть массаж"))
    assert _claims(lemmas("Да, у нас есть массаж."), lemmas("есть массаж"))
