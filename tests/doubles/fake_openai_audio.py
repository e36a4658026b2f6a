"""A fake OpenAI audio API on 127.0.0.1: `/v1/audio/transcriptions` and `/v1/audio/speech`.

It follows the documented API rather than the providers' code, so a provider that sends what the
docs do not describe gets the 400 a real server would give:

- transcriptions: `multipart/form-data` with a `file` (here: a readable WAV) and `model`;
  `response_format` json (default), text or verbose_json (`{task, language, duration, text,
  segments: [{id, start, end, text, tokens, temperature, avg_logprob, compression_ratio,
  no_speech_prob}]}`); srt/vtt are documented but not served here (400 says so).
- speech: JSON `{model, input (at most 4096 characters), voice}`, `response_format` mp3 by default;
  the fake serves `pcm` (headerless 24 kHz 16-bit mono) and `wav` (streamed: placeholder sizes),
  streamed in `chunk_bytes` pieces with chunked transfer encoding.
- `api_key` set: every request needs `Authorization: Bearer <it>`, else 401 in OpenAI's error shape
  (`{"error": {"message", "type", "code"}}`, the message echoing the key it got, as OpenAI does).

`script` answers the next requests with fake_http responders instead (a 429, a 500, a broken
body); every request, scripted or not, is in `requests`. `hold` (an asyncio.Event) makes a speech
answer wait after its first chunk until the test sets it: proof that audio arrives while the
body is still being sent. `speech_done` is set once a speech body has been sent to its end.
"""

from __future__ import annotations

import asyncio
import io
import struct
import wave
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

import numpy as np

from tests.integration.fake_http import Request, Responder, Writer, body, read_request, write_chunk

__all__ = ["FakeOpenAIAudio", "Segment", "Upload", "speech_samples"]

SPEECH_RATE = 24000
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


@dataclass(frozen=True)
class Segment:
    text: str
    avg_logprob: float
    no_speech_prob: float
    tokens: int
    start: float
    end: float


@dataclass(frozen=True)
class Upload:
    """One transcription request as the server understood it."""

    fields: dict[str, str]
    filename: str
    content_type: str
    rate: int
    channels: int
    samples: int


def speech_samples(text: str) -> np.ndarray:
    """The audio the fake speaks for `text`: a 300 Hz tone, 50 ms per character."""
    t = np.arange(int(0.05 * len(text) * SPEECH_RATE)) / SPEECH_RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * 300 * t)).astype("<i2")


