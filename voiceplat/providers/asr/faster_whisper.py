"""`faster_whisper` ASR: Whisper (CTranslate2, int8 on CPU) from the local model cache.

One model per process, shared by every call and robot that asks for the same model, runs on a
single worker thread: utterances queue instead of oversubscribing the cores (two threads of
CTranslate2 per utterance already use them all). The queue is bounded by `max_queue`; beyond it a
call fails fast with ProviderError rather than waiting for minutes. A queued utterance whose caller
gave up (barge-in, hang-up) is dropped before it runs.

Call audio (8 kHz) is resampled to 16 kHz with soxr. Utterances up to 25 s go through the
short-window path (`whisper_short`), longer ones through `WhisperModel.transcribe()` (30 s
windows). Greedy decoding at temperature 0 either way.

Both paths put Whisper's confidence in `Transcript.details`, for the utterance filter
(voiceplat.turns.utterance_filter) to tell words from noise and hallucinations:

- `avg_logprob`: mean log probability of the decoded tokens (0 = certain; below about -1 the
  words are guesses);
- `no_speech_prob`: Whisper's probability that the audio holds no speech at all.

On the 30 s path they are pooled over the windows: `avg_logprob` over all tokens, `no_speech_prob`
weighted by each window's duration.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.audio.resample import resample
from voiceplat.providers.asr import whisper_short
from voiceplat.providers.base import ASR, ASRSettings, ProviderError, Transcript, register
from voiceplat.providers.worker import SharedModels, SingleWorker

if TYPE_CHECKING:
    import numpy as np
    from faster_whisper import WhisperModel

FASTER_WHISPER_REQUIREMENT = "faster-whisper==1.2.1"
MODEL_NAMES = {"base": "whisper-base", "tiny.en": "whisper-tiny.en"}
"""`model` values -> model cache names (voiceplat.models.catalog)."""
COMPRESSION_RATIO_LIMIT = 2.4
"""transcribe()'s threshold for repetitive output (a decoding loop)."""


class FasterWhisperSettings(ASRSettings):
    """Settings of the `faster_whisper` ASR."""

    model: str = Field(
        "base",
        description="'base' (multilingual), 'tiny.en' (English only), or a path to a "
        "CTranslate2 Whisper model directory.",
    )
    compute_type: str = Field("int8", description="CTranslate2 compute type on CPU.")
    cpu_threads: int = Field(2, ge=1, description="Threads one utterance's decoding uses.")
    beam_size: int = Field(1, ge=1, description="1 is greedy decoding (fastest).")
    fast_path: bool = Field(
        True, description="Encode a window as long as the utterance (< 25 s), not 30 s."
    )
    max_queue: int = Field(
        16, ge=1, description="Utterances waiting for the model before new ones fail fast."
    )


def whisper_language(language: str | None) -> str | None:
    """'ru-RU' -> 'ru', 'en_US' -> 'en'; None or '' means detect."""
    if not language:
        return None
    return language.replace("_", "-").split("-")[0].lower()


def _whisper_languages() -> tuple[str, ...]:
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:  # reported as a missing package instead
        return ()
    return tuple(_LANGUAGE_CODES)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class _SharedModel(SingleWorker):
    """A loaded model and the single worker thread that runs it."""

    def __init__(self, model: WhisperModel) -> None:
        super().__init__("whisper", "speech recognition is overloaded: {pending} queued")
        self.model = model


_MODELS: SharedModels[tuple[str, str, int], _SharedModel] = SharedModels()


def _acquire(path: Path, compute_type: str, cpu_threads: int) -> _SharedModel:
    def load() -> _SharedModel:
        from faster_whisper import WhisperModel

        model = WhisperModel(
            str(path),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=1,
        )
        return _SharedModel(model)

    return _MODELS.acquire((str(path), compute_type, cpu_threads), load)


def _release(shared: _SharedModel) -> None:
    if _MODELS.release(shared):
        shared.executor.shutdown(wait=False)  # utterances already queued still get their answer


