"""What benchmarks/end_of_turn.py asks at each pause, cached on disk so reruns are cheap.

- `Predictions`: Smart Turn v3's P(complete) for the speech so far;
- `Transcripts`: faster-whisper base (Russian, the robot's ASR provider and its settings) on the
  utterance so far, as the robot's speculative ASR hears it at the pause.

Both keep how long the work took here (the answer arrives that much after it was asked), keyed by
the audio's sha1 in `cache_dir` (default: a `voiceplat-eot-cache` dir in the temp dir).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from voiceplat.audio.pcm import CALL_RATE, Pcm

if TYPE_CHECKING:
    from voiceplat.providers.asr.faster_whisper import FasterWhisperASR
    from voiceplat.turns.smart_turn import SmartTurn

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "voiceplat-eot-cache"


class _DiskCache:
    def __init__(self, cache_dir: Path, kind: str) -> None:
        self.dir = cache_dir / kind
        self.dir.mkdir(parents=True, exist_ok=True)
        self.times_ms: list[float] = []

    def _path(self, audio: bytes) -> Path:
        return self.dir / f"{hashlib.sha1(audio).hexdigest()}.json"

    def load(self, audio: bytes) -> dict | None:
        path = self._path(audio)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def store(self, audio: bytes, entry: dict) -> None:
        self._path(audio).write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")


class Predictions(_DiskCache):
    """Smart Turn answers: (P(complete), milliseconds the prediction took)."""

    def __init__(self, cache_dir: Path = DEFAULT_CACHE) -> None:
        super().__init__(cache_dir, "smart_turn")
        self._model: SmartTurn | None = None
        self._seen: dict[bytes, tuple[float, float]] = {}

    def get(self, audio: bytes) -> tuple[float, float]:
        key = hashlib.sha1(audio).digest()
        if key not in self._seen:
            entry = self.load(audio)
            if entry is None:
                if self._model is None:
                    from voiceplat.turns.smart_turn import SmartTurn

                    self._model = SmartTurn.load()
                model = self._model
                started = time.perf_counter()
                probability = model.predict(audio)
                entry = {"p": probability, "ms": (time.perf_counter() - started) * 1000}
                self.store(audio, entry)
            self._seen[key] = (float(entry["p"]), float(entry["ms"]))
            self.times_ms.append(float(entry["ms"]))
        return self._seen[key]


class Transcripts(_DiskCache):
    """faster-whisper base transcripts: (text, milliseconds the decoding took)."""

    def __init__(self, cache_dir: Path = DEFAULT_CACHE, language: str = "ru") -> None:
        super().__init__(cache_dir, "whisper_base")
        self.language = language
        self._asr: FasterWhisperASR | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: dict[bytes, tuple[str, float]] = {}

    def get(self, audio: bytes) -> tuple[str, float]:
        key = hashlib.sha1(audio).digest()
        if key not in self._seen:
            entry = self.load(audio)
            if entry is None:
                text, took_ms = self._transcribe(audio)
                entry = {"text": text, "ms": took_ms}
                self.store(audio, entry)
            self._seen[key] = (str(entry["text"]), float(entry["ms"]))
            self.times_ms.append(float(entry["ms"]))
        return self._seen[key]

    def _transcribe(self, audio: bytes) -> tuple[str, float]:
        from voiceplat.providers.asr.faster_whisper import (
            FasterWhisperASR,
            FasterWhisperSettings,
        )

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        asr = self._asr
        if asr is None:
            settings = FasterWhisperSettings(provider="faster_whisper", model="base")
            asr = self._asr = FasterWhisperASR(settings, {})
            self._loop.run_until_complete(asr.start())
        transcript = self._loop.run_until_complete(
            asr.transcribe(Pcm(audio, CALL_RATE), self.language)
        )
        return transcript.text.strip(), float(transcript.details.get("decode_ms", 0.0))

    def close(self) -> None:
        if self._loop is not None:
            if self._asr is not None:
                self._loop.run_until_complete(self._asr.aclose())
            self._loop.close()
