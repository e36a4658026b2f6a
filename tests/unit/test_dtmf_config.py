"""The `dtmf` and `transfer` keys of config.json: what loads, and each mistake as one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_config import SEED, problems_of, write_robot
from voiceplat.config import TransferAction
from voiceplat.robot import load_robot

ACTIONS = '"repeat", "hangup", "transfer", {"transfer": "<extension or SIP URI>"}'


def test_the_documented_map_loads_with_its_meanings(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = {
        **SEED,
        "dtmf": {
            "0": {"transfer": "sip:operator@pbx"},
            "9": "repeat",
            "#": "hangup",
            "a": "transfer",
        },
        "dtmf_inter_digit_ms": 800,
        "transfer": {"target": "sip:desk@pbx.local"},
    }
    robot = load_robot(write_robot(tmp_path / "x", config))
    assert robot.config.dtmf == {
        "0": TransferAction(transfer="sip:operator@pbx"),
        "9": "repeat",
        "#": "hangup",
        "A": TransferAction(transfer=None),  # keys A-D are upper-cased; bare "transfer": the target
    }
    assert robot.config.dtmf_inter_digit_ms == 800
    assert robot.config.transfer.target == "sip:desk@pbx.local"


def test_defaults_map_no_key_and_speak_russian(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_robot(write_robot(tmp_path / "x", SEED)).config
    assert config.dtmf == {} and config.dtmf_inter_digit_ms == 1500
    assert config.transfer.target is None and config.transfer.marker == "[TRANSFER]"
    assert config.transfer.text == "Соединяю с оператором."
    assert config.transfer.failed_text == "Не получилось соединить. Продолжим."


def test_every_bad_key_and_action_is_one_line_naming_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dtmf = {
        "X": "repeat",
        "12": "hangup",
        "9": "repet",
        "0": {"transfer": ""},
        "1": {"tranfer": "a"},
    }
    folder = write_robot(tmp_path / "x", {**SEED, "dtmf": dtmf})
    where = f"{folder}/config.json"
    assert problems_of(folder) == [
        f'{where}: dtmf.X: "X" is not allowed; must be one of: 0-9, *, #, A-D (one key)',
        f'{where}: dtmf.12: "12" is not allowed; must be one of: 0-9, *, #, A-D (one key)',
        f'{where}: dtmf.9: "repet" is not allowed; must be one of: {ACTIONS}',
        f'{where}: dtmf.0: {{"transfer": ""}} is not allowed; must be one of: {ACTIONS}',
        f'{where}: dtmf.1: {{"tranfer": "a"}} is not allowed; must be one of: {ACTIONS}',
    ]


def test_a_bare_transfer_key_needs_a_target(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "dtmf": {"0": "transfer"}})
    assert problems_of(folder) == [
        f'{folder}/config.json: dtmf.0: "transfer" is not allowed; must be one of: '
        '{"transfer": "<extension or SIP URI>"}, or "transfer" with transfer.target set'
    ]


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            {"dtmf_inter_digit_ms": 50},
            "dtmf_inter_digit_ms: 50 is not allowed; must be at least 100",
        ),
        (
            {"transfer": {"targt": "1"}},
            "transfer.targt: unknown key (a typo?); did you mean 'target'?",
        ),
        ({"transfer": {"marker": ""}}, 'transfer.marker: "" is not allowed; must not be empty'),
        ({"dtmf": "0"}, 'dtmf: "0" is not allowed; must be an object'),
    ],
)
def test_other_mistakes_read_well(tmp_path: Path, monkeypatch, override: dict, line: str) -> None:
    monkeypatch.chdir(tmp_path)
    (problem,) = problems_of(write_robot(tmp_path / "x", {**SEED, **override}))
    assert line in problem
