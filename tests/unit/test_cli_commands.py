"""`voiceplat`'s subcommands: every one is there, and one whose module cannot be imported says so
when used instead of silently disappearing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from voiceplat.cli import build_parser, main

COMMANDS = {"serve", "check", "migrate", "call", "models", "web", "forget", "calls"}
MODULES = {"call": "voiceplat.simulator.cli", "models": "voiceplat.models.cli"}


def subcommands() -> set[str]:
    (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert isinstance(commands.choices, dict)
    return set(commands.choices)


def test_every_subcommand_is_registered() -> None:
    assert subcommands() == COMMANDS


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("call", "--barge-in"),
        ("models", "--no-progress"),
        ("forget", "ROBOT_DIR"),
        ("calls", "--live"),
    ],
)
def test_every_module_command_is_available(command: str, option: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert option in help_text and "UNAVAILABLE" not in help_text


@pytest.fixture(params=sorted(MODULES))
def broken(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A subcommand whose module raises ImportError when imported."""
    command = request.param
    module = MODULES[command]
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, module, None)  # `import` of it now raises ImportError
    return command, module


def test_a_command_whose_module_is_broken_fails_loudly(broken: tuple[str, str], capsys) -> None:
    command, module = broken
    assert subcommands() == COMMANDS  # still listed, not vanished

    assert main([command, "--help", "--say", "a.wav"]) == 1
    err = capsys.readouterr().err
    assert f"voiceplat {command}: cannot import {module}:" in err
    assert "ModuleNotFoundError" in err and "Traceback" in err  # the cause, where it happened

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "UNAVAILABLE" in capsys.readouterr().out


def test_a_broken_module_command_leaves_the_others_working(
    broken: tuple[str, str], tmp_path: Path, capsys
) -> None:
    assert main(["check", str(tmp_path / "missing")]) == 1
    assert "missing: no such robot folder" in capsys.readouterr().err
