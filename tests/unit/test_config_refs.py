"""What one config section names must exist in another: the user sees one line per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voiceplat.config import load_config
from voiceplat.errors import RobotError

FORM = {
    "tool": "book",
    "triggers": ["записать"],
    "fields": [{"name": "day", "ask": "На какой день?", "type": "date"}],
    "confirm_text": "Записываю на {day}. Верно?",
}


def problems(tmp_path: Path, config: dict) -> list[str]:
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(RobotError) as caught:
        load_config(tmp_path, {})
    return caught.value.problems


def test_a_form_must_fill_a_declared_webhook_and_transfer_needs_a_target(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"tools": [{"builtin": "transfer"}], "form": FORM})
    assert len(lines) == 2
    assert any(
        "form.tool" in line and "'book' is not one of the webhook tools" in line for line in lines
    )
    assert any("tools[0]" in line and "transfer.target" in line for line in lines)


def test_references_that_hold_load(tmp_path: Path) -> None:
    webhook = {"name": "book", "description": "Записать", "url": "http://127.0.0.1:9/visits"}
    config = {"tools": [webhook, {"builtin": "transfer"}], "transfer": {"target": "100"}}
    (tmp_path / "config.json").write_text(json.dumps({**config, "form": FORM}), encoding="utf-8")
    loaded = load_config(tmp_path, {})
    assert loaded.form is not None and loaded.form.tool == "book"
