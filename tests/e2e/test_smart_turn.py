"""Smart Turn v3 on real Russian speech through the telephone band, as the robot would ask it.

The recorded telephone prompts (a human voice, asterisk-core-sounds-ru-wav) that are one sentence
are cut at their longest inner pause, which is mid-sentence (benchmarks/end_of_turn_set.py makes
the pairs). Each clip goes through webrtcvad and the endpointer; the model hears what
EndOfTurnPolicy.model_audio gives it at the pause: the utterance up to its last speech frame.
A whole sentence must score higher than the same sentence stopped mid-phrase, on average and in
most pairs, and that difference must be what resampling gives: the same 8 kHz audio read as
16 kHz (pipecat issue 3844) loses it.

The text cue (EndOfTurnPolicy with the speculative transcript) is checked the same way with the
real ASR: faster-whisper base on the same pairs, as the robot transcribes at a 200 ms pause.

Skipped when the model is not prepared (`voiceplat models prepare smart-turn-v3`), faster-whisper
base is missing or the prompts are not installed; under CI=true those skips fail.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from benchmarks.end_of_turn_set import HUMAN_DIR, Clip, build_set
from voiceplat.turns.end_of_turn import EndOfTurnPolicy, EndOfTurnSettings
from voiceplat.turns.endpointer import Endpointer, EndpointerSettings, SpeechEnded, SpeechPaused
from voiceplat.turns.smart_turn import SmartTurn, SmartTurnError
from voiceplat.turns.vad import FRAME_BYTES, make_vad

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
POLICY = EndOfTurnPolicy(EndOfTurnSettings(), base_silence_ms=416)


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    try:
        return SmartTurn.load()
    except SmartTurnError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Clip, Clip]]:
    if not HUMAN_DIR.is_dir():
        pytest.skip(f"no {HUMAN_DIR} (apt-get install asterisk-core-sounds-ru-wav)")
    clips = build_set(["human"], tmp_path_factory.mktemp("eot"))
    by_prompt: dict[str, dict[str, Clip]] = {}
    for clip in clips:
        by_prompt.setdefault(clip.name.rsplit("/", 1)[0], {})[clip.kind] = clip
    return [(c["complete"], c["paused"]) for c in by_prompt.values() if "paused" in c]


def heard_at(clip: Clip, moment: str) -> bytes:
    """What the model hears at the clip's first pause of 200 ms that is not its end ("pause":
    in a one-sentence prompt, mid-sentence), or at the end of the utterance ("end")."""
    vad = make_vad("webrtc", aggressiveness=3)
    endpointer = Endpointer(EndpointerSettings(silence_ms=1600, pause_ms=200))
    for index in range(len(clip.pcm) // FRAME_BYTES):
        frame = clip.pcm[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]
        now = (index + 1) * 0.02
        for event in endpointer.push(frame, vad.is_speech(frame), now):
            if isinstance(event, SpeechPaused | SpeechEnded):
                gap_ms = (now - event.ended_at) * 1000
                last = event.ended_at >= clip.speech_end_s - 0.1
                if isinstance(event, SpeechPaused) and moment == "pause" and not last:
                    return POLICY.model_audio(event.audio, gap_ms)
                if isinstance(event, SpeechEnded):
                    assert moment == "end", f"{clip.name}: no pause inside the sentence"
                    return POLICY.model_audio(event.audio, gap_ms)
    raise AssertionError(f"{clip.name}: the utterance did not end")


def test_whole_sentences_score_higher_than_sentences_stopped_mid_phrase(
    model: SmartTurn, pairs: list[tuple[Clip, Clip]]
) -> None:
    assert len(pairs) >= 30, (
        "the prompt set shrank: fewer than 30 one-sentence prompts with a pause"
    )
    scores = []
    for whole, paused in pairs:
        complete_audio, head_audio = heard_at(whole, "end"), heard_at(paused, "pause")
        scores.append(
            (
                model.predict(complete_audio),
                model.predict(head_audio),
                model.predict(complete_audio, rate=16000),  # 8 kHz samples read as 16 kHz
                model.predict(head_audio, rate=16000),
            )
        )
    whole_p, head_p, whole_misread, head_misread = (
        list(column) for column in zip(*scores, strict=True)
    )
    wins = sum(w > h for w, h in zip(whole_p, head_p, strict=True))
    print(
        f"\n{len(pairs)} pairs: whole {statistics.mean(whole_p):.2f}, stopped mid-phrase "
        f"{statistics.mean(head_p):.2f}, whole higher in {wins}; read as 16 kHz: whole "
        f"{statistics.mean(whole_misread):.2f}, stopped {statistics.mean(head_misread):.2f}"
    )
    assert statistics.mean(whole_p) >= statistics.mean(head_p) + 0.08
    assert wins >= 0.6 * len(pairs)
    # Without resampling the model hears double-speed speech and calls nearly everything complete.
    misread_gap = statistics.mean(whole_misread) - statistics.mean(head_misread)
    assert misread_gap < statistics.mean(whole_p) - statistics.mean(head_p) - 0.05
    assert statistics.mean(head_misread) > statistics.mean(head_p) + 0.1


def test_the_text_cue_keeps_mid_sentence_pauses_from_ending_the_turn(
    pairs: list[tuple[Clip, Clip]], tmp_path: Path
) -> None:
    """At the shipped 416 ms, silence alone cuts most sentences stopped mid-phrase; with the
    words Whisper heard at the pause ("Я хотел бы…", a comma, a preposition) the robot waits
    for many of them.
    Whole sentences read as complete, so they are not made to wait. Answer times are fixed
    (ASR 500 ms after the 120 ms pause, model 100 ms): the decisions, not this machine's speed, are under test."""
    from benchmarks.end_of_turn import Signals, Variant, measure
    from benchmarks.end_of_turn_signals import Predictions, Transcripts
    from voiceplat.providers.asr.faster_whisper import FasterWhisperASR, FasterWhisperSettings

    if problems := FasterWhisperASR(
        FasterWhisperSettings(provider="faster_whisper"), {}
    ).problems():
        pytest.skip("; ".join(problems))
    transcripts = Transcripts(tmp_path)
    signals = Signals(Predictions(tmp_path), transcripts, model_ms=100.0, asr_ms=500.0)
    clips = [clip for pair in pairs for clip in pair]
    try:
        silence = measure(clips, 416, Variant("silence", None), signals)
        text = measure(
            clips, 416, Variant("text", EndOfTurnSettings(model="none", text_cue=True)), signals
        )
    finally:
        transcripts.close()
    print(f"\ncut at 416 ms: silence only {silence['cut']}, with the text cue {text['cut']}")
    assert silence["cut"]["paused"] >= len(pairs) // 2  # the problem is real on this set
    # Measured: 34 -> 23 of 40 (benchmarks/end_of_turn.py); a fifth of the pairs saved at least.
    assert text["cut"]["paused"] <= silence["cut"]["paused"] - len(pairs) // 5
    assert text["cut"]["complete"] == 0
    # Whole sentences: the turn ends when the transcript is in (120 + 500 ms), as without the
    # cue; at most a few misheard endings wait longer.
    assert statistics.median(text["ready"]) <= statistics.median(silence["ready"]) + 1
    waited = sum(ms >= 1600 for ms in text["decision"])
    assert waited <= 0.1 * len(text["decision"])
