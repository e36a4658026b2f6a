"""Every mode works over SIP: a SIPp caller talks to an llm_script robot (tone tracks, fake ASR and
LLM: test_llm_script.py's robot) and to a realtime robot (test_realtime.py's fake realtime service,
served from this test's event loop), and a robot takes a call over TLS (SIPp here has no TLS: a
few lines of SIP over Python's ssl module place that call).

The caller's RTP is the test's `RtpPeer`: it speaks when the robot's previous turn has arrived (its
tone, found in the decoded RTP), so no turn is cut by a guess about timing. Each call ends on a cue
the robot acts on (a goodbye track, '#' mapped to hangup, a transfer), so SIPp waits for the
robot's BYE or REFER; SIPp's global timeout only bounds a hang.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.integration.fake_http import make_certs
from tests.integration.sip.calls import events, the_one, turns, write_media
from tests.integration.sip.rtp import Key, RtpPeer, Silence, Speech, packets
from tests.integration.sip.sipp import Sipp, run_sipp, start_sipp
from tests.integration.sip.test_sipp_codecs import wait_until
from tests.integration.sip.test_sipp_media import tone_frames
from tests.integration.sip.test_sipp_transfer import refer_to
from tests.integration.test_llm_script import (  # noqa: F401 (make_script_robot is a fixture)
    SPEECH,
    asr,
    make_script_robot,
    robot_turns,
)
from tests.integration.test_realtime import (  # noqa: F401 (fixtures)
    GREETING,
    HELLO,
    Script,
    fake_realtime,
    frequency,
    realtime_robot,
)
from tests.sip_tools import HANG_S, LISTENING, SipRobot, free_port, require_tool, start_sip_robot

GREETING_HZ, PRICES_HZ, GOODBYE_HZ = 400.0, 600.0, 700.0
"""test_llm_script.py's tracks are tones of 400 + 100 * their index Hz, 0.6 s (30 frames) each."""
TRACK_FRAMES = 25
"""Frames of a track's tone that must arrive before the caller goes on (of its 30)."""


@pytest.fixture
def serve_sip() -> Iterator[Callable[..., SipRobot]]:
    """Serves a robot folder made by another fixture over SIP; stops every robot at the end."""
    started: list[SipRobot] = []

    def start(directory: Path, sip: dict[str, Any] | None = None, **config: Any) -> SipRobot:
        robot = start_sip_robot(directory, sip, **config)
        started.append(robot)
        return robot

    yield start
    for robot in started:
        robot.stop()


def heard(peer: RtpPeer, hz: float, frames: int) -> Callable[[], bool]:
    """True once `frames` 20 ms frames of a `hz` tone came from the robot (PCMU)."""
    return lambda: tone_frames(peer.audio(), hz) >= frames


def peer_call(robot: SipRobot, peer: RtpPeer, workdir: Path) -> Sipp:
    """SIPp signals a call whose RTP is `peer`'s (uac_peer.xml waits for the robot's BYE)."""
    return start_sipp(
        "uac_peer.xml",
        robot.target,
        workdir=workdir,
        extra_args=["-key", "rtp_peer_port", str(peer.port)],
    )


# -- llm_script -------------------------------------------------------------------------------
def test_llm_script_tracks_chosen_from_the_callers_speech_arrive_as_rtp(
    make_script_robot: Callable[..., Path],  # noqa: F811 (the imported fixture)
    serve_sip: Callable[..., SipRobot],
    tmp_path: Path,
) -> None:
    robot = serve_sip(make_script_robot(asr=asr("Сколько стоит приём?", "Спасибо, до свидания")))
    peer = RtpPeer()
    try:
        sipp = peer_call(robot, peer, tmp_path / "sipp")
        try:
            robot_rtp = peer.remote(HANG_S)
            wait_until(heard(peer, GREETING_HZ, TRACK_FRAMES), "the greeting track arriving")
            question = packets([Speech.wav(SPEECH), Silence(1000)])
            peer.play(question, robot_rtp)
            wait_until(heard(peer, PRICES_HZ, TRACK_FRAMES), "the prices track arriving")
            peer.play(packets([Speech.wav(SPEECH), Silence(1000)], after=question), robot_rtp)
        finally:
            result = sipp.wait()  # the goodbye track ends the call: the robot's BYE
        assert result.ok, result.explain()
    finally:
        peer.close()

    record = the_one(robot.records(1))
    assert record["call"]["source"] == "sip"
    assert robot_turns(record) == [
        ("greeting", "Здравствуйте!"),
        ("prices", "Приём стоит тысячу."),
        ("goodbye", "До свидания!"),
    ]
    assert [t["text"] for t in turns(record, "user")] == [
        "Сколько стоит приём?",
        "Спасибо, до свидания",
    ]
    assert record["call"]["end_reason"] == "robot_goodbye"
    # Every track the robot chose reached the caller whole (30 frames each, give or take the edges).
    for hz in (GREETING_HZ, PRICES_HZ, GOODBYE_HZ):
        assert tone_frames(peer.audio(), hz) >= TRACK_FRAMES, hz


