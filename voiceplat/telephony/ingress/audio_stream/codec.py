"""FreeSWITCH mod_audio_stream (amigniter/mod_audio_stream), the media side, sans-I/O.

What the module does (its source, read for issue 14: mod_audio_stream.c, audio_streamer_glue.cpp):

- `uuid_audio_stream <uuid> start <ws-url> mono 8k|16k <metadata>` connects, sends `<metadata>`
  as the first TEXT message (if given), then the caller's audio as BINARY L16 mono frames
  (20 ms, or STREAM_BUFFER_SIZE ms). We require the metadata: a JSON object with the channel's
  `uuid` (ESL commands name the channel by it), optionally `from`, `to`, `sampleRate` (16000 when
  the stream was started `16k`; we resample to our 8 kHz).
- A TEXT message from us of the form `{"type": "streamAudio", "data": {"audioDataType": "raw",
  "sampleRate": 8000, "audioData": <base64>}}` is written to a file
  `<temp dir>/<uuid>_<n>.tmp.r8` (n counts from 0 per call) and announced by the CUSTOM event
  `mod_audio_stream::play` whose body is `data` with `file` added and `audioData` removed. The
  module does not play it: whoever listens on the event socket does (`uuid_broadcast`).
  Any other TEXT from us becomes a `mod_audio_stream::json` event.
- The module sends no DTMF and no hangup over the WebSocket: both come as ESL events
  (`DTMF` with `DTMF-Digit`, `CHANNEL_HANGUP`); the call ending closes the WebSocket.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from voiceplat.audio.resample import StreamResampler
from voiceplat.config import DTMF_KEYS
from voiceplat.telephony.events import AudioIn, CallMetadata, CallProtocolError, DtmfIn
from voiceplat.telephony.ingress.audio_fork.codec import parse_metadata
from voiceplat.telephony.ingress.audio_stream.esl import EslEvent

RATES = (8000, 16000)
PLAY_EVENT = "mod_audio_stream::play"
EVENTS = ["DTMF", "CHANNEL_HANGUP", "CUSTOM", PLAY_EVENT]
"""What a call's ESL connection subscribes to (filtered to its channel's Unique-ID)."""
MAX_UUID = 64

Event = CallMetadata | AudioIn


class AudioStreamDecoder:
    """Decodes what the module sends, in order. Raises CallProtocolError on a broken stream."""

    def __init__(self) -> None:
        self.metadata: CallMetadata | None = None
        self.channel_uuid = ""
        self._carry = b""
        self._resampler: StreamResampler | None = None

    def text(self, message: str) -> list[Event]:
        if self.metadata is not None:
            # The module sends TEXT only with `send_text` / `stop` from the dialplan: not ours.
            return []
        try:
            data: Any = json.loads(message)
        # RecursionError: JSON nested deeper than the stack (a peer can send "[" * 10**5).
        except (ValueError, RecursionError):
            raise CallProtocolError(f"metadata is not JSON: {message[:80]!r}") from None
        if not isinstance(data, dict):
            raise CallProtocolError(f"metadata must be a JSON object, got {type(data).__name__}")
        channel = data.get("uuid")
        if not isinstance(channel, str) or not channel or len(channel) > MAX_UUID:
            raise CallProtocolError(
                'metadata needs "uuid": the FreeSWITCH channel\'s ${uuid} (see the README recipe)'
            )
        if any(c.isspace() for c in channel):
            raise CallProtocolError(f"bad channel uuid {channel[:80]!r}")
        rate = data.pop("sampleRate", 8000)
        if rate not in RATES:
            raise CallProtocolError(f"sampleRate must be one of {RATES}, got {rate!r}")
        if rate != 8000:
            self._resampler = StreamResampler(rate, 8000)
        self.channel_uuid = channel
        self.metadata = parse_metadata(json.dumps(data))
        return [self.metadata]

    def binary(self, message: bytes) -> list[Event]:
        if self.metadata is None:
            raise CallProtocolError("audio arrived before the metadata TEXT message")
        data = self._carry + message
        whole = len(data) - len(data) % 2
        self._carry = data[whole:]
        pcm = data[:whole]
        if self._resampler is not None and pcm:
            pcm = self._resampler.process(pcm)
        return [AudioIn(pcm)] if pcm else []


def stream_audio(pcm8k: bytes) -> str:
    """The TEXT message the module turns into a playable `.r8` file."""
    audio = base64.b64encode(pcm8k).decode()
    return json.dumps(
        {
            "type": "streamAudio",
            "data": {"audioDataType": "raw", "sampleRate": 8000, "audioData": audio},
        },
        separators=(",", ":"),
    )


def play_file(event: EslEvent) -> str | None:
    """The file a `mod_audio_stream::play` event announces (None: not a usable play event)."""
    if event.name != PLAY_EVENT:
        return None
    try:
        data = json.loads(event.body)
    # RecursionError: JSON nested deeper than the stack (a peer can send "[" * 10**5).
    except (ValueError, RecursionError):
        return None
    path = data.get("file") if isinstance(data, dict) else None
    if not isinstance(path, str) or not path or any(c.isspace() for c in path):
        return None  # a path with spaces would split the uuid_broadcast arguments
    return path


def dtmf_key(event: EslEvent) -> DtmfIn | None:
    if event.name != "DTMF":
        return None
    digit = event.headers.get("DTMF-Digit", "")
    if len(digit) != 1 or digit.upper() not in DTMF_KEYS:
        return None
    source = event.headers.get("DTMF-Source", "")
    method = (
        "rfc4733" if source in ("RTP", "rtp") else "inband" if source == "INBAND_AUDIO" else "other"
    )
    return DtmfIn(digit.upper(), method)  # type: ignore[arg-type]
