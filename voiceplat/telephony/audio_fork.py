"""FreeSWITCH mod_audio_fork (bidirectional), sans-I/O: bytes and text in, events and text out.

Inbound: the first TEXT message is the dialplan's metadata JSON, then BINARY L16 8 kHz mono audio of any
size; an odd trailing byte is carried into the next message, never dropped. Later TEXT messages may be mark
replies. Outbound: BINARY audio for the module's playout buffer and TEXT commands (killAudio, mark,
transfer, disconnect).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from voiceplat.telephony.events import AudioIn, CallMetadata, MarkReply, ProtocolError

SUBPROTOCOL = "audio.drachtio.org"
MAX_CALL_ID = 128

Event = CallMetadata | AudioIn | MarkReply


def parse_metadata(text: str) -> CallMetadata:
    try:
        data = json.loads(text)
    except ValueError:
        raise ProtocolError(f"metadata is not JSON: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"metadata must be a JSON object, got {type(data).__name__}")
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
    """Decodes what FreeSWITCH sends, in order. Raises ProtocolError on a broken stream."""

    def __init__(self) -> None:
        self.metadata: CallMetadata | None = None
        self._carry = b""

    def text(self, message: str) -> list[Event]:
        if self.metadata is None:
            self.metadata = parse_metadata(message)
            return [self.metadata]
        try:
            data: Any = json.loads(message)
        except ValueError:
            raise ProtocolError(f"TEXT message is not JSON: {message[:80]!r}") from None
        if isinstance(data, dict) and data.get("type") == "mark":
            mark = data.get("data") or {}
            event = mark.get("event")
            if event in ("playout", "cleared") and isinstance(mark.get("name"), str):
                return [MarkReply(mark["name"], event)]
        return []  # other module events (e.g. transcription) are not ours

    def binary(self, message: bytes) -> list[Event]:
        if self.metadata is None:
            raise ProtocolError("audio arrived before the metadata TEXT message")
        data = self._carry + message
        whole = len(data) - len(data) % 2
        self._carry = data[whole:]
        return [AudioIn(data[:whole])] if whole else []


def kill_audio() -> str:
    return '{"type":"killAudio"}'


def mark(name: str) -> str:
    return json.dumps({"type": "mark", "data": {"name": name}})


def disconnect() -> str:
    return '{"type":"disconnect"}'


def transfer(target: str) -> str:
    return json.dumps({"type": "transfer", "data": {"target": target}})
