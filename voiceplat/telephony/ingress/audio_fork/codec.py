"""FreeSWITCH mod_audio_fork (bidirectional), sans-I/O: bytes and text in, events and text out.

Inbound: the first TEXT message is the dialplan's metadata JSON, then BINARY L16 8 kHz mono audio of any
size; an odd trailing byte is carried into the next message, never dropped. Later TEXT messages may be mark
replies. Outbound: BINARY audio for the module's playout buffer and TEXT commands (killAudio, mark,
transfer, disconnect).

What the module does with them (jambonz freeswitch-modules, mod_audio_fork/lws_glue.cpp, read for
issue 9; the simulator's peer_playout.py follows the same rules):

- BINARY audio waits in a pre-buffer until it holds `PREBUFFER_FIRST_SAMPLES` (the first time in a
  call) or `PREBUFFER_SAMPLES`, marker samples included, then all of it moves to the playout buffer
  (`processIncomingBinary`). Less than that waits for the next BINARY message, however long.
- A mark waits in an inventory until the next BINARY message, which puts one marker sample (0xFFFF)
  before its audio; the marker reaching the write frame answers `{"type": "mark", "data": {"name":
  ..., "event": "playout"}}`. Inventory marks are also answered, one per 20 ms frame, when the
  playout buffer is empty and no mark is in use or cleared (`dub_speech_frame`). Marks in use plus
  in the inventory are limited to `MAX_MARKS`; more are discarded without a reply.
- killAudio is carried out at the next write frame: the playout buffer (not the pre-buffer) is
  emptied and every mark in use or in the inventory is answered `cleared`; the names in use are
  kept as "cleared", each to be matched, silently, by the next marker played. Markers flushed with
  the buffer never come, so from then on replies name an earlier mark than the one played, and a
  mark after the last audio of a turn is never answered.
- While any name is in use or cleared, an audio sample of -1 is taken for a marker.
- `disconnect` and `transfer` only raise the FreeSWITCH events `mod_audio_fork::disconnect` and
  `mod_audio_fork::transfer` (body: the message's `data`); the module neither hangs up nor
  transfers. The socket closed by the robot raises `mod_audio_fork::disconnect` too (no body).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np

from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, MarkReply

SUBPROTOCOL = "audio.drachtio.org"
MAX_CALL_ID = 128

MAX_MARKS = 30
"""lws_glue.cpp MAX_MARKS: marks in use plus in the inventory the module holds."""
PREBUFFER_FIRST_SAMPLES = 1280
"""lws_glue.cpp fork_data_init: 320 * downscale_factor * 4 samples (160 ms of our 8 kHz audio;
the source's comment says 80 ms, true of 16 kHz)."""
PREBUFFER_SAMPLES = 640
"""lws_glue.cpp processIncomingBinary: the threshold after the first playout (80 ms at 8 kHz)."""
MARKER = b"\xff\xff"
"""lws_glue.cpp AUDIO_MARKER, the marker sample; an audio sample of -1 reads the same."""

Event = CallMetadata | AudioIn | MarkReply


def parse_metadata(text: str) -> CallMetadata:
    try:
        data = json.loads(text)
    # RecursionError: JSON nested deeper than the stack (a peer can send "[" * 10**5).
    except (ValueError, RecursionError):
        raise CallProtocolError(f"metadata is not JSON: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise CallProtocolError(f"metadata must be a JSON object, got {type(data).__name__}")
    call_id = data.pop("callId", None) or data.pop("call_id", None) or data.pop("uuid", None)
    call_id = str(call_id)[:MAX_CALL_ID] if call_id else str(uuid.uuid4())
    caller = data.pop("from", None) or data.pop("caller", None)
    callee = data.pop("to", None) or data.pop("callee", None)
    source = str(data.pop("source", "freeswitch"))
    return CallMetadata(
        call_id=call_id,
        caller=None if caller is None else str(caller),
        callee=None if callee is None else str(callee),
        source=source if source in {"freeswitch", "web", "sip", "simulator"} else "freeswitch",
        extra=data,
    )


class AudioForkDecoder:
    """Decodes what FreeSWITCH sends, in order. Raises CallProtocolError on a broken stream."""

    def __init__(self) -> None:
        self.metadata: CallMetadata | None = None
        self._carry = b""

    def text(self, message: str) -> list[Event]:
        if self.metadata is None:
            self.metadata = parse_metadata(message)
            return [self.metadata]
        try:
            data: Any = json.loads(message)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack
            raise CallProtocolError(f"TEXT message is not JSON: {message[:80]!r}") from None
        if isinstance(data, dict) and data.get("type") == "mark":
            mark = data.get("data")
            mark = mark if isinstance(mark, dict) else {}
            event = mark.get("event")
            if event in ("playout", "cleared") and isinstance(mark.get("name"), str):
                return [MarkReply(mark["name"], event)]
        return []  # other module events (e.g. transcription) are not ours

    def binary(self, message: bytes) -> list[Event]:
        if self.metadata is None:
            raise CallProtocolError("audio arrived before the metadata TEXT message")
        data = self._carry + message
        whole = len(data) - len(data) % 2
        self._carry = data[whole:]
        return [AudioIn(data[:whole])] if whole else []


def without_markers(data: bytes) -> bytes:
    """`data` with every -1 sample made 0, so that the module takes none of them for a marker."""
    if MARKER not in data:  # a C-speed scan; the usual case
        return data
    whole = len(data) - len(data) % 2
    samples = np.frombuffer(data, dtype="<i2", count=whole // 2)
    minus_one = samples == -1
    if not minus_one.any():  # 0xFFFF across two samples
        return data
    fixed = samples.copy()
    fixed[minus_one] = 0
    return fixed.tobytes() + data[whole:]


def kill_audio() -> str:
    return '{"type":"killAudio"}'


def mark(name: str) -> str:
    return json.dumps({"type": "mark", "data": {"name": name}})


def disconnect() -> str:
    return '{"type":"disconnect"}'


def transfer(target: str) -> str:
    return json.dumps({"type": "transfer", "data": {"target": target}})
