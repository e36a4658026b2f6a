"""A local model's `timeout_s` bounds its own work on a request, not the request's wait in the
queue: four callers queued on one model on a busy machine are a queue, a job that hangs is a failure.

Nothing here depends on the machine's speed: the queued job waits behind one that hangs until its
own timeout, longer than the queued job's timeout, and still gets its answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.asr.faster_whisper import (
    FasterWhisperASR,
    FasterWhisperSettings,
    _SharedModel,
)
from voiceplat.providers.base import Message, ProviderError, Transcript
from voiceplat.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppSettings, _Engine
from voiceplat.providers.tts.piper import PiperSettings, PiperTTS
from voiceplat.providers.worker import SingleWorker

HANG_S = 0.4
"""The hanging job's timeout: twice the queued job's, so the queued one waits longer than its own."""
QUEUED_S = HANG_S / 2


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets the hanging job finish; set at the end whatever happened, so no thread stays blocked."""
    event = threading.Event()
    yield event
    event.set()


async def test_time_in_the_queue_does_not_count_against_a_jobs_timeout(
    release: threading.Event,
) -> None:
    worker = SingleWorker("test", "overloaded: {pending}")
    hanging = worker.run(lambda: release.wait(60), max_queue=4, timeout_s=HANG_S)
    queued = worker.run(lambda: "answer", max_queue=4, timeout_s=QUEUED_S)

    with pytest.raises(TimeoutError, match=r"longer than 0\.4 s"):
        await hanging  # a job that hangs is caught by its own timeout
    assert not queued.done()  # waited HANG_S > its QUEUED_S, and has not failed
    release.set()
    assert await queued == "answer"
    await asyncio.to_thread(worker.executor.shutdown, True)
    assert worker.pending == 0


async def test_a_job_without_timeout_waits_for_its_result(release: threading.Event) -> None:
    worker = SingleWorker("test", "overloaded: {pending}")
    result = worker.run(lambda: release.wait(60) and "done", max_queue=1)
    release.set()
    assert await result == "done"
    await asyncio.to_thread(worker.executor.shutdown, True)


def asr_on(shared: _SharedModel, timeout_s: float) -> FasterWhisperASR:
    asr = FasterWhisperASR(
        FasterWhisperSettings(provider="faster_whisper", timeout_s=timeout_s), {}
    )
    asr._shared = shared  # one model shared by two robots' providers, as in a real process
    return asr


async def test_an_utterance_queued_behind_a_slow_one_is_not_a_timeout(
    release: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faster_whisper: the first utterance hangs (its own timeout catches it); the second, queued
    meanwhile longer than its timeout_s, is recognised once the model gets to it."""
    shared = _SharedModel(model=None)
    slow, quick = asr_on(shared, HANG_S), asr_on(shared, QUEUED_S)

    def hangs(*_args: object) -> Transcript:
        release.wait(60)
        return Transcript(text="late", language="ru")

    monkeypatch.setattr(slow, "_recognize", hangs)
    monkeypatch.setattr(quick, "_recognize", lambda *_: Transcript(text="да", language="ru"))
    first = asyncio.create_task(slow.transcribe(Pcm.silence(100), "ru-RU"))
    second = asyncio.create_task(quick.transcribe(Pcm.silence(100), "ru-RU"))

    with pytest.raises(ProviderError, match=r"speech recognition took longer than 0\.4 s"):
        await first
    release.set()
    assert (await second).text == "да"
    await asyncio.to_thread(shared.executor.shutdown, True)


def llm_on(engine: _Engine, timeout_s: float) -> LlamaCppLLM:
    llm = LlamaCppLLM(LlamaCppSettings(provider="llama_cpp", timeout_s=timeout_s), {})
    llm._engine = engine
    return llm


async def collect(llm: LlamaCppLLM, said: str) -> list[str]:
    return [text async for text in llm.stream([Message("user", said)])]


async def test_a_request_queued_behind_a_long_generation_is_not_a_timeout(
    release: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama_cpp: the first generation hangs before its first token (its own timeout catches it);
    the second waits in the queue longer than its timeout_s and is answered afterwards."""
    engine = _Engine(llm=None, render=None, states=None)  # type: ignore[arg-type]

    def generate(request: Any, emit: Callable[[str, Any], None], stop: threading.Event) -> None:
        if request.messages[-1]["content"] == "hang":
            release.wait(60)
        else:
            emit("text", "да")
        emit("end", None)

    monkeypatch.setattr(engine, "generate", generate)
    first = asyncio.create_task(collect(llm_on(engine, HANG_S), "hang"))
    second = asyncio.create_task(collect(llm_on(engine, QUEUED_S), "ответь"))

    with pytest.raises(ProviderError, match=r"the local LLM produced nothing for 0\.4 s"):
        await first
    release.set()
    assert await second == ["да"]
    await asyncio.to_thread(engine.executor.shutdown, True)


class _Chunk:
    def __init__(self, audio: bytes) -> None:
        self.audio_int16_bytes, self.sample_rate = audio, 8000


class _HangingVoice:
    """Piper's voice: "hang" blocks until released; anything else is one chunk of silence."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def synthesize(self, text: str, _config: object) -> Iterator[_Chunk]:
        if text == "hang":
            self.release.wait(60)
        yield _Chunk(bytes(160))


def piper_on(pool: ThreadPoolExecutor, voice: _HangingVoice, timeout_s: float) -> PiperTTS:
    tts = PiperTTS(PiperSettings(provider="piper", timeout_s=timeout_s), {})
    tts._pool.shutdown()
    tts._pool, tts._voice = pool, voice  # type: ignore[assignment]
    tts._config = lambda _voice: None  # type: ignore[method-assign, assignment]
    return tts


async def speak(tts: PiperTTS, text: str) -> bytes:
    return b"".join([pcm.data async for pcm in tts.synthesize(text)])


async def test_a_sentence_queued_behind_a_slow_synthesis_is_not_a_timeout(
    release: threading.Event,
) -> None:
    """piper: the first synthesis hangs (its own timeout catches it); the second waits for the
    pool's one thread longer than its timeout_s and is spoken afterwards."""
    pool, voice = ThreadPoolExecutor(1), _HangingVoice(release)
    first = asyncio.create_task(speak(piper_on(pool, voice, HANG_S), "hang"))
    second = asyncio.create_task(speak(piper_on(pool, voice, QUEUED_S), "Да."))

    with pytest.raises(ProviderError, match="piper produced nothing for 0 s"):
        await first
    release.set()
    assert await second == bytes(160)
    await asyncio.to_thread(pool.shutdown, True)
