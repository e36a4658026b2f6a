"""Festival's client/server protocol, sans I/O.

A client sends Scheme expressions as text. For each expression the server answers with zero or
more data replies, `WV\\n` (a waveform file) or `LP\\n` (a printed Lisp value), then `OK\\n`, or
`ER\\n` when evaluation failed. A data reply's payload ends with the key `ft_StUfF_key`; inside
the payload every occurrence of the key is "stuffed" with an `X` before its last byte.

Festival's sender finds occurrences with a naive matcher and stuffs them as `ft_StUfF_keXy`.
`ReplyParser` ends a payload at the first real occurrence of the key and turns `ft_StUfF_keXy`
back into the key. (Festival's own receiver also matches naively and so misses the end key after
a payload that ends in `f`; the only payloads this parser gets wrong are ones holding the whole
key where the naive sender did not see it, i.e. never in practice.)
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from typing import Literal

from voiceplat.audio.pcm import Pcm

KEY = b"ft_StUfF_key"
_STUFFING = ord("X")
_STUFFED = KEY[:-1] + b"X" + KEY[-1:]

ReplyKind = Literal["WV", "LP", "OK", "ER"]
_TAGS: dict[bytes, ReplyKind] = {b"WV\n": "WV", b"LP\n": "LP", b"OK\n": "OK", b"ER\n": "ER"}


class FestivalProtocolError(ValueError):
    """The server sent something that is not Festival's reply format."""


@dataclass(frozen=True, slots=True)
class Reply:
    kind: ReplyKind
    data: bytes = b""

    @property
    def final(self) -> bool:
        """OK or ER: the expression is finished."""
        return self.kind in ("OK", "ER")


class ReplyParser:
    """Turns the server's byte stream into Replies; feed it bytes in chunks of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._kind: ReplyKind | None = None
        self._searched = 0  # payload bytes already known not to start the key

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies: list[Reply] = []
        while True:
            if self._kind is None:
                if len(self._buffer) < 3:
                    return replies
                kind = _TAGS.get(bytes(self._buffer[:3]))
                if kind is None:
                    raise FestivalProtocolError(
                        f"unknown festival reply tag {bytes(self._buffer[:3])!r}"
                    )
                del self._buffer[:3]
                if kind in ("OK", "ER"):
                    replies.append(Reply(kind))
                    continue
                self._kind, self._searched = kind, 0
            end = self._buffer.find(KEY, self._searched)
            if end < 0:
                self._searched = max(0, len(self._buffer) - len(KEY) + 1)
                return replies
            payload = bytes(self._buffer[:end]).replace(_STUFFED, KEY)
            del self._buffer[: end + len(KEY)]
            replies.append(Reply(self._kind, payload))
            self._kind = None


def stuff(payload: bytes) -> bytes:
    """What Festival's `socket_send_file` sends for `payload`, end key included (for tests)."""
    out = bytearray()
    matched = 0
    for byte in payload:
        matched = matched + 1 if byte == KEY[matched] else 0
        if matched == len(KEY):
            out.append(_STUFFING)
            matched = 0
        out.append(byte)
    return bytes(out) + KEY


def scheme_string(text: str) -> str:
    """`text` as a Scheme string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synth_command(text: str) -> bytes:
    """Synthesises `text` as one utterance and sends its waveform back (a WV reply)."""
    utterance = f"(Utterance Text {scheme_string(text)})"
    return f"(utt.send.wave.client (utt.synth {utterance}))\n".encode()


def parse_wave(data: bytes) -> Pcm:
    """A WV payload (RIFF, set by `Wavefiletype`) as mono int16 PCM at the file's rate."""
    try:
        with wave.open(io.BytesIO(data), "rb") as riff:
            channels, width, rate = riff.getnchannels(), riff.getsampwidth(), riff.getframerate()
            frames = riff.readframes(riff.getnframes())
    except (wave.Error, EOFError) as exc:
        raise FestivalProtocolError(f"festival sent an unreadable waveform ({exc})") from None
    if channels != 1 or width != 2:
        raise FestivalProtocolError(
            f"festival sent {channels}-channel {8 * width}-bit audio, not mono 16-bit"
        )
    return Pcm(frames[: len(frames) - len(frames) % 2], rate)
