"""EndOfTurnPolicy: how much silence ends a turn, for each answer the model and the text can give;
text_says_unfinished: what a transcript's last word and punctuation say."""

from __future__ import annotations

import pydantic
import pytest

from voiceplat.turns.end_of_turn import EndOfTurnPolicy, EndOfTurnSettings, text_says_unfinished

BASE = 416


def policy(base: int = BASE, **settings: object) -> EndOfTurnPolicy:
    """A policy with the Smart Turn model on unless `model` says otherwise (the default is off)."""
    return EndOfTurnPolicy(
        EndOfTurnSettings.model_validate({"model": "smart_turn", **settings}), base
    )


def test_defaults() -> None:
    settings = EndOfTurnSettings()
    # Off by default: on 8 kHz Russian it cut more mid-sentence pauses than it saved
    # (benchmarks/end_of_turn.py); the text cue alone is on.
    assert settings.model == "none" and not settings.enabled and settings.any_signal
    assert settings.check_after_ms == 200
    assert settings.complete_threshold == 0.5
    assert settings.unfinished_threshold is None
    assert settings.text_cue
    assert settings.complete_text_silence_ms is None and settings.complete_text_min_words == 4
    assert settings.unfinished_silence_ms == 1600
    assert settings.model_tail_ms == 0


def test_model_and_text_off_keeps_the_silence_setting_whatever_the_answer() -> None:
    off = policy(model="none", text_cue=False)
    assert not off.settings.enabled
    assert [off.silence_needed_ms(p) for p in (None, 0.0, 0.99)] == [BASE, BASE, BASE]
    assert off.silence_needed_ms(None, pending=True) == BASE
    assert off.silence_needed_ms(0.99, text="Я хотел бы", text_pending=True) == BASE
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
        {"complete_threshold": 0.5, "unfinished_threshold": 0.6},
        {"unfinished_threshold": -0.1},
        {"typo_ms": 3},
    ],
)
def test_bad_settings_are_rejected(settings: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        EndOfTurnSettings(**settings)


def test_base_silence_must_be_positive() -> None:
    with pytest.raises(ValueError, match="base_silence_ms"):
        EndOfTurnPolicy(EndOfTurnSettings(), 0)


# --- the text cue ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Я хотел бы",  # no terminal mark
        "Я хотел бы.",  # Whisper's period after a particle that leans on the next word
        "Я хотел бы...",
        "Я хотел бы…",
        "Скажите, пожалуйста,",
        "Мне нужно перенести приём на",
        "Запишите меня к врачу, который",
        "Мне нужно.",
        "Я звоню, потому что —",
        "Можно ли",
        "И ещё вопрос по поводу",
        "Ваш",
        "Скажите, пожалуйста!",  # a lead-in alone: the question is still to come
        "Подскажите.",
        "Дело в том.",
    ],
)
def test_text_that_leans_on_the_next_word_is_unfinished(text: str) -> None:
    assert text_says_unfinished(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "Запишите меня к терапевту на среду.",
        "Сколько стоит анализ крови?",
        "Спасибо!",
        "Я не хочу.",  # a negated wish is a whole answer
        "Не надо.",
        "А когда?",  # a question word that leans only inside a clause
        "Можно?",
        "ДА, ВСЁ ВЕРНО.",  # case and ё do not matter
        "Скажите, пожалуйста, где вы находитесь?",
        "Подскажите адрес.",
        "Я буду дома до 10.",  # a number is a word: "до" does not end it
    ],
)
def test_text_with_a_terminal_mark_and_a_free_last_word_is_complete(text: str) -> None:
    assert text_says_unfinished(text) is False


@pytest.mark.parametrize("text", [None, "", "   ", "...", "?!"])
def test_no_words_no_opinion(text: str | None) -> None:
    assert text_says_unfinished(text) is None


# --- the model and the text together ------------------------------------------------------------

DONE, HALF = "Запишите меня на среду.", "Я хотел бы..."


def test_text_unfinished_waits_whatever_the_model_says() -> None:
    p = policy()
    for probability in (None, 0.05, 0.5, 0.99):
        assert p.silence_needed_ms(probability, text=HALF) == 1600
    assert p.silence_needed_ms(None, pending=True, text=HALF) == 1600