def test_an_llm_script_transfer_track_refers_the_caller_and_ends_transferred(
    make_script_robot: Callable[..., Path],  # noqa: F811 (the imported fixture)
    serve_sip: Callable[..., SipRobot],
    tmp_path: Path,
) -> None:
    robot = serve_sip(make_script_robot(asr=asr("Соедините с оператором")))
    workdir = tmp_path / "sipp"
    write_media(workdir, [Silence(1000), Speech.wav(SPEECH), Silence(1000)])
    result = run_sipp("uac_refer.xml", robot.target, workdir=workdir)
    assert result.ok, result.explain()  # REFER, 202, NOTIFY 200 sipfrag, then the robot's BYE
    # The track's target is a bare extension: REFERred to it on the calling side's host.
    assert refer_to(result.messages) == ["sip:1001@127.0.0.1"]

    record = the_one(robot.records(1))
    assert record["call"]["end_reason"] == "transferred"
    assert record["call"]["transfer_target"] == "1001"
    assert robot_turns(record)[-1] == ("operator", "Соединяю.")
    assert [e["target"] for e in events(record, "transfer")] == ["1001"]


# -- realtime ---------------------------------------------------------------------------------
REALTIME_GREETING_HZ, REPLY_HZ = 600.0, 1000.0
"""Script's defaults: the greeting (the model's, 800 ms: 40 frames), the reply (1.5 s: 75)."""


async def test_realtime_the_models_reply_reaches_a_sip_caller_as_rtp(
    fake_realtime: Callable[..., Any],  # noqa: F811 (the imported fixture)
    realtime_robot: Callable[..., Path],  # noqa: F811 (the imported fixture)
    tmp_path: Path,
) -> None:
    server, url = await fake_realtime(Script())
    # The robot is a child process; this loop serves it the fake realtime service meanwhile, so
    # everything that blocks (the robot starting, SIPp, the caller's RTP) runs in threads.
    robot = await asyncio.to_thread(start_sip_robot, realtime_robot(url, dtmf={"#": "hangup"}))
    peer = RtpPeer()
    try:
        sipp = peer_call(robot, peer, tmp_path / "sipp")
        try:
            robot_rtp = await asyncio.to_thread(peer.remote, HANG_S)
            greeting = heard(peer, REALTIME_GREETING_HZ, 30)
            await asyncio.to_thread(wait_until, greeting, "the model's greeting arriving")
            speech = packets([Speech(HELLO.data), Silence(1000)])  # a 700 Hz "utterance"
            await asyncio.to_thread(peer.play, speech, robot_rtp)
            reply = heard(peer, REPLY_HZ, 65)
            await asyncio.to_thread(wait_until, reply, "the model's reply arriving")
            await asyncio.to_thread(peer.play, packets([Key("#")], after=speech), robot_rtp)
        finally:
            result = await asyncio.to_thread(sipp.wait)  # '#' makes the robot hang up: BYE
        assert result.ok, result.explain()
        record = the_one(await asyncio.to_thread(robot.records, 1))
    finally:
        peer.close()
        await asyncio.to_thread(robot.stop)

    # The caller's RTP reached the model as 24 kHz PCM: its 700 Hz tone where its VAD found it.
    (connection,) = server.connections
    start = connection.speech_start_ms * 48
    assert abs(frequency(bytes(connection.audio[start : start + 800 * 48]), 24000) - 700) < 10
    assert record["call"]["source"] == "sip"
    assert [t["text"] for t in turns(record, "user")] == ["Хочу записаться к врачу"]
    assert [t["text"] for t in turns(record, "robot")] == [
        GREETING,
        "Ответ робота номер 1 про запись.",
    ]
    assert record["call"]["dtmf"] == "#"
    assert record["call"]["end_reason"] == "dtmf_hangup"
    assert tone_frames(peer.audio(), REPLY_HZ) >= 65  # the reply, 75 frames, reached the caller


