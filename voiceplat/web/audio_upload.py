"""An uploaded audio clip for the seed services: read with a hard size limit, decoded to 8 kHz mono.

The body is read as it streams in (multipart/form-data with the audio in the field `file`, or the
raw file with an audio Content-Type) and reading stops at the limit: a huge upload costs the
service at most the limit in memory, never the whole body. WAV (PCM 8/16/24/32-bit, any rate and
channel count) is decoded with the standard library; FLAC and OGG (and WAV flavours `wave` does
not read, such as float samples) need soundfile, optional here.
"""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import HTTPException, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.audio.resample import resample

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
FORM_SLACK_BYTES = 64 * 1024
"""What a multipart body may hold beyond the audio itself: boundaries, part headers, small fields."""
MAX_FIELD_BYTES = 1024
RAW_TYPES = ("audio/", "application/octet-stream")
MIN_RATE, MAX_RATE = 1000, 384_000

try:  # optional: FLAC and OGG (a system libsndfile)
    import soundfile
except (ImportError, OSError):  # OSError: the Python package without its library
    soundfile = None


def accepted_formats() -> str:
    wav = "WAV (PCM 8/16/24/32-bit, any sample rate, mono or stereo)"
    return f"{wav}, FLAC, OGG" if soundfile is not None else wav


@dataclass
class Upload:
    data: bytes
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    """The form's other (small) fields, e.g. `robot` and `language`."""


def too_large(max_bytes: int) -> HTTPException:
    return HTTPException(
        413,
        f"the upload is larger than the limit of {max_bytes} bytes ({max_bytes / 2**20:.1f} MiB)",
    )


async def read_upload(request: Request, max_bytes: int) -> Upload:
    """The audio file of the request, at most `max_bytes` of it (413 beyond, before reading on)."""
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    body_limit = max_bytes + FORM_SLACK_BYTES if kind == b"multipart/form-data" else max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise too_large(max_bytes)  # refused before a byte of the body is read
    chunks = _limited(request.stream(), body_limit, max_bytes)
    if kind == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise HTTPException(400, "multipart/form-data without a boundary")
        upload = await _read_multipart(chunks, boundary, max_bytes)
    elif kind.decode("latin-1").startswith(RAW_TYPES):
        upload = Upload(b"".join([chunk async for chunk in chunks]))
    else:
        raise HTTPException(
            415,
            f"send the audio as multipart/form-data in the field {FILE_FIELD!r} (or as the raw "
            f"body with Content-Type audio/wav); got Content-Type {content_type or 'none'!r}",
        )
    if not upload.data:
        raise HTTPException(422, "the audio file is empty")
    return upload


async def _limited(
    stream: AsyncIterator[bytes], limit: int, max_bytes: int
) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise too_large(max_bytes)
        yield chunk


class _Form:
    """python-multipart callbacks collecting the `file` part and the small fields."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.upload: Upload | None = None
        self.fields: dict[str, str] = {}
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._filename: str | None = None
        self._data = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _begin(self) -> None:
        self._disposition, self._name, self._filename = b"", "", None
        self._data = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._filename = None if filename is None else filename.decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == FILE_FIELD:
            if self.upload is not None:
                return  # a second `file` part: only the first counts
            self._data += data[start:end]
            if len(self._data) > self.max_bytes:
                raise too_large(self.max_bytes)
        elif self._filename is None:
            self._data += data[start:end]
            if len(self._data) > MAX_FIELD_BYTES:
                raise HTTPException(422, f"the form field {self._name!r} is too long")

    def _part_end(self) -> None:
        if self._name == FILE_FIELD and self.upload is None:
            self.upload = Upload(bytes(self._data), self._filename)
        elif self._filename is None and self._name:
            self.fields[self._name] = self._data.decode("utf-8", "replace").strip()


async def _read_multipart(chunks: AsyncIterator[bytes], boundary: bytes, max_bytes: int) -> Upload:
    form = _Form(max_bytes)
    parser = MultipartParser(boundary, form.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise HTTPException(400, f"the multipart body cannot be parsed ({exc})") from None
    if form.upload is None:
        raise HTTPException(422, f"no audio: send the file in the multipart field {FILE_FIELD!r}")
    form.upload.fields = form.fields
    return form.upload


def decode_audio(data: bytes, max_audio_s: float) -> Pcm:
    """The clip as 8 kHz mono int16; 415 for a format it cannot read, 413 when too long."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:
            return _decode_wav(data, max_audio_s)
        except wave.Error as exc:
            if soundfile is None:  # e.g. float samples or WAVE_FORMAT_EXTENSIBLE
                raise _unsupported(f"a WAV file the reader cannot use ({exc})") from None
    elif data[:4] not in (b"fLaC", b"OggS"):
        raise _unsupported("not a WAV, FLAC or OGG file")
    if soundfile is None:
        raise _unsupported("FLAC and OGG need the soundfile package on the server")
    return _decode_soundfile(data, max_audio_s)


def _unsupported(what: str) -> HTTPException:
    return HTTPException(415, f"unsupported audio: {what}; accepted: {accepted_formats()}")


def _check(rate: int, frames: int, channels: int, max_audio_s: float) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise _unsupported(f"a sample rate of {rate} Hz")
    if channels < 1:
        raise _unsupported("no audio channels")
    if frames == 0:
        raise HTTPException(422, "the audio file holds no samples")
    seconds = frames / rate
    if seconds > max_audio_s:
        raise HTTPException(
            413, f"the audio is {seconds:.1f} s long; the limit is {max_audio_s:g} s"
        )


def _decode_wav(data: bytes, max_audio_s: float) -> Pcm:
    with wave.open(io.BytesIO(data), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        _check(rate, wav.getnframes(), channels, max_audio_s)
        raw = wav.readframes(wav.getnframes())
    raw = raw[: len(raw) - len(raw) % (width * channels)]
    if width == 1:
        samples = (np.frombuffer(raw, dtype="u1").astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 3:  # little-endian 24-bit: keep the top two bytes
        triples = np.frombuffer(raw, dtype="u1").reshape(-1, 3)
        samples = triples[:, 1].astype(np.int32) | (
            triples[:, 2].astype(np.int8).astype(np.int32) << 8
        )
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4") >> 16
    else:
        raise _unsupported(f"{8 * width}-bit samples")
    if samples.size == 0:
        raise HTTPException(422, "the audio file holds no samples")
    return _mono_8k(samples.reshape(-1, channels), rate)


def _decode_soundfile(data: bytes, max_audio_s: float) -> Pcm:
    assert soundfile is not None
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            _check(audio.samplerate, audio.frames, audio.channels, max_audio_s)
            samples: Any = audio.read(dtype="int16", always_2d=True)
            rate = audio.samplerate
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise _unsupported(f"a file that cannot be decoded ({exc})") from None
    if len(samples) == 0:
        raise HTTPException(422, "the audio file holds no samples")
    return _mono_8k(np.asarray(samples, dtype=np.int32), rate)


def _mono_8k(frames: np.ndarray, rate: int) -> Pcm:
    """(frames, channels) int32 samples on the int16 scale -> mono 8 kHz Pcm."""
    mono = frames.mean(axis=1) if frames.shape[1] > 1 else frames[:, 0]
    pcm = Pcm(np.clip(mono, -32768, 32767).astype("<i2").tobytes(), rate)
    return resample(pcm, CALL_RATE)
