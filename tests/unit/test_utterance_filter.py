"""The utterance filter: each verdict of `classify`, the unclear-in-a-row limit, and
`confident_overlap` for speech over the robot. Confidence values are the ones Whisper base gives on
telephone audio (voiceplat/turns/utterance_filter.py's docstring, tests/e2e/test_faster_whisper.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from voiceplat.turns.utterance_filter import (
    DEFAULT_HALLUCINATIONS,
    UtteranceFilter,
    UtteranceFilterSettings,
    Verdict,
    classify,
    confident_overlap,
    is_hallucination,
    normalize,
)

SETTINGS = UtteranceFilterSettings()
SURE = {"avg_logprob": -0.34, "no_speech_prob": 0.15}  # "Подождите, подождите, у меня …"
UNSURE = {"avg_logprob": -1.45, "no_speech_prob": 0.39}  # a 150 ms noise burst heard as "А"
NOISE = {"avg_logprob": -1.9, "no_speech_prob": 0.72}  # what Whisper says of a cough


def verdict(text: str, details: dict, voiced_ms: float, **settings: object) -> tuple[str, str]:
    found = classify(text, details, voiced_ms, UtteranceFilterSettings(**settings))
    return found.kind, found.reason


def test_confident_words_are_a_turn() -> None:
    assert verdict("Я хочу записаться к врачу.", SURE, 1800) == ("ok", "ok")
    assert verdict("Да.", {"avg_logprob": -0.5, "no_speech_prob": 0.3}, 220) == ("ok", "ok")


def test_an_asr_without_confidence_is_trusted() -> None:
    assert verdict("Хочу записаться", {}, 900) == ("ok", "ok")
    assert verdict("Хочу записаться", {"avg_logprob": None}, 900) == ("ok", "ok")


@pytest.mark.parametrize("text", ["", "   ", "...", "?!", "— …"])
def test_no_letters_is_no_turn_even_with_the_filter_off(text: str) -> None:
    assert verdict(text, SURE, 1500) == ("ignore", "no_words")
    assert verdict(text, SURE, 1500, enabled=False) == ("ignore", "no_words")


@pytest.mark.parametrize(
    "text",
    [
        "Продолжение следует...",
        "Субтитры сделал DimaTorzok",
        "Субтитры создавал DimaTorzok",
        "Редактор субтитров А.Семкин Корректор А.Егорова",
        "Thank you for watching!",
        "Спасибо за просмотр!",
        "Подписывайтесь на канал",
        "Музыка",
    ],
)
def test_known_hallucinations_are_ignored_however_sure_whisper_is(text: str) -> None:
    assert verdict(text, SURE, 2000) == ("ignore", "hallucination")


def test_a_single_word_phrase_matches_only_the_whole_text() -> None:
    assert verdict("Музыка играет в трубке, вас не слышно", SURE, 2000) == ("ok", "ok")
    assert verdict("Продолжение следует?", SURE, 2000) == ("ignore", "hallucination")
    assert verdict("Скажите, продолжение следует?", SURE, 2000) == ("ok", "ok")


def test_phrases_are_configurable() -> None:
    assert verdict("Продолжение следует", SURE, 2000, hallucinations=[]) == ("ok", "ok")
    assert verdict("Алло алло", SURE, 2000, hallucinations=["алло алло"]) == (
        "ignore",
        "hallucination",
    )


@pytest.mark.parametrize(
    "text", ["СПОКОЙНАЯ МУЗЫКА", "ВЗДЫХАЕТ!", "[музыка]", "(смеётся)", "*кашель*", "♪ ♪"]
)
def test_sound_captions_are_ignored(text: str) -> None:
    assert verdict(text, SURE, 600)[0] == "ignore"


@pytest.mark.parametrize("text", ["МРТ", "СНИЛС?", "ОК", "Мне нужно МРТ"])
def test_abbreviations_are_not_captions(text: str) -> None:
    assert verdict(text, SURE, 500) == ("ok", "ok")


def test_too_little_voiced_time_is_noise() -> None:
    assert verdict("Да.", SURE, 60) == ("ignore", "too_short")
    assert verdict("Да.", SURE, 60, min_voiced_ms=40) == ("ok", "ok")


def test_whisper_sure_there_was_no_speech_is_noise() -> None:
    assert verdict("Ну", NOISE, 900) == ("ignore", "no_speech")
    # no speech likely, but the words themselves are sure: Whisper's own rule keeps them
    assert verdict("Да", {"avg_logprob": -0.6, "no_speech_prob": 0.8}, 300) == ("ok", "ok")


def test_short_unsure_words_are_noise_long_ones_are_unclear() -> None:
    assert verdict("А", UNSURE, 150) == ("ignore", "low_confidence")
    assert verdict("Блан запись четверг", UNSURE, 700) == ("unclear", "low_confidence")
    assert verdict("Блан запись четверг", UNSURE, 700, unclear_min_voiced_ms=800) == (
        "ignore",
        "low_confidence",
    )


def test_filter_off_keeps_every_utterance_with_words() -> None:
    for text, details, voiced in [("А", UNSURE, 150), ("Продолжение следует", SURE, 900)]:
        assert verdict(text, details, voiced, enabled=False) == ("ok", "ok")


def test_unclear_at_most_twice_in_a_row_then_normal_flow() -> None:
    utterances = UtteranceFilter()
    mumble = ("Блан запись", UNSURE, 900)
    reasons = [utterances.judge(*mumble) for _ in range(4)]
    assert [v.kind for v in reasons] == ["unclear", "unclear", "ok", "unclear"]
    assert reasons[2].reason == "unclear_limit"  # answered as it is, and the count starts over
    utterances.judge(*mumble)
    # an answered utterance starts the count over; an ignored cough does not
    assert utterances.judge("Хочу записаться", SURE, 1000).kind == "ok"
    assert utterances.judge(*mumble).kind == "unclear"
    assert utterances.judge("", NOISE, 300).kind == "ignore"
    assert utterances.judge(*mumble).kind == "unclear"
    assert utterances.judge(*mumble).kind == "ok"


def test_never_ask_to_repeat_with_a_zero_limit() -> None:
    utterances = UtteranceFilter(UtteranceFilterSettings(max_unclear_in_row=0))
    assert utterances.judge("Блан запись", UNSURE, 900) == Verdict("ok", "unclear_limit")


def test_unclear_text_default_and_settings_reject_typos() -> None:
    assert SETTINGS.unclear_text == "Извините, не расслышала, повторите, пожалуйста."
    assert SETTINGS.max_unclear_in_row == 2
    with pytest.raises(ValidationError, match="min_voice_ms"):
        UtteranceFilterSettings.model_validate({"min_voice_ms": 100})
    with pytest.raises(ValidationError):
        UtteranceFilterSettings(max_no_speech_prob=1.5)


def test_over_the_robot_a_short_unsure_transcript_is_not_an_interruption() -> None:
    misheard_aga = {"avg_logprob": -0.95, "no_speech_prob": 0.3}  # "Блан." for "угу"
    assert classify("Блан.", misheard_aga, 350, SETTINGS).kind == "ok"  # in silence: a turn
    assert not confident_overlap("Блан.", misheard_aga, 350, SETTINGS)
    assert not confident_overlap(
        "Стоп", {"avg_logprob": -0.4, "no_speech_prob": 0.55}, 350, SETTINGS
    )
    assert confident_overlap("Подождите, подождите", SURE, 450, SETTINGS)
    assert confident_overlap("Стоп", {}, 300, SETTINGS)  # no confidence reported: trusted


def test_over_the_robot_long_speech_needs_only_the_basic_rules() -> None:
    details = {"avg_logprob": -0.95, "no_speech_prob": 0.3}
    assert confident_overlap("У меня другой вопрос", details, 1200, SETTINGS)
    assert not confident_overlap("Продолжение следует", SURE, 1500, SETTINGS)
    assert not confident_overlap("", SURE, 1500, SETTINGS)
    assert not confident_overlap("А", UNSURE, 150, SETTINGS)


# Normalisation of hallucination strings: case, ё/е, punctuation and ellipses do not matter.

_PUNCTUATION = st.sampled_from(["", ".", "…", "...", "!", "?", ",", "«", "»", '"', " - ", "  "])


@st.composite
def _disguised(draw: st.DrawFn, phrase: str) -> str:
    out = []
    for word in phrase.split():
        word = "".join(
            draw(st.sampled_from([c.lower(), c.upper()])) if c.isalpha() else c for c in word
        )
        if draw(st.booleans()):
            word = word.replace("е", "ё").replace("Е", "Ё")
        out.append(draw(_PUNCTUATION) + word + draw(_PUNCTUATION))
    return " ".join(out)


@given(st.sampled_from(DEFAULT_HALLUCINATIONS).flatmap(_disguised))
def test_any_spelling_of_a_known_hallucination_matches(text: str) -> None:
    assert is_hallucination(text, DEFAULT_HALLUCINATIONS)


@given(st.text(alphabet="абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВЁЕ .,!?…-", max_size=40))
def test_normalize_is_idempotent_and_has_no_e_with_dots_or_punctuation(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert "ё" not in once and not any(c in once for c in ".,!?…-")
    assert once == once.lower().strip()
