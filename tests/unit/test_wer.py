"""The WER the ASR benchmark and the e2e accuracy test compute (benchmarks/asr_accuracy.py)."""

from __future__ import annotations

from benchmarks.asr_accuracy import normalize_words, word_error_rate


def test_case_punctuation_and_yo_do_not_count() -> None:
    assert normalize_words("Нажмите «звёздочку», пожалуйста!") == [
        "нажмите",
        "звездочку",
        "пожалуйста",
    ]
    assert word_error_rate(["Нажмите решётку."], ["нажмите решетку"]) == 0.0


def test_russian_numbers_count_as_the_words_said() -> None:
    assert word_error_rate(["Номер заказа пятьсот семьдесят три."], ["Номер заказа 573."]) == 0.0
    assert word_error_rate(["Нажмите ноль."], ["нажмите 0"]) == 0.0
    assert normalize_words("Press 5 now") == ["press", "5", "now"]  # English keeps its digits


def test_errors_are_counted_over_all_reference_words() -> None:
    # one substitution in the first, one deletion in the second: 2 errors over 6 words
    references = ["Введите новый пароль", "и нажмите решетку"]
    hypotheses = ["Видите новый пароль", "нажмите решетку"]
    assert word_error_rate(references, hypotheses) == 2 / 6
