"""Real SIP software calls the robot: baresip (Debian's softphone) dials it, speaks a WAV file,
records what it hears, presses keys and hangs up; Kamailio stands in for a PBX the robot
registers with. The robot runs `voiceplat serve` with fake providers (the fake TTS speaks a
440 Hz tone whose length follows the text), so these tests are about SIP and RTP, not models.

baresip skips loopback addresses for media, so every process runs in a network namespace the
test makes (`unshare -rn`, 10.99.0.1/32 on its `lo`): a fresh namespace has no other sockets, so
the fixed ports below are free by construction. What the caller heard is judged from baresip's
recording of the RTP it received (tests/e2e/sip_phone.py). No waits on the clock: every step
waits for something the caller hears or a program prints, bounded only against hangs (HANG_S).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ECHO_ROBOT, FIXTURES
from tests.e2e.sip_phone import (
    HOST,
    RATE,
    SLACK_S,
    Baresip,
    Segment,
    Watched,
    caller_speech_starts,
    read_samples,
    robot_speech,
    speech_then_silence,
    tts_s,
)
from tests.sip_tools import (
    HANG_S,
    NO_NAMESPACES,
    SipRobot,
    namespace_problem,
    netns_command,
    netns_enter_command,
    require_tool,
    start_sip_robot,
)

pytestmark = pytest.mark.timeout(300)

ROBOT_PORT = 5060
KAMAILIO_PORT = 5080
WS_PORT = 8080
GREETING = "Здравствуйте! Чем могу помочь?"


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def netns() -> Iterator[int]:
    """A process holding a fresh user + network namespace with 10.99.0.1 on its `lo`; its pid."""
    if problem := namespace_problem():
        pytest.skip(f"{NO_NAMESPACES} ({problem})")
    holder = subprocess.Popen(
        netns_command(["sh", "-c", "echo ready; exec cat"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline() == b"ready\n", "the namespace could not be set up"
    yield holder.pid
    holder.stdin.close()  # cat ends, and the namespace with it once the others have left
    holder.wait(HANG_S)


@pytest.fixture
def robot_in(netns: int, tmp_path: Path) -> Iterator[Callable[..., SipRobot]]:
    """`robot_in(sip={...}, **config)`: the echo robot (fake providers) serving SIP inside the
    namespace, `config` over its config.json; stopped at the end of the test."""
    started: list[SipRobot] = []

    def start(sip: dict[str, Any] | None = None, **config: Any) -> SipRobot:
        section = {
            "host": HOST,
            "port": ROBOT_PORT,
            "transports": ["udp"],
            "rtp_port": 20000,
            "rtp_port_range": 100,
            "codecs": ["PCMA", "PCMU"],
            "allow_from": ["10.99.0.0/24"],
            **(sip or {}),
        }
        config.setdefault("ws_port", WS_PORT)
        directory = tmp_path / "robots" / f"robot{len(started)}"
        shutil.copytree(ECHO_ROBOT, directory, ignore=shutil.ignore_patterns("logs"))
        wrap = lambda argv: netns_enter_command(netns, argv)  # noqa: E731
        robot = start_sip_robot(directory, section, wrap=wrap, **config)
        started.append(robot)
        return robot

    yield start
    for robot in started:
        robot.stop()


@pytest.fixture
def caller(netns: int, tmp_path: Path) -> Iterator[Callable[..., Baresip]]:
    """`caller(uri)`: baresip dialling `uri` from the namespace; quit at the end of the test.
    Its folder is a short one in /tmp (see Baresip); its log is kept in tmp_path."""
    started: list[Baresip] = []

    def start(uri: str) -> Baresip:
        folder = Path(tempfile.mkdtemp(prefix="bs-")) / "caller"
        phone = Baresip(folder, netns, uri)
        started.append(phone)
        return phone

    yield start
    for index, phone in enumerate(started):
        phone.stop()
        shutil.copy(phone.log_path, tmp_path / f"baresip-{index}.log")
        shutil.rmtree(phone.folder.parent)


def wall(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- tests ---------------------------------------------------------------------------------------


def assert_heard_turns(segments: list[Segment], record: dict[str, Any]) -> None:
    """Each robot turn the record has was heard whole, when the record says it played: the tone
    heard within the turn's span (the recording starts with the call's first RTP packet, sent
    once the call is answered) is as long as the fake TTS makes the turn's text, and no robot
    audio is heard outside the turns. A turn heard in pieces (the robot's audio had a gap: a
    busy machine) still counts; the gaps are printed."""
    answered = wall(record["call"]["answered_at"])
    spans = [
        (
            turn["text"],
            round((wall(turn["started_at"]) - answered).total_seconds(), 2),
            round((wall(turn["ended_at"]) - answered).total_seconds(), 2),
            turn["interrupted"],
        )
        for turn in record["turns"]
        if turn["role"] == "robot"
    ]
    events = [(e["event"], e["data"]) for e in record["pipeline_log"]]
    explain = (
        f"heard {segments}; the record's robot turns (text, start, end, cut): {spans}; "
        f"events: {events}"
    )
    pieces: list[list[Segment]] = [[] for _ in spans]
    for segment in segments:
        middle = (segment.start_s + segment.end_s) / 2
        turn = next((i for i, (_, a, b, _) in enumerate(spans) if a < middle < b), None)
        assert turn is not None, f"robot audio outside every turn: {segment}; {explain}"
        pieces[turn].append(segment)
    for (text, _, _, _), heard in zip(spans, pieces, strict=True):
        assert sum(s.duration_s for s in heard) == pytest.approx(tts_s(text), abs=SLACK_S), explain
        if len(heard) > 1:
            print(f"{text!r} was heard in {len(heard)} pieces: {heard}")


def assert_sip_record(call: dict[str, Any], call_id: str, end_reason: str) -> None:
    assert call["source"] == "sip"
    assert call["caller"] == "caller"  # the From user
    assert call["callee"] == "robot"  # the Request-URI user baresip dialled
    assert call["metadata"]["sip_call_id"] == call_id
    assert call["status"] == "completed"
    assert call["end_reason"] == end_reason


def test_caller_hears_the_greeting_and_the_answer_then_hangs_up(robot_in, caller) -> None:
    said = "запишите меня к врачу"
    robot = robot_in(asr={"texts": [said]})
    phone = caller(robot.uri("robot"))
    phone.wait_established()
    phone.wait_speech(tts_s(GREETING))  # the greeting, before the caller says a word
    phone.say(speech_then_silence("ru_hello.wav", phone.folder))
    answer = f"Вы сказали: {said}."
    phone.wait_speech(tts_s(GREETING) + tts_s(answer))
    phone.command("hangup")
    phone.wait_output(r"terminated \(duration")
    call_id = phone.call_id()
    phone.quit()

    (record,) = robot.records(1)
    assert_sip_record(record["call"], call_id, "caller_hangup")
    texts = [(t["role"], t["text"]) for t in record["turns"]]
    assert texts == [("robot", GREETING), ("user", said), ("robot", answer)]
    assert not any(t["interrupted"] for t in record["turns"])
    assert_heard_turns(robot_speech(read_samples(phone.recording())), record)
    assert "Traceback" not in robot.logs, robot.tail()


def test_caller_speaking_over_the_robot_stops_it(robot_in, caller) -> None:
    long_reply = "Вы сказали: {text}. " + "Это длинный ответ, его можно перебить. " * 6
    robot = robot_in(asr={"texts": ["расскажите подробно", "подождите"]}, llm={"reply": long_reply})
    phone = caller(robot.uri("robot"))
    phone.wait_established()
    greeting_end = phone.wait_speech(tts_s(GREETING))[-1].end_s
    phone.say(speech_then_silence("ru_hello.wav", phone.folder))

    def after_greeting(segments: list[Segment]) -> list[Segment]:
        return [s for s in segments if s.start_s > greeting_end]

    def playing_a_while(segments: list[Segment], heard_s: float) -> bool:
        now = after_greeting(segments)
        return bool(now) and heard_s - now[0].start_s > 1.5 and heard_s - now[-1].end_s < 0.1

    # Once the long answer has played a while, the caller speaks over it.
    phone.wait_heard(playing_a_while, "the long answer playing")
    phone.say(speech_then_silence("ru_stop.wav", phone.folder))
    spoke_at_s = len(phone.heard()) / RATE

    def stopped(segments: list[Segment], heard_s: float) -> bool:
        now = after_greeting(segments)
        return bool(now) and now[-1].end_s > spoke_at_s and heard_s - now[-1].end_s > 0.5

    pieces = after_greeting(phone.wait_heard(stopped, "the answer stop"))
    cut = Segment(pieces[0].start_s, pieces[-1].end_s)
    phone.command("hangup")
    phone.wait_output(r"terminated \(duration")
    phone.quit()

    (record,) = robot.records(1)
    events = [e["event"] for e in record["pipeline_log"]]
    assert "barge_in" in events, events
    long_answer = record["turns"][2]
    assert long_answer["role"] == "robot" and long_answer["interrupted"], long_answer
    # In the recordings: the caller's second utterance starts while the answer plays, and the
    # answer's tone stops after that, long before its natural end.
    full_s = tts_s(long_answer["text"])
    sent = read_samples(phone.recording("enc"))
    speech = caller_speech_starts(sent)
    interrupt_s = next((s for s in speech if s > cut.start_s), None)
    assert interrupt_s is not None and interrupt_s < cut.end_s, (speech, cut)
    assert cut.end_s < cut.start_s + full_s - 1.0, (cut, full_s)
    print(f"robot audio stopped {cut.end_s - interrupt_s:.2f} s after the caller began")


def test_keys_pressed_in_baresip_reach_the_robot(robot_in, caller) -> None:
    robot = robot_in(dtmf={"#": "hangup"})
    phone = caller(robot.uri("robot"))
    phone.wait_established()
    phone.wait_speech(tts_s(GREETING))
    phone.command("sndcode 123")  # RFC 4733 telephone-events; unmapped keys go to the LLM
    keys = "[DTMF 1 2 3]"
    phone.wait_speech(tts_s(GREETING) + tts_s(f"Вы сказали: {keys}."))
    phone.command("sndcode #")  # mapped to hangup: the robot ends the call with a BYE
    phone.wait_output(r"^BYE sip:caller")
    phone.wait_output(r"terminated \(duration")
    call_id = phone.call_id()
    phone.quit()

    (record,) = robot.records(1)
    assert_sip_record(record["call"], call_id, "dtmf_hangup")
    assert record["call"]["dtmf"] == "123#"
    texts = [(t["role"], t["text"]) for t in record["turns"]]
    assert texts == [("robot", GREETING), ("user", keys), ("robot", f"Вы сказали: {keys}.")]
    assert_heard_turns(robot_speech(read_samples(phone.recording())), record)


def test_robot_says_goodbye_and_hangs_up_with_bye(robot_in, caller) -> None:
    robot = robot_in(asr={"texts": ["до свидания"]}, llm={"end_call_on": ["до свидания"]})
    phone = caller(robot.uri("robot"))
    phone.wait_established()
    phone.wait_speech(tts_s(GREETING))
    phone.say(speech_then_silence("ru_hello.wav", phone.folder))
    # The robot's BYE (its request line names the caller's contact) ends the call.
    phone.wait_output(r"^BYE sip:caller")
    phone.wait_output(r"session closed: Connection reset by peer")  # how baresip says "BYE"
    phone.wait_output(r"terminated \(duration")
    call_id = phone.call_id()
    phone.quit()

    (record,) = robot.records(1)
    assert_sip_record(record["call"], call_id, "robot_goodbye")
    goodbye = record["turns"][-1]
    assert goodbye["role"] == "robot" and goodbye["text"] == "Вы сказали: до свидания."
    # The goodbye was heard to its end before the BYE: its whole tone is in the recording.
    assert_heard_turns(robot_speech(read_samples(phone.recording())), record)


@pytest.fixture
def kamailio(netns: int, tmp_path: Path) -> Iterator[Watched]:
    """Kamailio as registrar + proxy on 10.99.0.1:KAMAILIO_PORT in the namespace, in the
    foreground (-DD), logging to stderr (-E), with its pid file and runtime files in tmp_path."""
    binary = require_tool("kamailio")
    runtime = tmp_path / "kamailio"
    runtime.mkdir()
    command = [
        binary,
        *["-DD", "-E", "-f", str(FIXTURES / "kamailio" / "kamailio.cfg")],
        *["-l", f"udp:{HOST}:{KAMAILIO_PORT}", "-P", str(runtime / "kamailio.pid")],
        *["-Y", str(runtime), "-m", "32", "-M", "8"],
    ]
    proxy = Watched(netns_enter_command(netns, command), runtime / "kamailio.log")
    try:
        proxy.wait_output(r"kamailio ready")
        yield proxy
    finally:
        proxy.stop()


def test_registered_robot_answers_a_call_routed_by_kamailio(robot_in, caller, kamailio) -> None:
    registrar = f"sip:{HOST}:{KAMAILIO_PORT}"
    register = {"registrar": registrar, "user": "robot", "expires": 60}
    robot = robot_in(sip={"register": register}, asr={"texts": ["алло"]})
    kamailio.wait_output(r"registered sip:robot@")
    phone = caller(f"sip:robot@{HOST}:{KAMAILIO_PORT}")  # the PBX's number, not the robot's
    phone.wait_established()
    phone.wait_speech(tts_s(GREETING))
    phone.say(speech_then_silence("ru_hello.wav", phone.folder))
    phone.wait_speech(tts_s(GREETING) + tts_s("Вы сказали: алло."))
    phone.command("hangup")
    phone.wait_output(r"terminated \(duration")
    call_id = phone.call_id()
    phone.quit()

    # Kamailio found the robot's registered contact and stayed in the dialog's route.
    contact = kamailio.wait_output(r"routing INVITE to (sip:\S+)").group(1)
    assert contact.endswith(f"@{HOST}:{ROBOT_PORT}") or f"@{HOST}:{ROBOT_PORT};" in contact
    kamailio.wait_output(r"in-dialog BYE")
    (record,) = robot.records(1)
    assert_sip_record(record["call"], call_id, "caller_hangup")
    assert_heard_turns(robot_speech(read_samples(phone.recording())), record)