# -- TLS --------------------------------------------------------------------------------------
class TlsSipClient:
    """A SIP user agent of a few lines over TLS (SIPp here has no TLS): it checks the robot's
    certificate against the test's CA and sends requests, one at a time, on one connection, where
    the robot's responses come back (RFC 3261 18.2.2: a reliable transport)."""

    def __init__(self, port: int, ca: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca))  # verifies the chain and 127.0.0.1
        raw = socket.create_connection(("127.0.0.1", port), timeout=HANG_S)
        self.tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.local_port = int(self.tls.getsockname()[1])
        self._buffer = b""

    def send(self, head: str, body: str = "") -> None:
        lines = [line.strip() for line in head.strip().splitlines()]
        message = "\r\n".join([*lines, f"Content-Length: {len(body.encode())}", "", body])
        self.tls.sendall(message.encode())

    def response(self) -> tuple[int, str]:
        """The next response: its status and the whole message."""
        while True:
            head, blank, rest = self._buffer.partition(b"\r\n\r\n")
            found = re.search(rb"^content-length: *(\d+)", head, re.I | re.M)
            length = int(found.group(1)) if found else 0
            if blank and len(rest) >= length:
                break
            chunk = self.tls.recv(65536)
            if not chunk:
                raise AssertionError(f"the robot closed the TLS connection; had {self._buffer!r}")
            self._buffer += chunk
        self._buffer = rest[length:]
        message = (head + blank + rest[:length]).decode()
        return int(message.split(None, 2)[1]), message

    def final(self) -> tuple[int, str]:
        """The final response (1xx skipped)."""
        while True:
            status, message = self.response()
            if status >= 200:
                return status, message

    def close(self) -> None:
        self.tls.close()


def header(message: str, name: str) -> str:
    found = re.search(rf"^{name}: *(.+?)\r?$", message, re.I | re.M)
    assert found, f"no {name} in\n{message}"
    return found.group(1)


def test_a_robot_serves_sip_over_tls_and_takes_a_call_there(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    require_tool("openssl")  # the certificates are made with it
    certs = make_certs(tmp_path)  # a test CA and a server certificate for 127.0.0.1
    tls_port = free_port()
    tls = {"port": tls_port, "cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}
    robot = sip_robot({"transports": ["udp", "tls"], "tls": tls})
    assert f"tls 127.0.0.1:{tls_port}" in robot.wait_output(LISTENING)

    client, peer = TlsSipClient(tls_port, certs.ca), RtpPeer()
    try:
        cert = client.tls.getpeercert()  # verified against the test's CA, for 127.0.0.1
        assert cert is not None
        subject = cast(tuple[tuple[tuple[str, str], ...], ...], cert["subject"])
        assert (("commonName", "server"),) in subject  # the certificate sip.tls names
        me = f"127.0.0.1:{client.local_port}"
        common = f"""
            From: <sip:79990001122@127.0.0.1>;tag=tls-caller
            Call-ID: tls-call-1@127.0.0.1
            Contact: <sip:caller@{me};transport=tls>
            Max-Forwards: 70"""
        offer = (
            "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {peer.port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-15\r\na=sendrecv\r\n"
        )
        request_uri = f"sip:service@127.0.0.1:{tls_port};transport=tls"
        client.send(
            f"""INVITE {request_uri} SIP/2.0
            Via: SIP/2.0/TLS {me};branch=z9hG4bK-tls-1;rport
            To: <sip:service@127.0.0.1:{tls_port}>
            CSeq: 1 INVITE
            Content-Type: application/sdp{common}""",
            offer,
        )
        status, answer = client.final()
        assert status == 200, answer
        to = header(answer, "To")
        client.send(
            f"""ACK {request_uri} SIP/2.0
            Via: SIP/2.0/TLS {me};branch=z9hG4bK-tls-2;rport
            To: {to}
            CSeq: 1 ACK{common}"""
        )
        # The media of a TLS call: the greeting (the fake TTS's 440 Hz tone) arrives as RTP.
        wait_until(heard(peer, 440.0, 40), "the greeting arriving over RTP")
        client.send(
            f"""BYE {request_uri} SIP/2.0
            Via: SIP/2.0/TLS {me};branch=z9hG4bK-tls-3;rport
            To: {to}
            CSeq: 2 BYE{common}"""
        )
        status, bye = client.final()
        assert status == 200, bye
    finally:
        client.close()
        peer.close()

    record = the_one(robot.records(1))
    assert record["call"]["source"] == "sip"
    assert record["call"]["metadata"]["sip_call_id"] == "tls-call-1@127.0.0.1"
    assert record["call"]["end_reason"] == "caller_hangup"
