"""EndOfTurnPolicy: how much silence ends a turn, for each answer the model can give."""

from __future__ import annotations

import pydantic
import pytest

from voiceplat.turns.end_of_turn import EndOfTurnPolicy, EndOfTurnSettings

BASE = 416


def policy(base: int = BASE, **settings: object) -> EndOfTurnPolicy:
    return EndOfTurnPolicy(EndOfTurnSettings.model_validate(settings), base)


def test_defaults() -> None:
    settings = EndOfTurnSettings()
    assert settings.model == "smart_turn" and settings.enabled
    assert settings.check_after_ms == 200
    assert settings.complete_threshold == 0.5
    assert settings.unfinished_silence_ms == 1600
    assert settings.model_tail_ms == 0


def test_model_off_keeps_the_silence_setting_whatever_the_answer() -> None:
    off = policy(model="none")
    assert not off.settings.enabled
    assert [off.silence_needed_ms(p) for p in (None, 0.0, 0.99)] == [BASE, BASE, BASE]
    assert off.silence_needed_ms(None, pending=True) == BASE
    assert not off.should_check(5000, already_asked=False)


def test_not_asked_yet_is_the_silence_setting() -> None:
    assert policy().silence_needed_ms(None) == BASE
    assert not policy().turn_ended(BASE - 20, None)
    assert policy().turn_ended(BASE, None)


def test_while_the_model_works_the_setting_does_not_cut_the_caller_off() -> None:
    p = policy()
    assert p.silence_needed_ms(None, pending=True) == 1600
    assert not p.turn_ended(BASE, None, pending=True)
    assert p.turn_ended(1600, None, pending=True)  # a model that never answers still ends it


def test_complete_ends_the_turn_as_soon_as_the_answer_is_there() -> None:
    p = policy()
    assert p.silence_needed_ms(0.9) == 200
    assert p.turn_ended(200, 0.9)
    assert not p.turn_ended(180, 0.9)
    # A silence setting shorter than the check stays the bound: the model never delays a turn.
    assert policy(base=100).silence_needed_ms(0.9) == 100


def test_unfinished_waits_longer() -> None:
    p = policy()
    assert p.silence_needed_ms(0.1) == 1600
    assert not p.turn_ended(1580, 0.1)
    assert p.turn_ended(1600, 0.1)
    assert policy(base=2000).silence_needed_ms(0.1) == 2000  # never shorter than the setting


def test_threshold_is_inclusive() -> None:
    p = policy(complete_threshold=0.7)
    assert p.is_complete(0.7) and not p.is_complete(0.69)
    assert p.silence_needed_ms(0.69) == 1600
    assert p.silence_needed_ms(0.7) == 200


def test_asked_once_per_pause_after_check_after_ms() -> None:
    p = policy(check_after_ms=240)
    assert not p.should_check(220, already_asked=False)
    assert p.should_check(240, already_asked=False)
    assert not p.should_check(400, already_asked=True)


def test_model_hears_the_speech_and_only_model_tail_ms_of_the_silence() -> None:
    speech, silence = b"\x01\x00" * 8000, bytes(16 * 300)  # 1 s of speech, 300 ms of silence
    audio = speech + silence
    assert policy().model_audio(audio, gap_ms=300) == speech
    assert policy(model_tail_ms=100).model_audio(audio, gap_ms=300) == speech + bytes(1600)
    assert policy(model_tail_ms=500).model_audio(audio, gap_ms=300) == audio
    assert policy().model_audio(audio, gap_ms=0) == audio


@pytest.mark.parametrize(
    "settings",
    [
        {"check_after_ms": 400, "unfinished_silence_ms": 400},
        {"complete_threshold": 1.0},
        {"check_after_ms": 0},
        {"model": "vad"},
        {"typo_ms": 3},
    ],
)
def test_bad_settings_are_rejected(settings: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        EndOfTurnSettings(**settings)


def test_base_silence_must_be_positive() -> None:
    with pytest.raises(ValueError, match="base_silence_ms"):
        EndOfTurnPolicy(EndOfTurnSettings(), 0)
