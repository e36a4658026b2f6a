"""The "Talk to a robot" page in a real Chromium: the fake microphone (a WAV of Russian speech)
calls a robot with fake providers through the robot's own port (/web); the page shows the caller's
turn, plays the robot's answer, is interrupted by a barge-in, and the call is recorded (source web).
The robot's recording of it proves the browser's uplink audio intact (the mic's speech found in the
caller channel by cross-correlation, nothing above 4 kHz folded back) and the barge-in's cut on the
robot channel; Calls then lists the call and its page plays the recording.

The latency the browser path adds (worklet framing, the WebSocket both ways, the page's playout)
is measured on the way and printed (pytest -s); it is asserted only against hangs.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import read_call_records
from tests.web.conftest import DESKTOP, HANG_S, PHONE, WebService, screenshot
from tests.web.talk_robot import (  # noqa: F401 (talk_robot_fixture is a fixture)
    QUESTION,
    ROBOT,
    WAIT_MS,
    TalkRobot,
    TimedWebChannel,
    check_call_pages,
    check_recording,
    report_latency,
    talk_robot_fixture,
    write_mic_wav,
)

pytestmark = pytest.mark.timeout(180)


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
