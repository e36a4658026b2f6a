"""The "Talk to a robot" page in a real Chromium: the fake microphone (a WAV of Russian speech)
calls a robot with fake providers through the robot's own port (/web); the page shows the caller's
turn, plays the robot's answer, is interrupted by a barge-in, and the call is recorded (source web).
The robot's recording of it proves the browser's uplink audio intact (the mic's speech found in the
caller channel by cross-correlation, nothing above 4 kHz folded back) and the barge-in's cut on the
robot channel; Calls then lists the call and its page plays the recording.

The latency the browser path adds (worklet framing, the WebSocket both ways, the page's playout)
is measured on the way and printed (pytest -s); it is asserted only against hangs.
"""

from __future__ import annotations

import importlib
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

from tests.conftest import read_call_records
from tests.web import audio_checks
from tests.web.conftest import (
    DESKTOP,
    FIXTURE_ROBOTS,
    HANG_S,
    PHONE,
    LoopThread,
    WebService,
    screenshot,
)
from voiceplat.audio.resample import resample
from voiceplat.audio.wav import read_wav
from voiceplat.config_sources import deep_merge
from voiceplat.telephony import server as server_module
from voiceplat.telephony.ingress.web import WebChannel

pytestmark = pytest.mark.timeout(180)

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


@pytest.fixture
def talk_robot(
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
    # The page's channel is made where the server picks an ingress by path (server.py, or
    # ingress/paths.py where that exists).
    patched = 0
    for name in ("voiceplat.telephony.server", "voiceplat.telephony.ingress.paths"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        if hasattr(module, "WebChannel"):
            monkeypatch.setattr(module, "WebChannel", TimedWebChannel)
            patched += 1
    assert patched, "no module makes the page's WebChannel any more"

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


# Sync tests, as the browser's: Playwright's sync API keeps an event loop running in this thread,
# so no pytest-asyncio test can run after it in the session; the robot runs on `service_loop`.


def test_bad_input_from_a_page_ends_the_call_as_protocol_error(talk_robot: TalkRobot) -> None:
    """No browser: what the page would be told of its own mistake, and the record it leaves."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{talk_robot.port}/web", open_timeout=HANG_S) as ws:
        ws.send(json.dumps({"robot": ROBOT, "caller": "tester"}))
        call = json.loads(ws.recv(HANG_S))
        assert call["type"] == "call"
        ws.send(b"\x00\x00" * 160)
        ws.send("not json")
        messages = []
        with pytest.raises(ConnectionClosed):
            while True:
                message = ws.recv(HANG_S)
                if isinstance(message, str):
                    messages.append(json.loads(message))
    assert ws.close_code == 1008 and "not JSON" in (ws.close_reason or "")
    assert messages[-2:] == [
        {"type": "error", "message": "TEXT message is not JSON: 'not json'"},
        {"type": "ended", "end_reason": "protocol_error"},
    ]
    talk_robot.stop()  # the JSON file is written once it returns
    (record,) = read_call_records(talk_robot.directory)
    assert record["call"]["call_id"] == call["call_id"]
    assert (record["call"]["source"], record["call"]["caller"]) == ("web", "tester")
    assert (record["call"]["status"], record["call"]["end_reason"]) == ("failed", "protocol_error")


def test_a_page_calling_the_wrong_robot_is_told_which_it_reached(talk_robot: TalkRobot) -> None:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{talk_robot.port}/web", open_timeout=HANG_S) as ws:
        ws.send(json.dumps({"robot": "clinic"}))
        assert json.loads(ws.recv(HANG_S)) == {
            "type": "error",
            "message": f"this port serves robot {ROBOT!r}, not 'clinic'",
        }


def get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=HANG_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_talk_pages_point_at_where_each_robot_listens(web: WebService) -> None:
    from voiceplat.web.routes_talk import ROBOT_ADDRESSES

    status, html = get(f"{web.url}/talk")
    assert status == 200
    assert 'href="/talk/echo"' in html and 'href="/talk/clinic_fake"' in html
    status, html = get(f"{web.url}/talk/clinic_fake")
    assert status == 200 and 'data-ws-port="5298"' in html  # its config's ws_port
    assert 'data-ws-host=""' in html  # ws_host 0.0.0.0: the page's own host
    # `serve --host/--port` put it elsewhere: the service is told, the page follows.
    web.context.extra[ROBOT_ADDRESSES] = {"clinic_fake": ("127.0.0.1", 6001)}
    try:
        _, html = get(f"{web.url}/talk/clinic_fake")
    finally:
        del web.context.extra[ROBOT_ADDRESSES]
    assert 'data-ws-host="127.0.0.1" data-ws-port="6001"' in html
    status, body = get(f"{web.url}/talk/nope")
    assert status == 404 and "no robot named 'nope'" in body and "clinic_fake" in body


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "n/a"


def test_talk_to_a_robot_from_the_browser(
    talk_robot: TalkRobot,
    start_web: Callable[..., WebService],
    browser_with_mic: Callable[[Path], Any],
    new_page: Any,
    tmp_path: Path,
) -> None:
    web = start_web([talk_robot.directory], live=talk_robot.live)
    mic = write_mic_wav(tmp_path / "mic.wav")
    page = new_page(browser_with_mic(mic))

    page.goto(f"{web.url}/talk")
    page.click(f"#talk-robots a[href='/talk/{ROBOT}']")
    page.wait_for_selector("#start")
    page.goto(page.url + "?aec=0")  # the fake microphone is not an echo; keep its audio as is
    assert not page.is_checked("#aec")
    page.click("#start")

    # The question, as the (fake) ASR heard it, shows as the caller's turn.
    caller_turn = page.locator("#transcript li.user").first
    caller_turn.wait_for(timeout=WAIT_MS)
    assert QUESTION in caller_turn.inner_text()
    # The robot's answer plays: the page's output level rises (a 440 Hz tone at 0.3 of full scale).
    page.evaluate("() => window.voiceplatTalk.resetPeak()")
    page.wait_for_function("() => window.voiceplatTalk.outputPeak > 0.1", timeout=WAIT_MS)
    # The looped question comes back over the answer: barge-in. The page dropped what it held
    # (its second clear: the first question cut the greeting) and shows the answer as interrupted,
    # with its v2v; what was heard of it reads as is, only the unheard rest is struck out.
    answer = page.locator("#transcript li.robot[data-interrupted='true'][data-v2v]").first
    answer.wait_for(timeout=WAIT_MS)
    assert "v2v" in answer.inner_text()
    turn = page.evaluate(
        "idx => window.voiceplatTalk.turns[idx]", int(answer.get_attribute("data-idx") or -1)
    )
    words = lambda text: " ".join(text.split())  # noqa: E731  (innerText collapses spaces)
    heard, unheard = answer.locator(".heard").inner_text(), answer.locator(".unheard").inner_text()
    # heard_text: the heard words, "…" where a sentence was cut
    assert words(heard) == words(turn["heard_text"].removesuffix("…"))
    assert words(unheard) and words(heard + unheard) == words(turn["text"])
    # (a line-through propagates to descendants without showing in their computed style)
    struck = "el => [el, ...el.querySelectorAll('*')].filter(e => getComputedStyle(e)"
    struck += ".textDecorationLine.includes('line-through')).map(e => e.className)"
    assert answer.evaluate(struck) == ["unheard"]
    assert page.evaluate("() => window.voiceplatTalk.clears") >= 2
    assert page.locator("#greeting-hint").is_visible()
    screenshot(page, "talk-desktop")

    page.click("#hangup")
    page.wait_for_function("() => window.voiceplatTalk.state === 'ended'", timeout=WAIT_MS)
    talk = page.evaluate("() => window.voiceplatTalk")
    assert talk["endReason"] == "caller_hangup" and talk["error"] is None
    # the call's page is a link away; the greeting hint was for the call to come
    href = f"/calls/{talk['callId']}"
    assert page.locator("#call-id a").get_attribute("href") == href
    assert page.locator("#greeting-hint").is_hidden()
    page.set_viewport_size(PHONE)
    screenshot(page, "talk-phone")
    # (favicon.ico: the service has none yet; not this page's error)
    assert [e for e in new_page.errors(page) if "favicon.ico" not in e] == []

    talk_robot.stop()
    records = [json.loads(p.read_text()) for p in (talk_robot.directory / "logs").glob("*.json")]
    (record,) = records
    assert record["call"]["call_id"] == talk["callId"]
    assert record["call"]["source"] == "web"
    assert record["call"]["end_reason"] == "caller_hangup"
    texts = [(t["role"], t["text"]) for t in record["turns"]]
    assert ("user", QUESTION) in texts
    assert any(t["role"] == "robot" and t["interrupted"] for t in record["turns"])
    wav_s = check_recording(record, mic)

    # The call in Calls, its recording playable in the same browser.
    page.set_viewport_size(DESKTOP)
    check_call_pages(page, web.url, talk["callId"], wav_s)
    screenshot(page, "talk-call-desktop")
    assert [e for e in new_page.errors(page) if "favicon.ico" not in e] == []

    report_latency(talk["stats"], TimedWebChannel.timing)


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


AUDIO_READY_JS = """async () => {
  const audio = document.querySelector("audio#player");
  if (audio.readyState < 3) {
    await new Promise((ok, fail) => {
      audio.addEventListener("canplay", ok, { once: true });
      audio.addEventListener("error", () => fail(new Error("audio error " + audio.error?.code)),
                             { once: true });
      audio.load();
    });
  }
  return audio.duration;
}"""


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
