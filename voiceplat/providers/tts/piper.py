"""`piper` TTS: Piper (ONNX VITS voices), the default local voice for English.

The voice loads once per provider (`start`), from the model cache (`ensure_model("piper-<voice>")`)
or from a path to an `.onnx` file. Synthesis runs in a small thread pool (`workers`, default 1:
onnxruntime already spreads one synthesis over the cores); Piper yields one chunk per sentence,
which goes to the caller as soon as it exists. Calls beyond `workers` wait in the pool's queue.

Cancelling a synthesis (barge-in) takes a queued job out of the queue, and tells a running one to
stop before its next sentence; the caller returns at once and the sentence being computed
(0.1-0.3 s of CPU) is abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import TTS, ProviderError, TTSSettings, register
from voiceplat.providers.tts.local_audio import at_rate, speakable

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)

WARM_TEXT = "Hello."
_DONE = object()
_STARTED = object()


class PiperSettings(TTSSettings):
    """Settings of the `piper` TTS."""

    voice: str = Field(
        "en_US-joe-medium",
        description="A voice of the model catalog (model 'piper-<voice>') or a path to an .onnx "
        "voice with its .onnx.json beside it.",
    )
    speed: float = Field(1.0, gt=0.2, le=5.0, description="Speaking rate; above 1 is faster.")
    noise_scale: float | None = Field(
        None, ge=0, le=2, description="Voice variation; None keeps the voice's own value."
    )
    noise_w_scale: float | None = Field(
        None, ge=0, le=2, description="Phoneme length variation; None keeps the voice's own."
    )
    workers: int = Field(1, ge=1, le=8, description="Syntheses run at once; others wait.")


def voice_files(voice: str) -> tuple[Path, Path]:
    """(model .onnx, config .onnx.json) for `voice`. Blocking: may assemble the model cache."""
    if voice.endswith(".onnx"):
        model = Path(voice).expanduser()
        return model, model.with_name(model.name + ".json")
    from voiceplat.models.assemble import ModelError, ensure_model

    try:
        directory = ensure_model(f"piper-{voice}", progress=False)
    except ModelError as exc:
        raise ProviderError(f'piper voice "{voice}": {exc}') from None
    return directory / f"{voice}.onnx", directory / f"{voice}.onnx.json"


def _load(voice: str) -> PiperVoice:
    from piper import PiperVoice

    model, config = voice_files(voice)
    for path in (model, config):
        if not path.is_file():
            raise ProviderError(f'piper voice "{voice}": {path} not found')
    return PiperVoice.load(model, config)


@register("tts", "piper")
class PiperTTS(TTS):
    Settings = PiperSettings
    settings: PiperSettings
    bounds_own_time = True  # timeout_s from when the model starts the request

    def __init__(self, settings: PiperSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._voice: PiperVoice | None = None
        self._loading = asyncio.Lock()
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="piper")

    def problems(self) -> list[str]:
        if importlib.util.find_spec("piper") is None:
            return ["piper is not installed: pip install piper-tts==1.8.0"]
        if self.settings.voice.endswith(".onnx"):
            model, config = voice_files(self.settings.voice)
            return [
                f"piper voice file {path} not found"
                for path in (model, config)
                if not path.exists()
            ]
        from voiceplat.models.assemble import ModelError, model_status

        try:
            status = model_status(f"piper-{self.settings.voice}")
        except ModelError as exc:
            return [f'piper voice "{self.settings.voice}": {exc}']
        return list(status.problems)

    async def start(self) -> None:
        await self._loaded()
        async for _ in self.synthesize(WARM_TEXT):
            pass

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _loaded(self) -> PiperVoice:
        async with self._loading:
            if self._voice is None:
                self._voice = await asyncio.to_thread(_load, self.settings.voice)
                log.info("piper voice %s loaded", self.settings.voice)
            return self._voice

    def _config(self, voice: PiperVoice) -> Any:
        from piper import SynthesisConfig

        return SynthesisConfig(
            length_scale=voice.config.length_scale / self.settings.speed,
            noise_scale=self.settings.noise_scale,
            noise_w_scale=self.settings.noise_w_scale,
        )

    async def synthesize(self, text: str) -> AsyncIterator[Pcm]:
        async for pcm in at_rate(self._stream(text), self.settings.sample_rate):
            yield pcm

    async def _stream(self, text: str) -> AsyncGenerator[Pcm, None]:
        if not speakable(text):
            return
        voice = await self._loaded()
        config = self._config(voice)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def put(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(chunks.put_nowait, item)

        def work() -> None:
            put(_STARTED)
            try:
                for chunk in voice.synthesize(text, config):
                    if stop.is_set():
                        return
                    put(Pcm(chunk.audio_int16_bytes, chunk.sample_rate))
            except Exception as exc:
                put(exc)
            finally:
                put(_DONE)

        job = loop.run_in_executor(self._pool, work)
        produced = started = False  # timeout_s bounds the synthesis, not the wait in the queue
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.timeout_s if started else None):
                        item = await chunks.get()
                except TimeoutError:
                    raise ProviderError(
                        f"piper produced nothing for {self.settings.timeout_s:.0f} s"
                    ) from None
                if item is _STARTED:
                    started = True
                    continue
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    raise ProviderError(f"piper failed on {text!r}: {item}") from item
                produced = True
                yield item
        finally:
            stop.set()
            job.cancel()  # still queued: never runs
        if not produced:
            raise ProviderError(f"piper returned no audio for {text!r}")
