"""Asterisk AudioSocket, sans-I/O: bytes of the TCP stream in, events out; frames to send.

The protocol, as Asterisk implements it (asterisk/asterisk: include/asterisk/res_audiosocket.h,
res/res_audiosocket.c, apps/app_audiosocket.c, channels/chan_audiosocket.c): a stream of frames,
each a 3-byte header -- kind (1 byte), payload length (2 bytes, big-endian) -- then the payload.

| kind | name         | direction           | payload                                      |
|------|--------------|---------------------|----------------------------------------------|
| 0x00 | hangup       | robot -> Asterisk   | none (Asterisk ends AudioSocket(); the dialplan goes on) |
| 0x01 | UUID         | Asterisk -> robot   | 16 bytes, binary: the UUID of AudioSocket(uuid,...), first |
| 0x03 | DTMF         | Asterisk -> robot   | 1 byte, the ASCII digit                      |
| 0x10 | audio, slin  | both                | signed 16-bit LE mono 8 kHz (20 ms = 320 bytes from Asterisk) |
| 0x11-0x18 | slin12 ... slin192 | both (channel driver only, `c(codec)`) | not accepted here    |
| 0xff | error        | Asterisk -> robot   | optional, an application-specific code       |

Asterisk sends the UUID frame right after connecting; it never sends a hangup frame: when the
caller hangs up it closes the socket. Anything but audio or hangup from the robot makes Asterisk
end the call, and so does a zero-length audio frame. Asterisk writes the robot's audio to the
channel as it arrives (no buffer of its own), so the robot paces it in real time.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from voiceplat.config import DTMF_KEYS
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import AudioIn, CallProtocolError, DtmfIn

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
WIDE_AUDIO = {
    0x11: "slin12",
    0x12: "slin16",
    0x13: "slin24",
    0x14: "slin32",
    0x15: "slin44",
    0x16: "slin48",
    0x17: "slin96",
    0x18: "slin192",
}
HEADER = struct.Struct(">BH")
MAX_PAYLOAD = 8192
"""Far above a real frame (320 bytes of 20 ms slin); a longer frame ends the call. The header
allows 65535."""
MAX_SEND_PAYLOAD = 65535


def frame(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_SEND_PAYLOAD:
        raise ValueError(f"an AudioSocket payload holds at most {MAX_SEND_PAYLOAD} bytes")
    return HEADER.pack(kind, len(payload)) + payload


def audio_frame(pcm: bytes) -> bytes:
    return frame(KIND_AUDIO, pcm)


HANGUP_FRAME = frame(KIND_HANGUP)


def uuid_frame(call_id: uuid.UUID) -> bytes:
    return frame(KIND_UUID, call_id.bytes)


def dtmf_frame(digit: str) -> bytes:
    return frame(KIND_DTMF, digit.encode("ascii"))


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    payload: bytes


class FrameReader:
    """Splits a byte stream into frames, whatever pieces it arrives in (both sides use it)."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Raises CallProtocolError for a frame longer than `max_payload`."""
        self._buffer += data
        frames: list[Frame] = []
        buffer = self._buffer
        while len(buffer) >= HEADER.size:
            kind, length = HEADER.unpack_from(buffer)
            if length > self.max_payload:
                raise CallProtocolError(
                    f"frame of kind 0x{kind:02x} with {length} bytes (at most {self.max_payload})"
                )
            end = HEADER.size + length
            if len(buffer) < end:
                break
            frames.append(Frame(kind, bytes(buffer[HEADER.size : end])))
            del buffer[:end]
        return frames

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished frame are waiting (at the end of the stream: it was cut)."""
        return bool(self._buffer)


Event = AudioIn | DtmfIn | Hangup | uuid.UUID


class AudioSocketDecoder:
    """What Asterisk sends, in order: the UUID, then audio and DTMF. Raises CallProtocolError on
    a broken stream; returns Hangup for Asterisk's (rare) hangup frame."""

    def __init__(self) -> None:
        self.reader = FrameReader()
        self.call_id: uuid.UUID | None = None
        self._carry = b""

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for item in self.reader.feed(data):
            events.extend(self._frame(item))
        return events

    def end_of_stream(self) -> Hangup:
        """Asterisk closed the socket: the caller hung up (or the stream was cut mid-frame)."""
        if self.reader.partial:
            raise CallProtocolError("the connection closed in the middle of a frame")
        if self.call_id is None:
            raise CallProtocolError("the connection closed before the UUID frame")
        return Hangup("caller_hangup")

    def _frame(self, item: Frame) -> list[Event]:
        kind, payload = item.kind, item.payload
        if kind == KIND_UUID:
            if self.call_id is not None:
                raise CallProtocolError("a second UUID frame")
            if len(payload) != 16:
                raise CallProtocolError(f"the UUID frame holds {len(payload)} bytes, not 16")
            self.call_id = uuid.UUID(bytes=payload)
            return [self.call_id]
        if kind == KIND_ERROR:
            code = f" (code {payload.hex()})" if payload else ""
            raise CallProtocolError(f"Asterisk reported an error{code}")
        if kind == KIND_HANGUP:
            return [Hangup("caller_hangup")]
        if self.call_id is None:
            raise CallProtocolError(f"a frame of kind 0x{kind:02x} before the UUID frame")
        if kind == KIND_AUDIO:
            data = self._carry + payload
            whole = len(data) - len(data) % 2
            self._carry = data[whole:]
            return [AudioIn(data[:whole])] if whole else []
        if kind == KIND_DTMF:
            digit = payload.decode("ascii", errors="replace").upper()
            if len(digit) != 1 or digit not in DTMF_KEYS:
                raise CallProtocolError(f"DTMF frame with {payload!r}: keys are {DTMF_KEYS}")
            return [DtmfIn(digit, "other")]
        if kind in WIDE_AUDIO:
            raise CallProtocolError(
                f"{WIDE_AUDIO[kind]} audio (kind 0x{kind:02x}): only 8 kHz slin (0x10) is "
                "accepted; use AudioSocket() or Dial(AudioSocket/host:port/uuid/c(slin))"
            )
        raise CallProtocolError(f"unknown frame kind 0x{kind:02x}")