def _openai_error(status: int, message: str, kind: str, code: str | None = None) -> Responder:
    return body(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


@dataclass
class FakeOpenAIAudio:
    api_key: str | None = None
    text: str = "Запишите меня на завтра."
    language: str = "ru"
    segments: list[Segment] = field(default_factory=list)
    chunk_bytes: int = 4800
    script: list[Responder] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    hold: asyncio.Event | None = None
    speech_done: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task] = field(default_factory=set)

    @property
    def url(self) -> str:
        assert self._server is not None, "the server has not been started"
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def __aenter__(self) -> FakeOpenAIAudio:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await read_request(reader)
            self.requests.append(request)
            await self._answer(request)(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _answer(self, request: Request) -> Responder:
        if self.script:
            return self.script.pop(0)
        if self.api_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                return _openai_error(
                    401,
                    f"Incorrect API key provided: {given}.",
                    "invalid_request_error",
                    "invalid_api_key",
                )
        if request.method == "POST" and request.path == "/v1/audio/transcriptions":
            return self._transcription(request)
        if request.method == "POST" and request.path == "/v1/audio/speech":
            return self._speech(request)
        return _openai_error(
            404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error"
        )

    # transcriptions

    def _transcription(self, request: Request) -> Responder:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return _openai_error(400, "expected multipart/form-data", "invalid_request_error")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
        )
        fields: dict[str, str] = {}
        upload: tuple[str, str, bytes] | None = None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            assert isinstance(name, str) and isinstance(payload, bytes)
            if name == "file":
                upload = (part.get_filename() or "", part.get_content_type(), payload)
            else:
                fields[name] = payload.decode()
        if upload is None:
            return _openai_error(400, "file: field required", "invalid_request_error")
        if "model" not in fields:
            return _openai_error(400, "model: field required", "invalid_request_error")
        response_format = fields.get("response_format", "json")
        if response_format not in TRANSCRIPTION_FORMATS:
            return _openai_error(
                400, f"response_format {response_format!r}", "invalid_request_error"
            )
        if response_format in ("srt", "vtt"):
            return _openai_error(400, f"{response_format} is not served by the fake", "fake")
        filename, file_type, data = upload
        try:
            with wave.open(io.BytesIO(data), "rb") as wav:
                rate, channels, frames = wav.getframerate(), wav.getnchannels(), wav.getnframes()
        except (wave.Error, EOFError) as exc:
            return _openai_error(400, f"Invalid file format ({exc})", "invalid_request_error")
        self.uploads.append(Upload(fields, filename, file_type, rate, channels, frames))
        if response_format == "text":
            return body(200, self.text + "\n", "text/plain")
        if response_format == "json":
            return body(200, {"text": self.text})
        return body(200, self._verbose(frames / rate))

    def _verbose(self, duration: float) -> dict:
        return {
            "task": "transcribe",
            "language": self.language,
            "duration": duration,
            "text": self.text,
            "segments": [
                {
                    "id": number,
                    "seek": 0,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "tokens": list(range(50364, 50364 + s.tokens)),
                    "temperature": 0.0,
                    "avg_logprob": s.avg_logprob,
                    "compression_ratio": 1.2,
                    "no_speech_prob": s.no_speech_prob,
                }
                for number, s in enumerate(self.segments)
            ],
        }

    # speech

    def _speech(self, request: Request) -> Responder:
        try:
            spec = request.json()
        except ValueError:
            return _openai_error(400, "We could not parse the JSON body", "invalid_request_error")
        missing = [key for key in ("model", "input", "voice") if not spec.get(key)]
        if missing:
            return _openai_error(
                400, f"Missing required parameter: {missing[0]!r}.", "invalid_request_error"
            )
        if len(spec["input"]) > 4096:
            return _openai_error(400, "input: at most 4096 characters", "invalid_request_error")
        response_format = spec.get("response_format", "mp3")
        if response_format not in SPEECH_FORMATS:
            return _openai_error(
                400, f"response_format {response_format!r}", "invalid_request_error"
            )
        if response_format not in ("pcm", "wav"):
            return _openai_error(400, f"{response_format} is not served by the fake", "fake")
        audio = speech_samples(spec["input"]).tobytes()
        if response_format == "wav":
            audio = wav_header(SPEECH_RATE) + audio
        content_type = "audio/wav" if response_format == "wav" else "audio/pcm"
        pieces = [audio[i : i + self.chunk_bytes] for i in range(0, len(audio), self.chunk_bytes)]
        return self._stream(pieces, content_type)

    def _stream(self, pieces: list[bytes], content_type: str) -> Responder:
        async def respond(request: Request, writer: Writer) -> None:
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
            )
            for number, piece in enumerate(pieces):
                await write_chunk(writer, piece)
                if number == 0 and self.hold is not None:
                    await self.hold.wait()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            self.speech_done.set()

        return respond


def wav_header(rate: int, channels: int = 1) -> bytes:
    """A streamed WAV's header: RIFF and data sizes unknown (0xFFFFFFFF), a LIST chunk before data."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    info = b"INFOISFT\x06\x00\x00\x00fake\x00\x00"
    return (
        b"RIFF\xff\xff\xff\xffWAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"LIST" + struct.pack("<I", len(info)) + info
        + b"data\xff\xff\xff\xff"
    )  # fmt: skip
