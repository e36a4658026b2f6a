"""SpeechRates: priors before measurements, ratio-of-sums estimates, the window."""

from __future__ import annotations

import pytest

from voiceplat.sessions.speech_rates import Priors, SpeechRates

PRIORS = Priors(
    llm_chars_per_s=20.0,
    tts_first_audio_base_s=0.2,
    tts_first_audio_s_per_char=0.01,
    tts_rtf=0.2,
    speech_s_per_char=0.1,
    clause_chars=30.0,
)


def test_priors_before_any_measurement() -> None:
    rates = SpeechRates(PRIORS)
    assert rates.llm_chars_per_s == 20.0
    assert rates.tts_rtf == pytest.approx(0.2)
    assert rates.speech_s_per_char == pytest.approx(0.1)
    assert rates.clause_chars == pytest.approx(30.0)
    assert rates.first_audio_s(30) == pytest.approx(0.5)
    assert rates.tts_first_audio_s == pytest.approx(0.5)
    assert rates.speech_s(40) == pytest.approx(4.0)
    assert rates.llm_s(40) == pytest.approx(2.0)


def test_llm_speed_follows_the_stream() -> None:
    rates = SpeechRates(PRIORS)
    for _ in range(8):
        rates.llm_chunk(4, 0.1)  # 40 chars/s
    # 32 chars in 0.8 s plus the prior's 20 chars in 1 s: pulled towards the measurement.
    assert rates.llm_chars_per_s == pytest.approx(52 / 1.8)
    for _ in range(300):
        rates.llm_chunk(4, 0.1)
    assert rates.llm_chars_per_s == pytest.approx(40, rel=0.05)


def test_one_stalled_token_moves_the_llm_speed_little() -> None:
    rates = SpeechRates(PRIORS)
    for _ in range(200):
        rates.llm_chunk(3, 0.1)
    before = rates.llm_chars_per_s
    rates.llm_chunk(3, 1.0)
    assert 0.9 * before < rates.llm_chars_per_s < before


def test_a_change_of_load_is_followed_within_the_window() -> None:
    rates = SpeechRates(PRIORS, window=16)
    for _ in range(100):
        rates.llm_chunk(3, 0.1)  # 30 chars/s alone
    for _ in range(64):
        rates.llm_chunk(3, 0.3)  # 10 chars/s with another call running
    assert rates.llm_chars_per_s == pytest.approx(10, rel=0.1)


def test_tts_rates_come_from_syntheses() -> None:
    rates = SpeechRates(PRIORS, prior_weight=0)
    rates.tts_done(chars=40, synth_s=0.6, audio_s=3.0, first_audio_s=0.6)
    rates.tts_done(chars=20, synth_s=0.4, audio_s=2.0, first_audio_s=0.4)
    assert rates.tts_rtf == pytest.approx(1.0 / 5.0)
    assert rates.speech_s_per_char == pytest.approx(5.0 / 60)
    assert rates.tts_first_audio_s == pytest.approx(0.5)


def test_first_audio_keeps_the_priors_shape_scaled_by_measurements() -> None:
    rates = SpeechRates(PRIORS)
    for _ in range(50):  # every chunk takes twice what the prior says
        rates.tts_done(chars=30, synth_s=1.0, audio_s=3.0, first_audio_s=1.0)
    assert rates.first_audio_s(30) == pytest.approx(1.0, rel=0.05)
    # The length still matters: a longer chunk takes longer to its first audio.
    assert rates.first_audio_s(80) == pytest.approx(2 * (0.2 + 0.8), rel=0.05)


def test_streaming_tts_first_audio_is_not_its_synthesis_time() -> None:
    rates = SpeechRates(PRIORS, prior_weight=0)
    rates.tts_done(chars=50, synth_s=2.0, audio_s=5.0, first_audio_s=0.1)
    assert rates.tts_first_audio_s == pytest.approx(0.1)
    assert rates.synth_s(50) == pytest.approx(2.0)  # by RTF, above the first audio


def test_festival_like_tts_without_first_audio_counts_the_whole_synthesis() -> None:
    rates = SpeechRates(PRIORS, prior_weight=0)
    rates.tts_done(chars=30, synth_s=0.5, audio_s=3.0)
    assert rates.tts_first_audio_s == pytest.approx(0.5)


@pytest.mark.parametrize(
    "sample",
    [(0, 0.5, 3.0, 0.5), (30, 0.5, 0.0, 0.5), (30, -1.0, 3.0, None)],
)
def test_meaningless_syntheses_are_ignored(sample: tuple[int, float, float, float | None]) -> None:
    rates = SpeechRates(PRIORS)
    rates.tts_done(*sample)
    assert rates.tts_rtf == pytest.approx(0.2)
    assert rates.speech_s_per_char == pytest.approx(0.1)


def test_clause_length_is_measured() -> None:
    rates = SpeechRates(PRIORS, prior_weight=1)
    rates.clauses([10, 20, 0])
    assert rates.clause_chars == pytest.approx((10 + 20 + 30) / 3)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="window"):
        SpeechRates(window=0)
