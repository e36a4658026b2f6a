"""FormSettings: what a robot author may write in `form`, and the errors they see otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from voiceplat.forms import FormSettings

FIELDS: list[dict[str, Any]] = [
    {"name": "doctor", "ask": "К какому врачу?", "type": "choice", "options": ["терапевт"]},
    {"name": "date", "ask": "На какой день?", "type": "date"},
]


def settings(**changes: Any) -> FormSettings:
    base = {"tool": "book_visit", "triggers": ["записать"], "fields": FIELDS}
    return FormSettings.model_validate({**base, "confirm_text": "{doctor}, {date}?", **changes})


def error_of(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(**changes)
    return str(caught.value)


def test_defaults_are_spoken_russian() -> None:
    form = settings()
    assert form.cancel_words[:2] == ["отмена", "отменить"]
    assert form.max_attempts == 2 and form.pm_below == 8
    assert form.fields[0].choice_options()[0].value == "терапевт"
    assert [f.spoken_label() for f in form.fields] == ["doctor", "дату"]


def test_a_placeholder_that_is_no_field_is_named() -> None:
    assert "unknown placeholder {doctr}" in error_of(confirm_text="{doctr}, {date}?")
    assert "unknown placeholder {field}" in error_of(change_text="Что менять: {field}?")


def test_a_choice_needs_options_and_others_take_none() -> None:
    no_options = [{"name": "doctor", "ask": "?", "type": "choice"}]
    assert "a choice needs options" in error_of(fields=no_options, confirm_text="{doctor}")
    dated = [{"name": "date", "ask": "?", "type": "date", "options": ["x"]}]
    assert "options are for type choice only" in error_of(fields=dated, confirm_text="{date}")


def test_field_names_are_unique_identifiers() -> None:
    assert "must be unique: date" in error_of(fields=[FIELDS[1], FIELDS[1]], confirm_text="")
    bad = [{"name": "дата", "ask": "?", "type": "date"}]
    assert "String should match pattern" in error_of(fields=bad, confirm_text="")


def test_unknown_keys_and_types_are_refused() -> None:
    assert "Extra inputs are not permitted" in error_of(trigers=["x"])
    bad_type = [{"name": "when", "ask": "?", "type": "datetime"}]
    assert "'date', 'time', 'phone', 'text' or 'choice'" in error_of(
        fields=bad_type, confirm_text="{when}"
    )
    assert "at least 1 item" in error_of(triggers=[])
