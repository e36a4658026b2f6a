"""sip_load.py's ear: the robot's RTP as it reaches the caller (SIPp), and what it says about the
robot's audio.

Why a capture and not a receiver of our own: the call's SDP could name any address, but PJSIP
latches onto the address the caller's RTP comes from (after a few packets it sends there, as it
must for callers behind NAT), and SIPp's rtp_stream sends from SIPp's media port. So the robot's
RTP goes to SIPp's media port, which SIPp does not read, and `RtpCapture` takes a copy off the
loopback interface: an AF_PACKET socket with a classic BPF filter that keeps only UDP from the
robot's RTP port range to that port. The kernel stamps each packet as it arrives (SO_TIMESTAMPNS),
so the figures do not depend on how promptly this process reads them; the capture's own drops are
counted (PACKET_STATISTICS). Needs root or CAP_NET_RAW.

`StreamStats.of` turns one stream (one SSRC: one call) into RFC 3550 interarrival jitter,
inter-arrival gaps, lost sequence numbers, and the robot's answers: runs of non-silent G.711
frames, in RTP timestamp order; silent or missing frames between two loud ones of the same answer
are gaps inside the answer (the fake TTS speaks a steady tone, so a silent frame inside it is a
dropout, never a pause of the voice).
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
from array import array
from dataclasses import dataclass, field

import numpy as np

from voiceplat.audio.g711 import ulaw_decode

ETH_P_IP = 0x0800
SO_TIMESTAMPNS = 35  # SCM_TIMESTAMPNS too (asm-generic/socket.h); the socket module lacks it
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE
PCMU, PCMA = 0, 8
SAMPLES_PER_FRAME = 160  # 20 ms at 8 kHz
LOUD_LEVEL = 500
"""A frame whose loudest sample reaches this (of 32767) is robot speech; the robot's silence
decodes to +-8, the fake TTS's tone peaks near 9800."""
LATE_MS = 40.0
"""An inter-arrival gap above this is counted (two 20 ms packets' worth)."""
ANSWER_SPLIT_MS = 1000.0
"""Silence this long ends an answer. Between two answers there is at least the caller's
question and the end-of-utterance silence (seconds); a dropout is far shorter."""


def _alaw_linear(byte: int) -> int:
    a = byte ^ 0x55
    magnitude = ((a & 0x0F) << 4) + 8
    segment = (a & 0x70) >> 4
    if segment:
        magnitude = (magnitude + 0x100) << (segment - 1)
    return magnitude if a & 0x80 else -magnitude


# Per payload type: each byte's G.711 code with the sign stripped (a code that grows with |sample|,
# so `max(payload.translate(table))` is the frame's peak in C), and the code that is LOUD_LEVEL.
_MAGNITUDE = {
    PCMA: bytes((b ^ 0x55) & 0x7F for b in range(256)),
    PCMU: bytes(~b & 0x7F for b in range(256)),
}
_ULAW_LINEAR = np.frombuffer(ulaw_decode(bytes(range(256))), dtype="<i2")
_LOUD_CODE = {
    PCMA: min((b ^ 0x55) & 0x7F for b in range(256) if abs(_alaw_linear(b)) >= LOUD_LEVEL),
    PCMU: min(~b & 0x7F for b in range(256) if abs(int(_ULAW_LINEAR[b])) >= LOUD_LEVEL),
}


def _bpf(src_low: int, src_high: int, dst_port: int) -> list[tuple[int, int, int, int]]:
    """Keeps IPv4 UDP from ports src_low..src_high to dst_port, as it is received (on `lo`
    every packet is seen twice: once outgoing, once incoming). Offsets are from the IP header
    (a SOCK_DGRAM packet socket); jumps count instructions after the jump; 12 keeps, 13 drops."""
    return [
        (0x20, 0, 0, SKF_AD_PKTTYPE),  # 0  ld pkttype
        (0x15, 11, 0, PACKET_OUTGOING),  # 1  jeq outgoing -> drop
        (0x30, 0, 0, 9),  # 2  ldb [9]: IP protocol
        (0x15, 0, 9, socket.IPPROTO_UDP),  # 3  jne udp -> drop
        (0x28, 0, 0, 6),  # 4  ldh [6]: flags and fragment offset
        (0x45, 7, 0, 0x1FFF),  # 5  jset fragment -> drop
        (0xB1, 0, 0, 0),  # 6  ldxb 4*([0]&0xf): IP header length
        (0x48, 0, 0, 0),  # 7  ldh [x+0]: UDP source port
        (0x35, 0, 4, src_low),  # 8  jlt low -> drop
        (0x25, 3, 0, src_high),  # 9  jgt high -> drop
        (0x48, 0, 0, 2),  # 10 ldh [x+2]: UDP destination port
        (0x15, 0, 1, dst_port),  # 11 jne dst -> drop
        (0x06, 0, 0, 0xFFFF),  # 12 keep
        (0x06, 0, 0, 0),  # 13 drop
    ]


@dataclass
class Stream:
    """One SSRC's packets as captured: arrival (ns, kernel clock), sequence, timestamp, loud."""

    payload_type: int
    arrival_ns: array = field(default_factory=lambda: array("q"))
    seq: array = field(default_factory=lambda: array("H"))
    timestamp: array = field(default_factory=lambda: array("L"))
    loud: bytearray = field(default_factory=bytearray)