def test_both_complete_end_the_turn_now() -> None:
    p = policy()
    assert p.silence_needed_ms(0.9, text=DONE) == 200
    assert p.turn_ended(200, 0.9, text=DONE)


def test_model_complete_alone_does_not_end_early_when_text_is_given() -> None:
    p = policy()
    assert p.silence_needed_ms(0.9, text="") == BASE  # the text has no words: base setting
    assert p.silence_needed_ms(0.9, text_pending=True) == 1600  # the words are on their way


def test_model_unfinished_waits_even_when_the_text_looks_complete() -> None:
    assert policy().silence_needed_ms(0.1, text=DONE) == 1600
    assert policy(unfinished_threshold=0.2).silence_needed_ms(0.1, text=DONE) == 1600


def test_between_the_thresholds_the_base_setting_holds() -> None:
    p = policy(complete_threshold=0.7, unfinished_threshold=0.2)
    assert p.silence_needed_ms(0.5, text=DONE) == BASE
    assert p.silence_needed_ms(0.5) == BASE  # without text too
    assert p.silence_needed_ms(0.2, text=DONE) == BASE  # unfinished_threshold is exclusive
    assert p.silence_needed_ms(0.19, text=DONE) == 1600
    assert p.silence_needed_ms(0.7, text=DONE) == 200


def test_unfinished_threshold_zero_lets_only_the_text_make_the_robot_wait() -> None:
    p = policy(complete_threshold=0.9, unfinished_threshold=0.0)
    assert p.silence_needed_ms(0.0, text=DONE) == BASE
    assert p.silence_needed_ms(0.0, text=HALF) == 1600
    assert p.silence_needed_ms(0.95, text=DONE) == 200


def test_waiting_for_the_model_while_the_text_says_complete() -> None:
    p = policy()
    assert p.silence_needed_ms(None, pending=True, text=DONE) == 1600
    assert p.silence_needed_ms(None, text=DONE) == BASE  # the model was not asked


def test_text_cue_alone_only_ever_waits_longer() -> None:
    p = policy(model="none")
    assert not p.should_check(5000, already_asked=False)  # no model to ask
    assert p.silence_needed_ms(None, text=HALF) == 1600
    assert p.silence_needed_ms(None, text=DONE) == BASE
    assert p.silence_needed_ms(None, text_pending=True) == 1600
    assert p.silence_needed_ms(None) == BASE  # a caller that passes no text: as before
    assert policy(base=2000, model="none").silence_needed_ms(None, text=HALF) == 2000


def test_text_cue_off_ignores_the_text() -> None:
    p = policy(text_cue=False)
    assert p.silence_needed_ms(0.9, text=HALF) == 200
    assert p.silence_needed_ms(0.9, text_pending=True) == 200
    assert p.silence_needed_ms(0.1, text=DONE) == 1600


def test_a_long_complete_sentence_needs_less_silence() -> None:
    p = policy(base=800, model="none", complete_text_silence_ms=416, complete_text_min_words=4)
    assert p.silence_needed_ms(None, text="Запишите меня на среду.") == 416  # 4 words
    assert p.silence_needed_ms(None, text="Я звоню.") == 800  # short: it may go on
    assert p.silence_needed_ms(None, text="Запишите меня на") == 1600  # leans: wait
    assert p.silence_needed_ms(None, text_pending=True) == 1600
    assert p.silence_needed_ms(None) == 800  # no text given: the base setting
    # Never longer than the base setting, and the model's "unfinished" still wins.
    assert (
        policy(base=300, model="none", complete_text_silence_ms=416).silence_needed_ms(
            None, text="Запишите меня на среду."
        )
        == 300
    )
    both = policy(base=800, complete_text_silence_ms=416, unfinished_threshold=0.2)
    assert both.silence_needed_ms(0.1, text="Запишите меня на среду.") == 1600
    assert both.silence_needed_ms(0.3, text="Запишите меня на среду.") == 416
    assert both.silence_needed_ms(0.6, text="Запишите меня на среду.") == 200
