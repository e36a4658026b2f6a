"""A caller for the SIP tests: baresip (Debian's softphone) in a network namespace, driven by
typed commands on its stdin, and what its recording of the call says it heard.

baresip 1.0 (tests/fixtures/baresip/config) sends a WAV file as its microphone and dumps what it
receives to a WAV as packets arrive, so a test can wait for what the caller hears. The robot's fake
TTS speaks a 440 Hz tone whose length follows the text: a stretch of tone in the recording is one
robot turn, its length says which, its position when it played.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

import numpy as np

from tests.conftest import FIXTURES
from tests.sip_tools import HANG_S, NETNS_ADDRESS, netns_enter_command, require_tool
from voiceplat.providers.tts.fake import audio_ms

HOST = NETNS_ADDRESS
CALLER_PORT = 5070  # baresip takes 5071 too, for TLS
RATE = 8000
FRAME = RATE // 50  # 20 ms, one RTP packet
SLACK_S = 0.15
"""How much shorter than the fake TTS's length of a text its tone may be heard: it speaks each
sentence on its own (the space between two is not spoken, 60 ms), and a stretch's first and last
frames may be too quiet to count (the 5 ms fades)."""


# -- processes and their output ------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Watched:
    """A child process whose output (stdout and stderr) a reader thread collects line by line."""

    def __init__(self, command: list[str], log_path: Path, stdin: bool = False) -> None:
        self.log_path = log_path
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.log_path.open("w") as log:
            for raw in self.process.stdout:
                text = ANSI.sub("", raw.decode(errors="replace"))
                log.write(text)
                log.flush()
                # baresip rewrites a line in place with \r (the echo of typed commands).
                lines = [part.strip() for part in text.split("\r") if part.strip()]
                with self._changed:
                    self._lines.extend(lines)
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def line_count(self) -> int:
        with self._changed:
            return len(self._lines)

    def tail(self, limit: int = 6000) -> str:
        with self._changed:
            return "\n".join(self._lines)[-limit:] or "(no output)"

    def wait_output(self, pattern: str, start: int = 0, timeout: float = HANG_S) -> re.Match[str]:
        """The first line from line `start` on that matches `pattern` (a regex)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines[start:]:
                    if match := regex.search(line):
                        return match
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    break
                self._changed.wait(left)
        how = f"exited with {self.process.poll()}" if self._ended else f"ran {timeout:g} s"
        name = self.log_path.stem
        raise AssertionError(f"{name} {how} without printing {pattern!r}:\n{self.tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(HANG_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(HANG_S)


# -- what the caller hears -----------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch of robot speech (the fake TTS's tone) in the recording, in seconds."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def tone_frames(samples: np.ndarray, frequency: float = 440.0) -> np.ndarray:
    """Per 20 ms frame: whether it is the fake TTS's tone (loud, and nearly all its energy at
    `frequency`), not silence, comfort noise or a click."""
    count = len(samples) // FRAME
    frames = samples[: count * FRAME].astype(np.float64).reshape(count, FRAME)
    power = np.mean(frames**2, axis=1)
    phase = np.exp(-2j * np.pi * frequency * np.arange(FRAME) / RATE)
    at_tone = 2 * np.abs(frames @ phase) ** 2 / FRAME**2
    return np.asarray((power > 1000.0**2) & (at_tone > 0.5 * power))


def robot_speech(samples: np.ndarray, bridge_frames: int = 2) -> list[Segment]:
    """The stretches of tone; gaps of up to `bridge_frames` (a lost packet, the frame where one
    sentence's fade meets the next) do not split one."""
    segments: list[list[int]] = []
    for index in np.flatnonzero(tone_frames(samples)):
        if segments and index - segments[-1][1] <= bridge_frames + 1:
            segments[-1][1] = int(index)
        else:
            segments.append([int(index), int(index)])
    return [Segment(a * FRAME / RATE, (b + 1) * FRAME / RATE) for a, b in segments]


def read_samples(path: Path) -> np.ndarray:
    """The samples of a WAV that may still be being written (its header not yet final)."""
    data = path.read_bytes()
    start = data.find(b"data", 12, 400)
    assert start > 0, f"{path} has no data chunk"
    body = data[start + 8 :]
    return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")


def write_wav(path: Path, samples: bytes) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples)
    return path


def speech_then_silence(fixture: str, folder: Path, silence_s: float = 60.0) -> Path:
    """The fixture's speech followed by silence: baresip hangs up when its source file ends."""
    with wave.open(str(FIXTURES / fixture)) as speech:
        assert speech.getframerate() == RATE and speech.getnchannels() == 1
        audio = speech.readframes(speech.getnframes())
    return write_wav(folder / fixture, audio + bytes(round(silence_s * RATE) * 2))


