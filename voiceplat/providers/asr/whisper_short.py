"""Whisper on a short window: encode only the utterance, not a fixed 30 s window.

`WhisperModel.transcribe()` pads every input to 30 s (3000 mel frames) and the encoder's cost
grows with the window, so a 3 s telephone utterance pays for 30 s of encoding (~0.7-0.8 s on two
cores for Whisper base). CTranslate2's encoder accepts any even number of frames up to 3000, so
this path appends silence (at least 1 s, and up to a 6 s window: Whisper likes a pause after the
last word, sub-second windows make it loop on "ага", and on recorded human speech windows under
~6 s mishear more: decode_short alone on the benchmark's 200 recorded prompts gives WER 21.4 %
with a 2 s window, 18.6 % with 6 s, for +40 ms on two cores), computes log-mel features without
the 30 s padding, encodes them and greedily decodes.

Decoding keeps timestamps on. With little silence after the speech Whisper sometimes "hears" the
sentence again (1 in 5 utterances of the benchmark without timestamps); with timestamps the
repeat is a segment that starts after the audio ends or says (nearly) the same as an earlier
one, and `text_before` cuts it off. What is left still looking like a loop (`Decoded.looped`) is
for the caller to redo with the 30 s path.
transcribe()'s no-speech rule applies as well.

No heavy imports at module level: the provider registry imports this module to list providers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

SAMPLE_RATE = 16000
HOP_LENGTH = 160
MAX_FRAMES = 3000
TAIL_SILENCE_S = 1.0
MIN_WINDOW_S = 6.0
MAX_SHORT_S = 25.0
"""Longest utterance the short path takes; longer audio goes through transcribe()."""
MAX_TOKENS = 448
MAX_INITIAL_TIMESTAMP_INDEX = 50
TIME_PRECISION_S = 0.02
"""Whisper's text context (CTranslate2's max_length ceiling)."""
# transcribe()'s defaults: text is dropped when Whisper thinks there was no speech and is unsure.
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0
# Generous bound on tokens per second of speech (Russian BPE runs ~8/s), so a hallucination loop
# on noise ends after a few dozen tokens instead of 448.
TOKENS_PER_SECOND = 15
MIN_NEW_TOKENS = 16
REPEAT_SIMILARITY = 0.8
"""Segments this alike (difflib ratio of their words) are one thing said twice: a decoding loop."""


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    language: str
    no_speech_prob: float
    avg_logprob: float
    frames: int
    looped: bool
    """Decoding ran into the token budget within the speech: likely a repetition loop."""


def short_window_features(model: WhisperModel, audio: np.ndarray) -> np.ndarray:
    """Log-mel features of `audio` (float32, 16 kHz) + silence, an even number of frames."""
    silence_s = max(TAIL_SILENCE_S, MIN_WINDOW_S - len(audio) / SAMPLE_RATE)
    padded = np.concatenate([audio.astype(np.float32), np.zeros(int(silence_s * SAMPLE_RATE))])
    features = model.feature_extractor(padded.astype(np.float32), padding=0)
    frames = min(features.shape[-1], MAX_FRAMES)
    frames -= frames % 2  # the encoder's strided convolution halves the frame count
    return np.ascontiguousarray(features[:, :frames])


def segments(
    tokens: list[int], timestamp_begin: int, eot: int
) -> list[tuple[float | None, list[int]]]:
    """Splits generated tokens into (start time, text tokens) segments.

    Tokens come as `<|start|> text <|end|>` runs; a timestamp right after text ends a segment,
    any other timestamp starts one.
    """
    found: list[tuple[float | None, list[int]]] = []
    start: float | None = None
    text: list[int] = []
    for token in tokens:
        if token >= timestamp_begin:
            if text:
                found.append((start, text))
                start, text = None, []
            else:
                start = (token - timestamp_begin) * TIME_PRECISION_S
        elif token < eot:
            text.append(token)
    if text:
        found.append((start, text))
    return found


def text_before(
    tokens: list[int],
    timestamp_begin: int,
    eot: int,
    speech_s: float,
    decode: Callable[[list[int]], str] | None = None,
) -> tuple[list[int], bool]:
    """Text tokens up to the first repeat; True if something was cut.

    A repeat is a segment that starts after the audio ends, or one that says again what an
    earlier segment said: exactly, or (with `decode`) nearly, in words ("ожидания и удержания
    вызова. Ожидание и удержание вызова."). Small models put the repeat right at the end of the
    speech, often just before the audio ends, so its start time alone does not give it away.
    """
    kept: list[int] = []
    earlier: list[list[int]] = []
    for start, text in segments(tokens, timestamp_begin, eot):
        if (start is not None and start >= speech_s) or any(
            _says_again(text, said, decode) for said in earlier
        ):
            return kept, True
        kept += text
        earlier.append(text)
    return kept, False


def _says_again(
    text: list[int], said: list[int], decode: Callable[[list[int]], str] | None
) -> bool:
    if text == said:
        return True
    if decode is None:
        return False
    words, said_words = _words(decode(text)), _words(decode(said))
    # One word may well be said twice ("Алло. Алло."); a sentence hardly ever is.
    if len(words) < 2:
        return False
    similarity = SequenceMatcher(None, " ".join(words), " ".join(said_words)).ratio()
    return similarity >= REPEAT_SIMILARITY


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower().replace("ё", "е"))


def no_speech(no_speech_prob: float, avg_logprob: float) -> bool:
    """transcribe()'s rule: Whisper thinks there was no speech and is unsure of its words."""
    return no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD


def decode_short(
    model: WhisperModel, audio: np.ndarray, language: str | None, beam_size: int = 1
) -> Decoded:
    """Transcribes up to `MAX_SHORT_S` seconds of 16 kHz float32 audio in one short window."""
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    features = short_window_features(model, audio)
    encoder_output = model.encode(features)
    multilingual = model.model.is_multilingual
    if multilingual and language is None:
        best_token, _ = model.model.detect_language(encoder_output)[0][0]
        language = best_token[2:-2]  # "<|ru|>" -> "ru"
    tokenizer = Tokenizer(
        model.hf_tokenizer, multilingual, task="transcribe", language=language or "en"
    )
    # Timestamps on: with only ~1 s of silence after the speech, Whisper sometimes "hears" the
    # sentence again; with timestamps the repeat starts after the audio ends and is cut off.
    prompt = list(tokenizer.sot_sequence)
    speech_s = len(audio) / SAMPLE_RATE
    budget = min(MIN_NEW_TOKENS + int(TOKENS_PER_SECOND * speech_s), MAX_TOKENS // 2)
    result = model.model.generate(
        encoder_output,
        [prompt],
        beam_size=beam_size,
        # CTranslate2 generates at most max_length // 2 new tokens (like Whisper's sample_len).
        max_length=2 * budget,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
    )[0]
    generated = result.sequences_ids[0]
    tokens, truncated = text_before(
        generated, tokenizer.timestamp_begin, tokenizer.eot, speech_s, tokenizer.decode
    )
    # generate() returns the length-normalised score; recover transcribe()'s average log prob.
    avg_logprob = result.scores[0] * len(generated) / (len(generated) + 1)
    text = tokenizer.decode(tokens).strip()
    if no_speech(result.no_speech_prob, avg_logprob):
        text = ""
    return Decoded(
        text=text,
        language=tokenizer.language_code,
        no_speech_prob=float(result.no_speech_prob),
        avg_logprob=float(avg_logprob),
        frames=features.shape[-1],
        looped=len(generated) >= budget and not truncated,
    )
