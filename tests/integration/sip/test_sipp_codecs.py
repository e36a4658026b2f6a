"""Which codec a SIP call gets, and that the robot's audio arrives in it.

A SIPp caller offers the test's payload types (uac_offer.xml, `-key offer`) with its RTP on the
test's `RtpPeer`. The robot's `sip.codecs` order decides, not the offer's order
(voiceplat/telephony/ingress/sip/sdp_codecs.py). Once enough of the robot's greeting has arrived the
caller presses '#' (RFC 4733, mapped to hangup), so SIPp waits for the robot's BYE, not for a time.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from tests.integration.sip.calls import KEYS, events, the_one
from tests.integration.sip.rtp import Key, Received, RtpPeer, packets
from tests.integration.sip.sipp import SippResult, run_sipp, start_sipp
from tests.integration.sip.test_sipp_media import tone_frames
from tests.sip_tools import HANG_S, SipRobot, read_records
from voiceplat.audio.g711 import ulaw_decode

PCMU, PCMA, G722, TELEPHONE_EVENT = 0, 8, 9, 101
GREETING_FRAMES = 40
"""The echo robot's greeting is 1.8 s of the fake TTS's 440 Hz tone (90 frames); the caller waits
for 0.8 s of it before pressing '#'."""


def received_sdp(messages: str, status: str) -> str:
    """The SDP body of the response with `status` that SIPp received."""
    for message in re.split(r"^-{20,}.*$", messages, flags=re.MULTILINE):
        head, _, body = message.partition("\n\n")
        if "message received" in head and body.lstrip().startswith(f"SIP/2.0 {status} "):
            if "m=audio" in body:
                return body
    raise AssertionError(f"SIPp received no {status} with SDP:\n{messages[-4000:]}")


def answered_formats(result: SippResult) -> list[str]:
    """The payload types of the audio m= line of the robot's 200 OK, in order."""
    found = re.search(r"^m=audio \d+ RTP/AVP ([\d ]+)", received_sdp(result.messages, "200"), re.M)
    assert found, result.explain()
    return found.group(1).split()


def statuses(messages: str) -> list[str]:
    return re.findall(r"^SIP/2\.0 (\d{3})", messages, re.MULTILINE)


def alaw_decode(data: bytes) -> bytes:
    """G.711 A-law to s16le (ITU-T G.711: even bits inverted, sign bit set for positive)."""
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 0x07, a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype("<i2").tobytes()


def arrived(peer: RtpPeer) -> list[Received]:
    """The packets so far (the peer's reader thread appends; a copy of a list is atomic)."""
    return list(peer.received)