def tts_s(text: str) -> float:
    """How long the fake TTS (the echo robot's settings) speaks `text`."""
    return audio_ms(text, 60.0, 200.0) / 1000


# -- baresip ----------------------------------------------------------------------------------


class Baresip(Watched):
    """baresip in the namespace of process `netns_pid`, dialling `uri` at once. Its microphone
    is silence until `say` switches it to a WAV; `heard` is what it has received so far."""

    def __init__(self, folder: Path, netns_pid: int, uri: str) -> None:
        binary = require_tool("baresip")
        # baresip keeps device names (the WAV paths) in 128-byte buffers: a short folder.
        assert len(str(folder)) < 80, folder
        folder.mkdir(parents=True)
        (folder / "recordings").mkdir()
        self.folder = folder
        silence = write_wav(folder / "silence.wav", bytes(300 * RATE * 2))
        values = {
            "listen": f"{HOST}:{CALLER_PORT}",
            "source": str(silence),
            "snd_path": str(folder / "recordings"),
            "host": HOST,
        }
        for name in ("config", "accounts"):
            text = (FIXTURES / "baresip" / name).read_text()
            (folder / name).write_text(Template(text).substitute(values))
        # -s: every SIP message in the output, so tests see who sent the BYE.
        command = [binary, "-s", "-f", str(folder), "-e", f"/dial {uri}"]
        super().__init__(netns_enter_command(netns_pid, command), folder / "baresip.log", True)

    def command(self, text: str) -> None:
        """Types a command, as on baresip's console: "/" + text + Enter."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"/{text}\n".encode())
        self.process.stdin.flush()

    def wait_established(self) -> None:
        self.wait_output(r"Call established")

    def say(self, wav: Path) -> None:
        self.command(f"ausrc aufile,{wav}")
        self.wait_output(re.escape(f"aufile: loading input file '{wav}'"))

    def recording(self, kind: str = "dec") -> Path:
        """The WAV of what baresip received ("dec") or sent ("enc")."""
        match = self.wait_output(rf"sndfile: dumping \w+ audio to (\S+-{kind}\.wav)")
        return Path(match.group(1))

    def heard(self) -> np.ndarray:
        return read_samples(self.recording())

    def wait_heard(self, done: Callable[[list[Segment], float], bool], what: str) -> list[Segment]:
        """Waits until `done(robot speech so far, seconds heard)`; returns that speech."""
        deadline = time.monotonic() + HANG_S
        while True:
            samples = self.heard()
            segments = robot_speech(samples)
            if done(segments, len(samples) / RATE):
                return segments
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"the caller did not hear {what}; robot speech so far: {segments}\n"
                    f"baresip output:\n{self.tail()}"
                )
            time.sleep(0.05)  # the recording grows as packets come; nothing announces them

    def wait_speech(self, total_s: float) -> list[Segment]:
        """Waits until robot speech of `total_s` in all (what the fake TTS makes of the texts
        expected; a stretch split by a gap in the robot's audio counts whole) has been heard,
        followed by a moment of quiet; returns the stretches heard."""

        def done(segments: list[Segment], heard_s: float) -> bool:
            spoken = sum(s.duration_s for s in segments)
            quiet = bool(segments) and heard_s - segments[-1].end_s >= 0.3
            return quiet and spoken >= total_s - SLACK_S

        return self.wait_heard(done, f"{total_s:.2f} s of robot speech to its end")

    def call_id(self) -> str:
        return self.wait_output(r"^Call-ID: (\S+)").group(1)

    def quit(self) -> None:
        """Quits and waits for the exit; its recordings are complete files afterwards."""
        if self.process.poll() is None:
            self.command("quit")
            try:
                self.process.wait(HANG_S)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"baresip did not quit:\n{self.tail()}") from None
        self.stop()


def caller_speech_starts(samples: np.ndarray, threshold: float = 300.0) -> list[float]:
    """Where the caller's utterances begin in what baresip sent (speech after >= 0.5 s quiet)."""
    count = len(samples) // FRAME
    frames = samples[: count * FRAME].astype(np.float64).reshape(count, FRAME)
    loud = np.sqrt(np.mean(frames**2, axis=1)) > threshold
    starts, quiet = [], 25
    for index, is_loud in enumerate(loud):
        if is_loud and quiet >= 25:
            starts.append(index * FRAME / RATE)
        quiet = 0 if is_loud else quiet + 1
    return starts
