"""Barge-in policy decisions, table-driven."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from voiceplat.audio.wav import read_wav
from voiceplat.turns.barge_in import BargeInPolicy, BargeInSettings, words
from voiceplat.turns.endpointer import Endpointer
from voiceplat.turns.vad import FRAME_BYTES, VadEngine, make_vad

DEFAULT = BargeInSettings()
NO_BACKCHANNELS = BargeInSettings(backchannel_words=[])
DISABLED = BargeInSettings(enabled=False)


@pytest.mark.parametrize(
    ("settings", "speech_ms", "interruptible", "expected"),
    [
        (DEFAULT, 0, True, "ignore"),
        (DEFAULT, 260, True, "ignore"),  # a cough, a click (webrtc: ~260 ms with hangover)
        (DEFAULT, 280, True, "pending"),  # may be "ага": pause, ask ASR
        (DEFAULT, 780, True, "pending"),
        (DEFAULT, 800, True, "interrupt"),  # too long for a backchannel
        (DEFAULT, 5000, True, "interrupt"),
        (DEFAULT, 5000, False, "ignore"),  # a legal notice that must be heard
        (NO_BACKCHANNELS, 260, True, "ignore"),
        (NO_BACKCHANNELS, 280, True, "interrupt"),  # nothing to wait for
        (DISABLED, 5000, True, "ignore"),
        (BargeInSettings(min_speech_ms=500, backchannel_max_ms=400), 500, True, "interrupt"),
    ],
)
def test_during_speech(
    settings: BargeInSettings, speech_ms: float, interruptible: bool, expected: str
) -> None:
    assert BargeInPolicy(settings).during_speech(speech_ms, interruptible) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "ignore"),  # a cough: ASR heard nothing
        ("  ...  ", "ignore"),
        ("Ага.", "ignore"),
        ("ага, ага", "ignore"),
        ("Угу!", "ignore"),
        ("Ну да.", "ignore"),
        ("ЯСНО", "ignore"),
        ("Хорошо, понятно.", "ignore"),
        ("Uh-huh.", "ignore"),  # hyphenated word kept whole
        ("mhm, yeah", "ignore"),
        ("OK", "ignore"),
        ("Стоп.", "interrupt"),
        ("Подождите", "interrupt"),
        ("да, но у меня вопрос", "interrupt"),
        ("нет", "interrupt"),
        ("uh", "interrupt"),  # half of "uh-huh" is not a backchannel
        ("huh", "interrupt"),
        ("wait", "interrupt"),
    ],
)
def test_after_utterance(text: str, expected: str) -> None:
    assert BargeInPolicy().after_utterance(text) == expected


def test_yo_is_normalised_in_text_and_in_the_word_list() -> None:
    policy = BargeInPolicy(BargeInSettings(backchannel_words=["ещё", "ага"]))
    assert policy.is_backchannel("Еще ага")
    assert policy.is_backchannel("ЕЩЁ!")
    assert not policy.is_backchannel("")


def test_disabled_policy_never_interrupts_after_an_utterance() -> None:
    assert BargeInPolicy(DISABLED).after_utterance("стоп, стоп") == "ignore"


def test_words_keeps_hyphenated_words_and_drops_punctuation() -> None:
    assert words("Uh-huh… Ёлки-палки, «да»!") == ["uh-huh", "елки-палки", "да"]


@pytest.mark.parametrize(
    "bad",
    [{"min_speech_ms": 0}, {"backchannel_max_ms": -1}, {"enabled": "maybe"}, {"surprise": 1}],
)
def test_settings_are_validated(bad: dict) -> None:
    with pytest.raises(ValidationError):
        BargeInSettings(**bad)


def test_default_word_list_is_not_shared_between_instances() -> None:
    first = BargeInSettings()
    first.backchannel_words.append("lol")
    assert "lol" not in BargeInSettings().backchannel_words


# --- real speech: VAD → endpointer → policy ---------------------------------------------------

FIXTURES = Path(__file__).parents[1] / "fixtures"


def strongest_decision(engine: VadEngine, name: str) -> str:
    """Plays a fixture over the robot's voice; returns the strongest per-frame decision."""
    audio = read_wav(FIXTURES / name).data + bytes(FRAME_BYTES * 50)
    vad, endpointer, policy = make_vad(engine), Endpointer(), BargeInPolicy()
    rank = {"ignore": 0, "pending": 1, "interrupt": 2}
    strongest = "ignore"
    for k in range(len(audio) // FRAME_BYTES):
        frame = audio[k * FRAME_BYTES : (k + 1) * FRAME_BYTES]
        endpointer.push(frame, vad.is_speech(frame), (k + 1) * 0.02)
        decision = policy.during_speech(endpointer.speech_ms)
        strongest = max(strongest, decision, key=rank.__getitem__)
    return strongest


@pytest.mark.parametrize("engine", ["webrtc", "energy", "silero"])
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ru_aga.wav", "pending"),  # a short burst: wait for ASR to say what it was
        ("en_uhhuh.wav", "pending"),
        ("ru_stop.wav", "interrupt"),  # long speech interrupts without waiting
        ("cough.wav", "ignore"),
    ],
)
def test_real_bursts_over_the_robot(engine: VadEngine, name: str, expected: str) -> None:
    assert strongest_decision(engine, name) == expected
