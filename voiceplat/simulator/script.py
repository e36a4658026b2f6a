"""What the simulated caller does: steps, and the caller audio cut into outbound frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from voiceplat.audio.pcm import CALL_RATE, Pcm, frame_bytes
from voiceplat.audio.resample import resample
from voiceplat.audio.wav import read_wav

AudioSource = str | Path | Pcm

SPEECH_RMS_MIN = 200.0
"""A frame is speech when its RMS exceeds this (the seed's energy VAD default) and also
`SPEECH_RMS_REL` of the clip's loudest frame, so a noisy recording's floor is not speech."""
SPEECH_RMS_REL = 0.03


@dataclass(frozen=True, slots=True)
class Say:
    """Wait until the robot is quiet (and has answered the previous utterance), then speak."""

    audio: AudioSource


@dataclass(frozen=True, slots=True)
class Pause:
    """Stay silent for `seconds`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Wait until the robot's next answer is heard, let it play a little, then speak over it."""

    audio: AudioSource
    after_s: float | None = None
    """How long the answer plays before the caller speaks (None: the call's barge_in_after_s)."""


@dataclass(frozen=True, slots=True)
class WaitQuiet:
    """Stay silent until the robot has been quiet for `seconds` (at least that long from the
    step's start; whether or not it answered), at most the call's answer_timeout_s: e.g. after
    a backchannel the robot talks on, or after a noise it may or may not answer."""

    seconds: float


Step = Say | Pause | BargeIn | WaitQuiet
StepKind = Literal["say", "pause", "barge_in", "wait_quiet"]


@dataclass(frozen=True, slots=True)
class Clip:
    """Caller audio as outbound frames, and which frames hold speech."""

    source: str
    frames: tuple[bytes, ...]
    speech_first: int | None
    """Index of the first frame with speech (None: the clip is silent)."""
    speech_last: int | None


@dataclass(frozen=True, slots=True)
class ScriptItem:
    kind: StepKind
    clip: Clip
    wait_s: float | None = None
    """barge_in: how long the answer plays first (None: the call's); wait_quiet: the quiet."""


def describe(audio: AudioSource) -> str:
    if isinstance(audio, Pcm):
        return f"pcm({audio.duration_s:.2f}s)"
    return Path(audio).name


def load_audio(audio: AudioSource) -> Pcm:
    """Caller audio at the call rate; reading a WAV raises WavError with a readable message."""
    if isinstance(audio, Pcm):
        return resample(audio, CALL_RATE)
    return read_wav(audio, CALL_RATE)


def make_clip(pcm: Pcm, source: str, frame_ms: int) -> Clip:
    size = frame_bytes(frame_ms, pcm.rate)
    data = pcm.data
    if len(data) % size:
        data += bytes(size - len(data) % size)
    frames = tuple(data[i : i + size] for i in range(0, len(data), size))
    if not frames:
        return Clip(source, (), None, None)
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64).reshape(len(frames), -1)
    levels = np.sqrt(np.mean(samples * samples, axis=1))
    threshold = max(SPEECH_RMS_MIN, SPEECH_RMS_REL * float(levels.max()))
    voiced = np.flatnonzero(levels > threshold)
    if voiced.size == 0:
        return Clip(source, frames, None, None)
    return Clip(source, frames, int(voiced[0]), int(voiced[-1]))


def silence_clip(seconds: float, frame_ms: int) -> Clip:
    count = max(0, round(seconds * 1000 / frame_ms))
    silence = bytes(frame_bytes(frame_ms))
    return Clip(f"pause({seconds:g}s)", (silence,) * count, None, None)


def compile_script(steps: list[Step], frame_ms: int = 20) -> tuple[ScriptItem, ...]:
    """Loads every step's audio once, so many calls can share the frames."""
    items: list[ScriptItem] = []
    for step in steps:
        if isinstance(step, Pause):
            if step.seconds < 0:
                raise ValueError(f"pause must not be negative (got {step.seconds})")
            items.append(ScriptItem("pause", silence_clip(step.seconds, frame_ms)))
        elif isinstance(step, WaitQuiet):
            if step.seconds < 0:
                raise ValueError(f"wait_quiet must not be negative (got {step.seconds})")
            items.append(ScriptItem("wait_quiet", Clip("wait_quiet", (), None, None), step.seconds))
        elif isinstance(step, Say):
            clip = make_clip(load_audio(step.audio), describe(step.audio), frame_ms)
            items.append(ScriptItem("say", clip))
        elif isinstance(step, BargeIn):
            if step.after_s is not None and step.after_s < 0:
                raise ValueError(f"barge-in after_s must not be negative (got {step.after_s})")
            clip = make_clip(load_audio(step.audio), describe(step.audio), frame_ms)
            items.append(ScriptItem("barge_in", clip, step.after_s))
        else:
            raise TypeError(f"not a simulator step: {step!r}")
    return tuple(items)
