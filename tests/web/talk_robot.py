"""The talk page test's robot and its audio: the echo fixture robot served by a real RobotServer
(its WebChannel timed), the fake microphone's WAV, and the checks of the call's recording, its
page in Calls and the browser path's latency (tests/web/test_talk_page.py).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.web import audio_checks
from tests.web.conftest import AUDIO_READY_JS, FIXTURE_ROBOTS, HANG_S, LoopThread
from voiceplat.audio.resample import resample
from voiceplat.audio.wav import read_wav
from voiceplat.config_sources import deep_merge
from voiceplat.telephony import server as server_module
from voiceplat.telephony.ingress import paths as ingress_paths
from voiceplat.telephony.ingress.web import WebChannel

SPEECH = Path("/usr/share/asterisk/sounds/ru/agent-pass.wav")
"""A human voice (asterisk-core-sounds-ru-wav), about 2 s."""
OTHER_SPEECH = SPEECH.with_name("agent-newlocation.wav")
"""Another voice prompt of about that length: what the caller did NOT say."""
TONE_HZ = 440.0  # the fake TTS's tone
HIGH_HZ, ALIAS_HZ = 6000.0, 2000.0
HIGH_AMPLITUDE = 100.0
"""Far below the VAD's threshold (RMS 200) even if it did fold back."""
MIC_RATE = 16000
QUESTION = "Здравствуйте, я хочу записаться к врачу."
ROBOT = "talk_echo"
WAIT_MS = HANG_S * 1000


def write_mic_wav(path: Path) -> Path:
    """0.5 s of silence, the recording, 3 s of silence: 16-bit mono 16 kHz (Chromium loops it, so
    the caller speaks again while the robot answers: a barge-in). Under it all a quiet tone above
    the call band (HIGH_HZ): the page's low-pass must take it out, or it folds back to ALIAS_HZ."""
    if not SPEECH.is_file():
        pytest.skip(f"no {SPEECH} (apt-get install asterisk-core-sounds-ru-wav)")
    speech = resample(read_wav(SPEECH, rate=None), MIC_RATE)
    silence = lambda s: np.zeros(int(MIC_RATE * s), dtype=np.int16)  # noqa: E731
    voice = np.concatenate((silence(0.5), np.frombuffer(speech.data, "<i2"), silence(3.0)))
    tone = HIGH_AMPLITUDE * np.sin(2 * np.pi * HIGH_HZ * np.arange(len(voice)) / MIC_RATE)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(MIC_RATE)
        mixed = np.clip(voice + np.round(tone), -32768, 32767).astype("<i2")
        wav.writeframes(mixed.tobytes())
    return path


@dataclass
class Timing:
    """When the robot's side saw each audio message (time.time(): the page's Date.now() clock)."""

    arrived: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)


class TimedWebChannel(WebChannel):
    timing = Timing()

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes) and len(self.timing.arrived) < 500:
            self.timing.arrived.append(time.time())
        super().on_message(message)

    def _send(self, message: str | bytes) -> None:
        if isinstance(message, bytes) and len(self.timing.sent) < 500:
            self.timing.sent.append(time.time())
        super()._send(message)


@dataclass
class TalkRobot:
    directory: Path
    port: int
    live: Any
    """The robot process's LiveCalls (the web service shows it, as inside `serve`)."""
    stop: Callable[[], None]


@pytest.fixture(name="talk_robot")
def talk_robot_fixture(
    tmp_path: Path, service_loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TalkRobot]:
    """The echo fixture robot (fake ASR/LLM/TTS) served by a real RobotServer on 127.0.0.1; its
    config's ws_port is the port it got, so the web service's page points at it."""
    from voiceplat.robot import load_robot
    from voiceplat.storage.jsonfile import JsonFileSink
    from voiceplat.storage.live import LiveCalls
    from voiceplat.storage.recorder import Recorder

    directory = tmp_path / ROBOT
    shutil.copytree(FIXTURE_ROBOTS / "echo", directory, ignore=shutil.ignore_patterns("logs"))
    overrides = {
        "ws_host": "127.0.0.1",
        "asr": {"texts": [QUESTION], "cycle": True},
        # Long turns, so the looped question comes back while the robot still answers.
        "tts": {"ms_per_char": 100, "sample_rate": 8000},
        "llm": {"reply": "Вы сказали: {text}. Сейчас я всё подробно расскажу."},
        "recording": {"enabled": True},
    }
    config_path = directory / "config.json"
    config = deep_merge(json.loads(config_path.read_text()), overrides)
    config_path.write_text(json.dumps(config, ensure_ascii=False))
    TimedWebChannel.timing = Timing()
    # The page's channel is made where the server picks an ingress by the request's path.
    monkeypatch.setattr(ingress_paths, "WebChannel", TimedWebChannel)

    async def start() -> tuple[Any, Any, LiveCalls]:
        robot = load_robot(directory, root_dir=tmp_path)
        live = LiveCalls()
        recorder = Recorder([JsonFileSink(robot.logs_dir), live])
        await recorder.start()
        await robot.start()
        server = server_module.RobotServer(robot, recorder, live=live)
        await server.start("127.0.0.1", 0)
        return server, recorder, live

    server, recorder, live = service_loop.run(start())
    config["ws_port"] = server.port
    config_path.write_text(json.dumps(config, ensure_ascii=False))

    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True

        async def shutdown() -> None:
            await server.shutdown(grace_s=5)
            await recorder.aclose()  # the JSON files are written once this returns
            await server.robot.aclose()

        service_loop.run(shutdown())

    yield TalkRobot(directory, server.port, live, stop)
    stop()


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "n/a"