@register("asr", "faster_whisper")
class FasterWhisperASR(ASR):
    Settings = FasterWhisperSettings
    settings: FasterWhisperSettings
    bounds_own_time = True  # timeout_s from when the model starts the request

    def __init__(self, settings: FasterWhisperSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._shared: _SharedModel | None = None
        self.load_s: float | None = None

    def problems(self) -> list[str]:
        found: list[str] = []
        try:
            import faster_whisper  # noqa: F401
        except ImportError:
            found.append(
                f"faster-whisper is not installed: pip install {FASTER_WHISPER_REQUIREMENT}"
            )
        model = self.settings.model
        if model in MODEL_NAMES:
            from voiceplat.models.assemble import packages_problem

            if problem := packages_problem(MODEL_NAMES[model], model):
                found.append(problem)
        elif not Path(model).expanduser().is_dir():
            found.append(
                f"model {model!r}: not a known model ({', '.join(MODEL_NAMES)}) "
                "nor a CTranslate2 model directory"
            )
        language = whisper_language(self.settings.language)
        if model.endswith(".en") and language not in (None, "en"):
            found.append(f"model {model!r} is English-only; language {self.settings.language!r}")
        elif language and (known := _whisper_languages()) and language not in known:
            found.append(f"language {self.settings.language!r} is not one Whisper knows")
        return found

    def _model_path(self) -> Path:
        name = MODEL_NAMES.get(self.settings.model)
        if name is None:
            return Path(self.settings.model).expanduser()
        from voiceplat.models.assemble import ensure_model

        return ensure_model(name, progress=False)

    async def start(self) -> None:
        if self._shared is not None:
            return
        from voiceplat.models.assemble import ModelError

        started = time.perf_counter()
        try:
            path = await asyncio.to_thread(self._model_path)
            self._shared = await asyncio.to_thread(
                _acquire, path, self.settings.compute_type, self.settings.cpu_threads
            )
        except ModelError as exc:
            raise ProviderError(str(exc)) from exc
        except ImportError as exc:
            raise ProviderError(
                f"faster-whisper is not installed ({exc}): pip install {FASTER_WHISPER_REQUIREMENT}"
            ) from exc
        self.load_s = time.perf_counter() - started

    async def aclose(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            _release(shared)

    async def transcribe(self, audio: Pcm, language: str | None) -> Transcript:
        shared = self._shared
        if shared is None:
            raise ProviderError("faster_whisper ASR used before start()")
        code = whisper_language(language or self.settings.language)
        queued = time.perf_counter()
        try:
            # timeout_s bounds the model's own work: the wait behind other calls' utterances in
            # the queue is not counted (worker.SingleWorker.run).
            return await shared.run(
                lambda: self._recognize(shared.model, audio, code, queued),
                self.settings.max_queue,
                timeout_s=self.settings.timeout_s,
            )
        except TimeoutError:
            raise ProviderError(
                f"speech recognition took longer than {self.settings.timeout_s} s"
            ) from None
        except ProviderError:
            raise
        except Exception as exc:  # CTranslate2, tokenizer or resampler errors
            raise ProviderError(f"faster_whisper failed: {exc}") from exc

    def _recognize(
        self, model: WhisperModel, audio: Pcm, language: str | None, queued: float
    ) -> Transcript:
        """Runs on the model's worker thread."""
        started = time.perf_counter()
        samples = resample(audio, whisper_short.SAMPLE_RATE).to_float32()
        details: dict[str, object] = {"queue_ms": round((started - queued) * 1000, 1)}
        text, detected = None, language
        if self.settings.fast_path and audio.duration_s <= whisper_short.MAX_SHORT_S:
            decoded = whisper_short.decode_short(model, samples, language, self.settings.beam_size)
            details.update(
                avg_logprob=round(decoded.avg_logprob, 3),
                no_speech_prob=round(decoded.no_speech_prob, 3),
                frames=decoded.frames,
            )
            # A decoding loop ("ага, ага, ага, ...") is rare but ugly; the 30 s window avoids it.
            if decoded.looped or compression_ratio(decoded.text) > COMPRESSION_RATIO_LIMIT:
                details["fallback"] = "repetitive"
            else:
                text, detected, details["path"] = decoded.text, decoded.language, "short"
        if text is None:
            text, detected, confidence = self._transcribe_full(model, samples, language)
            details.update(confidence, path="full")
        details["decode_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return Transcript(text=text, language=detected, details=details)

    def _transcribe_full(
        self, model: WhisperModel, samples: np.ndarray, language: str | None
    ) -> tuple[str, str, dict[str, float]]:
        segments, info = model.transcribe(
            samples,
            language=language,
            beam_size=self.settings.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            # transcribe() would skip a no-speech window without a trace; the same rule is
            # applied here instead, so the skipped windows still count in the confidence.
            no_speech_threshold=None,
        )
        decoded = [
            Window(s.text.strip(), s.avg_logprob, s.no_speech_prob, len(s.tokens), s.end - s.start)
            for s in segments
        ]
        kept = [
            w.text for w in decoded if not whisper_short.no_speech(w.no_speech_prob, w.avg_logprob)
        ]
        return " ".join(t for t in kept if t).strip(), info.language, pooled_confidence(decoded)


@dataclass(frozen=True, slots=True)
class Window:
    """One 30 s window's decoding on the full path."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    tokens: int
    duration_s: float


def pooled_confidence(windows: list[Window]) -> dict[str, float]:
    """`avg_logprob` over all tokens (Whisper's average is over n + 1 positions per window) and
    `no_speech_prob` weighted by duration; {} when nothing was decoded."""
    if not windows:
        return {}
    positions = sum(w.tokens + 1 for w in windows)
    duration = sum(max(w.duration_s, 0.0) for w in windows)
    avg_logprob = sum(w.avg_logprob * (w.tokens + 1) for w in windows) / positions
    if duration > 0:
        no_speech = sum(w.no_speech_prob * max(w.duration_s, 0.0) for w in windows) / duration
    else:
        no_speech = sum(w.no_speech_prob for w in windows) / len(windows)
    return {"avg_logprob": round(avg_logprob, 3), "no_speech_prob": round(no_speech, 3)}
