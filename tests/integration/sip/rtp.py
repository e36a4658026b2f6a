"""RTP for the SIPp tests: what a caller sends (speech, silence, RFC 4733 keys) as packets, written
as a pcap file SIPp plays (`play_pcap_audio`), or sent by `RtpPeer`, a small RTP endpoint in the test
that also keeps every packet the robot sends it.

Audio is G.711 mu-law (PCMU, payload type 0) at 8 kHz in 20 ms packets; keys are telephone-events
(payload type 101): a packet every 20 ms while the key is down, the last one sent three times with
the end bit, as RFC 4733 says.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.audio.wav import read_wav

PCMU = 0
TELEPHONE_EVENT = 101
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_S = 0.020
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
SSRC = 0x5EED1234


@dataclass(frozen=True)
class Speech:
    pcm: bytes
    """8 kHz mono s16le."""

    @classmethod
    def wav(cls, path: str | Path) -> Speech:
        return cls(read_wav(path).data)


@dataclass(frozen=True)
class Silence:
    ms: int


@dataclass(frozen=True)
class Suppressed:
    """Silence suppression: no audio packets for `ms`, a comfort-noise packet (RFC 3389, payload
    type 13) at its start and then every `cn_every_ms` (0: none), as a phone with VAD sends."""

    ms: int
    cn_every_ms: int = 0


@dataclass(frozen=True)
class Key:
    digit: str
    ms: int = 120


Segment = Speech | Silence | Suppressed | Key
COMFORT_NOISE = 13


@dataclass(frozen=True)
class Packet:
    at_s: float
    """When to send it, from the start of the stream."""
    data: bytes


def _rtp(
    payload_type: int, seq: int, timestamp: int, payload: bytes, marker: bool, ssrc: int
) -> bytes:
    first = (0x80 if marker else 0) | payload_type
    return struct.pack("!BBHII", 0x80, first, seq & 0xFFFF, timestamp, ssrc) + payload


def packets(plan: Iterable[Segment], after: list[Packet] | None = None) -> list[Packet]:
    """The RTP packets of `plan`, with one sequence, timestamp and SSRC throughout. `after`: a
    stream played earlier in the same call, which these packets continue (the next sequence
    numbers, a timestamp 10 s on: the pause between them, as silence suppression makes)."""
    out: list[Packet] = []
    seq, timestamp, at = 1, 0, 0.0
    if after:
        _, _, last_seq, last_timestamp, _ = struct.unpack("!BBHII", after[-1].data[:12])
        seq, timestamp = last_seq + 1, last_timestamp + 10 * 8000
    ssrc = SSRC

    def audio(pcm: bytes) -> None:
        nonlocal seq, timestamp, at
        frame = FRAME_SAMPLES * 2
        pcm += b"\0" * (-len(pcm) % frame)
        for start in range(0, len(pcm), frame):
            payload = ulaw_encode(pcm[start : start + frame])
            out.append(Packet(at, _rtp(PCMU, seq, timestamp, payload, not out, ssrc)))
            seq, timestamp, at = seq + 1, (timestamp + FRAME_SAMPLES) & 0xFFFFFFFF, at + FRAME_S

    for segment in plan:
        if isinstance(segment, Speech):
            audio(segment.pcm)
        elif isinstance(segment, Silence):
            audio(b"\0" * (segment.ms * 8 * 2))
        elif isinstance(segment, Suppressed):
            step_ms = segment.cn_every_ms or segment.ms
            for offset_ms in range(0, segment.ms, step_ms):
                if segment.cn_every_ms or offset_ms == 0:
                    level = b"\x40"  # -64 dBov
                    data = _rtp(COMFORT_NOISE, seq, timestamp + offset_ms * 8, level, False, ssrc)
                    out.append(Packet(at + offset_ms / 1000, data))
                    seq += 1
            timestamp = (timestamp + segment.ms * 8) & 0xFFFFFFFF
            at += segment.ms / 1000
        else:
            event = EVENTS[segment.digit.upper()]
            steps = max(1, segment.ms // 20)
            for step in range(1, steps + 1):
                end = step == steps
                for _ in range(3 if end else 1):  # the end packet, three times
                    payload = struct.pack(
                        "!BBH", event, (0x80 if end else 0) | 10, step * FRAME_SAMPLES
                    )
                    out.append(
                        Packet(at, _rtp(TELEPHONE_EVENT, seq, timestamp, payload, step == 1, ssrc))
                    )
                    seq += 1
                at += FRAME_S
            timestamp += steps * FRAME_SAMPLES
    return out


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcap(path: Path, stream: list[Packet]) -> Path:
    """A pcap (Ethernet, IPv4, UDP) SIPp can play: it keeps the timing and payloads and sends them
    from its media port to the robot's, whatever addresses the file names."""
    src, dst = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ident, packet in enumerate(stream):
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(packet.data), 0) + packet.data
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0, src, dst
        )
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        frame = b"\0" * 12 + b"\x08\x00" + ip + udp
        seconds = int(packet.at_s)
        micros = round((packet.at_s - seconds) * 1e6)
        chunks.append(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(chunks))
    return path


@dataclass(frozen=True)
class Received:
    payload_type: int
    seq: int
    timestamp: int
    payload: bytes


class RtpPeer:
    """An RTP endpoint on 127.0.0.1: every packet that arrives is kept; `play` sends packets at
    their times (real-time pacing, as a phone does) to where the robot's RTP comes from (PJSIP
    sends from the port its SDP names: symmetric RTP)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = int(self.sock.getsockname()[1])
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._remote: tuple[str, int] | None = None
        self._stop = threading.Event()
        self.heard = threading.Event()
        """Set when the first packet arrives."""
        self._reader = threading.Thread(target=self._read, name="rtp-peer", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        self.sock.settimeout(0.2)  # to notice close(); arrivals are handled at once
        while not self._stop.is_set():
            try:
                data, address = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 12 or data[0] >> 6 != 2:
                continue  # RTCP goes to the odd port; anything else here is not RTP
            _, marker_pt, seq, timestamp, _ = struct.unpack("!BBHII", data[:12])
            with self._lock:
                self._remote = self._remote or address
                self.received.append(Received(marker_pt & 0x7F, seq, timestamp, data[12:]))
            self.heard.set()

    def remote(self, timeout: float) -> tuple[str, int]:
        """Where the robot's RTP comes from; waits (up to `timeout`) for its first packet."""
        if not self.heard.wait(timeout):
            raise AssertionError(f"no RTP from the robot within {timeout:g} s")
        with self._lock:
            assert self._remote is not None
            return self._remote

    def play(self, stream: list[Packet], to: tuple[str, int]) -> None:
        """Sends `stream` to `to`, paced by the packets' times."""
        start = time.monotonic()
        for packet in stream:
            delay = start + packet.at_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing real-time media, not waiting for an event
            self.sock.sendto(packet.data, to)

    def audio(self, payload_type: int = PCMU) -> bytes:
        """What arrived of `payload_type`, decoded to 8 kHz s16le, in arrival order."""
        with self._lock:
            payloads = [r.payload for r in self.received if r.payload_type == payload_type]
        return ulaw_decode(b"".join(payloads))

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._reader.join(5)