def check_recording(record: dict[str, Any], mic: Path) -> float:
    """The robot's recording of the call: the caller's channel is the browser's uplink (the
    worklet's low-pass and resampling to 8 kHz kept the speech's waveform), the robot's channel
    its tone, cut where each barge-in flushed it. Returns the recording's length, seconds."""
    call = record["call"]
    assert call["recording"] and call["recording_error"] is None
    left, right = audio_checks.read_recording(Path(call["recording"]))
    # Left: the mic's speech (Chromium loops the file: any repetition counts) ...
    at_s, peak = audio_checks.best_match(left, audio_checks.speech_at_8k(mic))
    # ... and not any speech: another voice prompt matches nowhere near as well.
    _, chance = audio_checks.best_match(left, audio_checks.speech_at_8k(OTHER_SPEECH))
    print(
        f"\ncaller channel: the mic's speech at {at_s:.2f} s, peak {peak:.3f}; other {chance:.3f}"
    )
    assert peak >= 0.7 and chance < 0.4
    # Nothing above 4 kHz folded back into the call band (where the caller is silent).
    caller_runs = audio_checks.sound_runs(left, max_gap_s=0.3)
    quiet = (caller_runs[0][1] + 0.1, caller_runs[1][0] - 0.1) if len(caller_runs) > 1 else None
    assert quiet, f"the caller never spoke twice: {caller_runs}"
    alias = audio_checks.band_rms(left, *quiet, ALIAS_HZ)
    print(
        f"{HIGH_HZ:.0f} Hz at RMS {HIGH_AMPLITUDE / 2**0.5:.0f} in: {alias:.2f} at {ALIAS_HZ:.0f} Hz"
    )
    assert alias < HIGH_AMPLITUDE / 2**0.5 / 20  # -26 dB; the filter's stopband is far below
    # Right: the robot's tone, and only that.
    robot_runs = audio_checks.sound_runs(right)
    assert robot_runs, "no robot audio in the recording"
    for start, end in robot_runs:
        assert audio_checks.tone_share(right, start, end, TONE_HZ) > 0.9, (start, end)
    # Each barge-in (the greeting, then the answer) cut the robot's run the caller spoke into
    # soon after the caller started, at what the caller had heard: the flushed outbound
    # stream's position (heard_ms) advanced by the run's length.
    cut = [
        (robot, caller)
        for robot in robot_runs
        for caller in caller_runs
        if robot[0] < caller[0] < robot[1]
    ]
    heard = [
        e["data"]["heard_ms"] / 1000 for e in record["pipeline_log"] if e["event"] == "barge_in"
    ]
    print(f"robot runs {robot_runs}, caller runs {caller_runs}, heard at barge-ins {heard}")
    assert len(heard) >= 2 and len(cut) >= len(heard)
    for (robot, caller), heard_s, before_s in zip(cut, heard, [0.0, *heard], strict=False):
        assert 0 < robot[1] - caller[0] < 1.5, (robot, caller)
        assert robot[1] - robot[0] == pytest.approx(heard_s - before_s, abs=0.1)
        # silence on the robot's channel while the caller goes on speaking
        assert not [r for r in robot_runs if robot[1] < r[0] < caller[1]]
    return len(left) / audio_checks.RATE


def check_call_pages(page: Any, url: str, call_id: str, wav_s: float) -> None:
    """Calls lists the call (this robot's, source web); its page plays the recording."""
    page.goto(f"{url}/calls")
    link = f"a[href='/calls/{call_id}']"
    row = page.locator("#calls-table tr.call-row", has=page.locator(link))
    assert row.locator(".robot").inner_text().strip() == ROBOT
    row.locator(link).click()
    page.wait_for_url(f"{url}/calls/{call_id}")
    assert call_id in page.locator("h1").inner_text()
    assert f"{ROBOT} (pipeline, web)" in page.locator("dl.meta").inner_text()
    assert page.evaluate(AUDIO_READY_JS) == pytest.approx(wav_s, abs=0.1)
    # muted: a page may play muted audio without a user gesture
    page.evaluate(
        "() => { const a = document.querySelector('audio#player'); a.muted = true; a.play(); }"
    )
    page.wait_for_function("() => document.querySelector('audio#player').currentTime > 0.2")
    page.evaluate("() => document.querySelector('audio#player').pause()")


def report_latency(stats: dict[str, Any], timing: Timing) -> None:
    """What the browser path adds to a phone call's latency, from this call (printed)."""
    # The page's Date.now() (ms) and time.time() read the same system clock.
    up = [a * 1000 - s for s, a in zip(stats["sendTimes"], timing.arrived, strict=False)]
    down = [r - s * 1000 for s, r in zip(timing.sent, stats["recvTimes"], strict=False)]
    assert up and down, "no audio went one way or the other"
    framing = 20 / 2 + 128 / stats["sampleRate"] * 1000  # a sample waits half a frame + a quantum
    print(
        f"\nbrowser path ({stats['sampleRate']} Hz context): uplink WS {ms(up)} ms, "
        f"worklet->send hop {ms(stats['hopMs'])} ms, framing ~{framing:.1f} ms; "
        f"downlink WS {ms(down)} ms, page playout start {ms(stats['playLeadMs'])} ms "
        f"(base {stats['baseLatencyMs']:.1f} ms, output {stats['outputLatencyMs'] or 0:.1f} ms)"
    )
