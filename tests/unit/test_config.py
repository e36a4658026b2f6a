"""Robot config: the seed schema loads, every mistake is one precise line, priority chain holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from voiceplat.cli import main
from voiceplat.errors import RobotError
from voiceplat.providers.base import LLMSettings, TTSSettings
from voiceplat.robot import load_robot

SEED: dict[str, Any] = {
    "ws_port": 5200,
    "mode": "pipeline",
    "asr": {"provider": "fake", "language": "ru-RU"},
    "llm": {"provider": "fake", "temperature": 0.5, "max_tokens": 80},
    "tts": {"provider": "fake", "voice": "alena", "sample_rate": 48000},
    "vad": {"enabled": True, "energy_threshold": 200, "silence_frames": 25, "min_speech_frames": 5},
    "greeting_text": "Здравствуйте! Чем могу помочь?",
}


def write_robot(folder: Path, config: object, prompt: str | None = "Ты робот.") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config, ensure_ascii=False)
    (folder / "config.json").write_text(text, encoding="utf-8")
    if prompt is not None:
        (folder / "prompt.txt").write_text(prompt, encoding="utf-8")
    return folder


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(RobotError) as caught:
        load_robot(folder)
    return caught.value.problems


def test_seed_config_loads_with_its_meanings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    robot = load_robot(write_robot(tmp_path / "x", SEED))
    assert robot.config.ws_port == 5200
    assert robot.config.vad.end_silence_ms == 800  # the seed's 25 frames were about 0.8 s
    assert robot.config.vad.start_speech_ms == 160
    tts, llm = robot.settings["tts"], robot.settings["llm"]
    assert isinstance(tts, TTSSettings) and tts.sample_rate == 48000
    assert isinstance(llm, LLMSettings) and llm.max_tokens == 80


def test_bad_value_names_file_field_value_and_what_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "vad": {**SEED["vad"], "silence_frames": -3}})
    assert problems_of(folder) == [
        f"{folder}/config.json: vad.silence_frames: -3 is not allowed; must be a positive integer"
    ]


def test_unknown_key_is_reported_as_a_likely_typo(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "greting_text": "hi"})
    (line,) = problems_of(folder)
    assert "greting_text: unknown key (a typo?); did you mean 'greeting_text'?" in line


def test_unknown_provider_key_is_reported_with_its_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "llm": {"provider": "fake", "temprature": 1}})
    (line,) = problems_of(folder)
    assert "config.json: llm.temprature: unknown key (a typo?); did you mean 'temperature'?" in line


def test_unknown_provider_lists_the_known_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "asr": {"provider": "yandexx"}})
    (line,) = problems_of(folder)
    assert 'asr.provider: "yandexx" is not a known ASR provider; known: ' in line
    assert "fake" in line


def test_every_problem_is_reported_at_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "ws_port": 70000, "mode": "karaoke"}, prompt=None)
    problems = problems_of(folder)
    assert any("ws_port: 70000 is not allowed; must be at most 65535" in p for p in problems)
    assert any('mode: "karaoke" is not allowed; must be one of' in p for p in problems)


def test_broken_json_says_where(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", '{"ws_port": 5200,,}')
    (line,) = problems_of(folder)
    assert line.startswith(f"{folder}/config.json: not valid JSON:")
    assert "line 1 column" in line


def test_missing_prompt_and_bad_greeting_are_one_line_each(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", SEED, prompt=None)
    (folder / "greeting.wav").write_bytes(b"not a wav at all")
    problems = problems_of(folder)
    assert f"{folder}/prompt.txt: missing; write the robot's system prompt there" in problems
    assert any(p.startswith(f"{folder}/greeting.wav: not a readable PCM WAV") for p in problems)


def test_priority_config_over_robot_env_over_root_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VOICEPLAT_MAX_CALL_S", raising=False)
    (tmp_path / ".env").write_text(
        "VOICEPLAT_MAX_CALL_S=100\nVOICEPLAT_HISTORY_TURNS=3\nVOICEPLAT_WS_PORT=6000\n"
    )
    folder = write_robot(tmp_path / "x", SEED)
    (folder / ".env").write_text("VOICEPLAT_MAX_CALL_S=200\nSECRET_KEY=s3cret\n")
    robot = load_robot(folder)
    assert robot.config.ws_port == 5200  # config.json wins
    assert robot.config.max_call_s == 200  # robot .env over root .env
    assert robot.config.history_turns == 3  # root .env over defaults
    assert robot.env["SECRET_KEY"] == "s3cret"  # secrets reach providers


def test_check_command_exit_codes(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    good = write_robot(tmp_path / "good", SEED)
    bad = write_robot(tmp_path / "bad", {**SEED, "vad": {"silence_frames": 0}})
    assert main(["check", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "vad.silence_frames: 0 is not allowed; must be a positive integer" in err
    assert "Traceback" not in err


def test_pipeline_without_vad_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "vad": {"enabled": False}})
    (line,) = problems_of(folder)
    assert "vad.enabled: false is not allowed in pipeline mode" in line


def test_a_typo_of_provider_is_reported_as_a_typo(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "asr": {"provder": "fake", "language": "ru-RU"}})
    typo, required = problems_of(folder)
    assert typo.endswith(
        "config.json: asr.provder: unknown key (a typo?); did you mean 'provider'?"
    )
    assert "config.json: asr.provider: is required; known: " in required and "fake" in required


def test_a_missing_provider_without_a_typo_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_robot(tmp_path / "x", {**SEED, "asr": {"language": "ru-RU"}})
    (line,) = problems_of(folder)
    assert "config.json: asr.provider: is required; known: " in line