class RtpCapture(threading.Thread):
    """Captures the robot's RTP to SIPp's media port on `lo` until `stop()`."""

    def __init__(self, src_ports: tuple[int, int], dst_port: int) -> None:
        super().__init__(daemon=True, name="rtp-capture")
        self.streams: dict[int, Stream] = {}
        self.kernel_drops = 0
        self.packets = 0
        self._stop_event = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        program = _bpf(src_ports[0], src_ports[1], dst_port)
        self._filter = ctypes.create_string_buffer(
            b"".join(struct.pack("HBBI", *insn) for insn in program)
        )
        fprog = struct.pack("HL", len(program), ctypes.addressof(self._filter))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # 100 calls are 5000 packets/s: a few seconds of them, should this thread be held up.
        self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 * 2**20)
        self._sock.bind(("lo", ETH_P_IP))
        self._sock.settimeout(0.2)

    def run(self) -> None:
        recv = self._sock.recvmsg
        space = socket.CMSG_SPACE(16)
        streams = self.streams
        count = 0
        while not self._stop_event.is_set():
            try:
                data, ancillary, _, _ = recv(2048, space)
            except TimeoutError:
                continue
            header = (data[0] & 0x0F) * 4 + 8  # IP header + UDP header
            if len(data) < header + 12 or data[header] >> 6 != 2:
                continue  # not RTP version 2
            first, second, seq, timestamp, ssrc = struct.unpack_from("!BBHII", data, header)
            payload_type = second & 0x7F
            table = _MAGNITUDE.get(payload_type)
            if table is None:
                continue  # telephone-event or comfort noise: not audio frames
            start = header + 12 + 4 * (first & 0x0F)
            if first & 0x10:  # header extension: 4 bytes, then its length in words
                start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
            payload = data[start:]
            arrival = 0
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    arrival = seconds * 1_000_000_000 + nanoseconds
            stream = streams.get(ssrc)
            if stream is None:
                stream = streams[ssrc] = Stream(payload_type)
            stream.arrival_ns.append(arrival)
            stream.seq.append(seq)
            stream.timestamp.append(timestamp)
            stream.loud.append(
                bool(payload) and max(payload.translate(table)) >= _LOUD_CODE[payload_type]
            )
            count += 1
        self.packets = count

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        # struct tpacket_stats {unsigned int tp_packets, tp_drops}: since the socket was made.
        stats = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        self.kernel_drops = struct.unpack("II", stats)[1]
        self._sock.close()


@dataclass
class StreamStats:
    ssrc: int
    packets: int
    first_s: float
    last_s: float
    lost: int
    """Sequence numbers never seen (between the first and the last)."""
    out_of_order: int
    jitter_ms: list[float]
    """RFC 3550 interarrival jitter J (A.8), after each packet."""
    late: int
    """Inter-arrival gaps over LATE_MS."""
    max_gap_ms: float
    answers_ms: list[float]
    """Each answer's length, first loud frame to last."""
    answer_gaps_ms: list[float]
    """Each run of silent or missing frames inside an answer."""

    @classmethod
    def of(cls, ssrc: int, stream: Stream) -> StreamStats:
        arrivals = stream.arrival_ns
        jitter_ms: list[float] = []
        j = 0.0
        max_gap = 0.0
        late = 0
        out_of_order = 0
        # Sequence numbers and timestamps unwrapped relative to the first packet.
        seq0, ts0 = stream.seq[0], stream.timestamp[0]
        frames: dict[int, bool] = {}
        seen: set[int] = set()
        previous_transit = None
        previous_seq = -1
        for i, arrival in enumerate(arrivals):
            seq = (stream.seq[i] - seq0) & 0xFFFF
            ticks = (stream.timestamp[i] - ts0) & 0xFFFFFFFF
            if seq < previous_seq:
                out_of_order += 1
            previous_seq = max(previous_seq, seq)
            seen.add(seq)
            frames[ticks // SAMPLES_PER_FRAME] = bool(stream.loud[i])
            transit = arrival * 8000 / 1e9 - ticks  # in timestamp units (8 kHz)
            if previous_transit is not None:
                j += (abs(transit - previous_transit) - j) / 16.0
                jitter_ms.append(j / 8.0)
                gap_ms = (arrival - arrivals[i - 1]) / 1e6
                max_gap = max(max_gap, gap_ms)
                late += gap_ms > LATE_MS
            previous_transit = transit
        answers, gaps = _answers(frames)
        return cls(
            ssrc=ssrc,
            packets=len(arrivals),
            first_s=arrivals[0] / 1e9,
            last_s=arrivals[-1] / 1e9,
            lost=previous_seq + 1 - len(seen),
            out_of_order=out_of_order,
            jitter_ms=jitter_ms,
            late=late,
            max_gap_ms=round(max_gap, 1),
            answers_ms=answers,
            answer_gaps_ms=gaps,
        )


def _answers(frames: dict[int, bool]) -> tuple[list[float], list[float]]:
    """Answers (ms) and gaps inside them (ms) from frame index -> loud (absent: never arrived)."""
    frame_ms = SAMPLES_PER_FRAME / 8.0
    split = round(ANSWER_SPLIT_MS / frame_ms)
    loud = sorted(index for index, is_loud in frames.items() if is_loud)
    answers: list[float] = []
    gaps: list[float] = []
    if not loud:
        return answers, gaps
    start = previous = loud[0]
    for index in loud[1:]:
        quiet = index - previous - 1
        if quiet >= split:
            answers.append((previous - start + 1) * frame_ms)
            start = index
        elif quiet:
            gaps.append(quiet * frame_ms)
        previous = index
    answers.append((previous - start + 1) * frame_ms)
    return answers, gaps