class RobotAudio:
    """The robot's audio at the caller, decoded from `payload_type` to 8 kHz s16le as it arrives
    (G.722: its lower sub-band, which carries 0-4 kHz; the decoder keeps its state between
    packets, so each packet is decoded once)."""

    def __init__(self, peer: RtpPeer, payload_type: int) -> None:
        self.peer, self.payload_type = peer, payload_type
        self._decode: Callable[[bytes], bytes] = {
            PCMU: ulaw_decode,
            PCMA: alaw_decode,
            G722: G722LowBand().decode,
        }[payload_type]
        self._done = 0
        self._pcm = bytearray()

    def pcm(self) -> bytes:
        packets = arrived(self.peer)
        for packet in packets[self._done :]:
            if packet.payload_type == self.payload_type:
                self._pcm += self._decode(packet.payload)
        self._done = len(packets)
        return bytes(self._pcm)

    def greeting_heard(self) -> bool:
        """Enough of the greeting arrived, or audio in another codec did (which the test's
        asserts then report, rather than waiting for a tone that will not come)."""
        foreign = any(r.payload_type != self.payload_type for r in arrived(self.peer))
        return foreign or tone_frames(self.pcm()) >= GREETING_FRAMES


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Polls `condition` (packets another process sends); only a hang reaches the bound."""
    deadline = time.monotonic() + HANG_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {HANG_S:g} s")
        time.sleep(0.05)


def call_with_offer(
    robot: SipRobot, workdir: Path, offer: str, payload_type: int
) -> tuple[SippResult, RtpPeer, RobotAudio]:
    """A SIPp call offering `offer`; the caller presses '#' once GREETING_FRAMES of the robot's
    greeting arrived in `payload_type`."""
    peer = RtpPeer()
    audio = RobotAudio(peer, payload_type)
    try:
        sipp = start_sipp(
            "uac_offer.xml",
            robot.target,
            workdir=workdir,
            extra_args=["-key", "rtp_peer_port", str(peer.port), "-key", "offer", offer],
        )
        try:
            robot_rtp = peer.remote(HANG_S)
            wait_until(audio.greeting_heard, "the robot's greeting arriving")
            peer.play(packets([Key("#")]), robot_rtp)
        finally:
            result = sipp.wait()
    finally:
        peer.close()
    return result, peer, audio


def assert_hung_up_by_hash(robot: SipRobot) -> None:
    record = the_one(robot.records(1))
    assert record["call"]["dtmf"] == "#"
    assert [e["method"] for e in events(record, "dtmf")] == ["rfc4733"]
    assert record["call"]["end_reason"] == "dtmf_hangup"


@pytest.mark.parametrize(
    ("codecs", "offer", "answer", "payload_type"),
    [
        (["PCMA", "PCMU", "G722"], "9 0 8 101", ["8", "101"], PCMA),
        (["G722"], "9 0 8 101", ["9", "101"], G722),
        (None, "0 101", ["0", "101"], PCMU),
    ],
    ids=["robot_order_wins_over_g722_first", "g722_only_robot", "pcmu_only_offer"],
)
def test_the_answer_has_the_robots_first_offered_codec_and_its_audio_uses_it(
    sip_robot: Callable[..., SipRobot],
    tmp_path: Path,
    codecs: list[str] | None,
    offer: str,
    answer: list[str],
    payload_type: int,
) -> None:
    robot = sip_robot({"codecs": codecs} if codecs else None, **KEYS)
    result, peer, audio = call_with_offer(robot, tmp_path, offer, payload_type)
    assert result.ok, result.explain()  # '#' made the robot hang up (BYE)
    assert answered_formats(result) == answer  # one codec, and telephone-event for the keys
    assert {r.payload_type for r in peer.received} == {payload_type}
    # The greeting's 440 Hz tone decodes in that codec (decoded as another, it would be noise).
    assert tone_frames(audio.pcm()) >= GREETING_FRAMES
    assert_hung_up_by_hash(robot)


def test_g722_rtp_has_g722s_packet_size_and_clock(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot({"codecs": ["G722"]}, **KEYS)
    result, peer, _ = call_with_offer(robot, tmp_path, "9 0 8 101", G722)
    assert result.ok, result.explain()
    sent = [r for r in peer.received if r.payload_type == G722]
    # 64 kbit/s in 20 ms packets is 160 bytes; G.722's RTP clock runs at 8 kHz (RFC 3551), so the
    # timestamp moves 160 a packet although the audio is sampled at 16 kHz (PJSIP's silence
    # suppression may skip some: the usual step is what counts).
    assert {len(r.payload) for r in sent} == {160}
    steps = Counter(
        (b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in pairwise(sent) if b.seq == a.seq + 1
    )
    assert steps.most_common(1)[0][0] == 160, steps


def test_an_offer_without_any_of_the_robots_codecs_is_refused_with_488(
    sip_robot: Callable[..., SipRobot], tmp_path: Path
) -> None:
    robot = sip_robot(**KEYS)  # PCMA, PCMU, G722
    result = run_sipp(
        "uac_offer_refused.xml",
        robot.target,
        workdir=tmp_path,
        extra_args=["-key", "offer", "18 101"],
    )
    assert result.ok, result.explain()
    assert statuses(result.messages)[-1] == "488"
    assert robot.process.poll() is None
    assert read_records(robot.directory) == []  # no session was started for it


# -- G.722's lower sub-band decoder (ITU-T G.722 blocks 2L to 6L and 4, as in spandsp) ----------
# Enough to hear a tone below 4 kHz in what the robot sent: the lower band is the signal low-passed
# and decimated to 8 kHz, at half scale. The higher band (4-8 kHz) is not decoded.

_WL = (-60, -30, 58, 172, 334, 538, 1198, 3042)
_RL42 = (0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0)
_ILB = (
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
)  # fmt: skip
_QM4 = (
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200,
    20456, 12896, 8968, 6288, 4240, 2584, 1200, 0,
)  # fmt: skip
_QM6 = (
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192,
    -10232, -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168,
    -2776, -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512,
    12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168,
    2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
)  # fmt: skip


def _sat(x: int) -> int:
    return max(-32768, min(32767, x))


class G722LowBand:
    """The lower sub-band ADPCM decoder of G.722 at 64 kbit/s (6 bits of each octet), with its
    adaptive quantiser and pole-zero predictor state kept across packets."""

    def __init__(self) -> None:
        self.s = self.sz = self.nb = 0
        self.det = 32
        self.r, self.p, self.a, self.ap = [0] * 3, [0] * 3, [0] * 3, [0] * 3
        self.d, self.b, self.bp = [0] * 7, [0] * 7, [0] * 7

    def decode(self, payload: bytes) -> bytes:
        out = []
        for code in payload:
            low = code & 0x3F
            rlow = max(-16384, min(16383, self.s + ((self.det * _QM6[low]) >> 15)))  # 5L, 6L
            out.append(_sat(rlow << 1))  # the band is at half scale
            quarter = low >> 2
            dlow = (self.det * _QM4[quarter]) >> 15  # 2L
            self.nb = max(0, min(18432, ((self.nb * 127) >> 7) + _WL[_RL42[quarter]]))  # 3L
            shift = 8 - (self.nb >> 11)
            wd = _ILB[(self.nb >> 6) & 31]
            self.det = (wd << -shift if shift < 0 else wd >> shift) << 2
            self._predict(dlow)
        return np.array(out, dtype="<i2").tobytes()

    def _predict(self, d: int) -> None:
        """Block 4: the reconstructed signal updates the predictor's poles and zeros."""
        self.d[0], self.r[0], self.p[0] = d, _sat(self.s + d), _sat(self.sz + d)
        sg = [p >> 15 for p in self.p]
        wd1 = _sat(self.a[1] << 2)
        wd2 = min(-wd1 if sg[0] == sg[1] else wd1, 32767)
        wd3 = (wd2 >> 7) + (128 if sg[0] == sg[2] else -128) + ((self.a[2] * 32512) >> 15)
        self.ap[2] = max(-12288, min(12288, wd3))
        self.ap[1] = _sat((192 if sg[0] == sg[1] else -192) + ((self.a[1] * 32640) >> 15))
        limit = _sat(15360 - self.ap[2])
        self.ap[1] = max(-limit, min(limit, self.ap[1]))
        step = 0 if d == 0 else 128
        for i in range(1, 7):
            same = (self.d[i] >> 15) == (d >> 15)
            self.bp[i] = _sat((step if same else -step) + ((self.b[i] * 32640) >> 15))
        self.d[1:] = self.d[:6]
        self.b[1:] = self.bp[1:]
        self.r[1:], self.p[1:], self.a[1:] = self.r[:2], self.p[:2], self.ap[1:]
        poles = ((self.a[1] * _sat(2 * self.r[1])) >> 15) + (
            (self.a[2] * _sat(2 * self.r[2])) >> 15
        )
        zeros = sum((self.b[i] * _sat(2 * self.d[i])) >> 15 for i in range(1, 7))
        self.sz = _sat(zeros)
        self.s = _sat(_sat(poles) + self.sz)
