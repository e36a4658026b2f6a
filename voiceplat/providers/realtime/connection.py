"""What the OpenAI-protocol realtime providers share: settings, the outbound WebSocket, the handshake.

A provider file (openai_realtime.py, yandex_realtime.py) only says where to connect and how to
authenticate. `RealtimeConnection` is one open session: typed server events in (`recv`), client
events out through a writer task (`send` never blocks the audio path; if the network stalls,
caller audio beyond a backlog is dropped and counted, control events never are).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import OrderedDict
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from voiceplat.providers.base import (
    ROBOT_ENV_PLACEHOLDER,
    ProviderError,
    Realtime,
    RealtimeSettings,
)
from voiceplat.providers.realtime import protocol, server_events
from voiceplat.providers.realtime.protocol import AudioFormat, FormatType, Modality
from voiceplat.providers.realtime.server_events import ServerEvent, SessionInfo

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
AUDIO_BACKLOG = 100
"""Queued input_audio_buffer.append events (≈ 2 s of 20 ms frames) before new ones are dropped."""
_REMEMBERED_EVENTS = 128


class TurnDetectionSettings(BaseModel):
    """Server VAD: the realtime service decides when the caller starts and stops speaking."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.5, ge=0, le=1, description="speech probability; higher ignores more")
    prefix_padding_ms: int = Field(300, ge=0, le=2000, description="audio kept before speech")
    silence_duration_ms: int = Field(
        500, ge=100, le=5000, description="silence that ends the caller's turn"
    )

    def to_json(self, *, interrupt: bool) -> dict[str, Any]:
        vad: dict[str, Any] = {"type": "server_vad", **self.model_dump()}
        if not interrupt:
            # Only sent when it differs from the protocol's default (true), so servers that copy
            # an older schema are not handed a key they may not know.
            vad["interrupt_response"] = False
        return vad


class ProtocolRealtimeSettings(RealtimeSettings):
    """Settings shared by the OpenAI-protocol realtime providers."""

    url: str = Field(description="wss:// endpoint without the query string")
    model: str = Field(description="model name (the URL's ?model=)")
    api_key_env: str = Field(description="NAME of the env variable with the API key")
    audio_format: FormatType = Field(
        "audio/pcm",
        description="audio/pcm (16-bit, resampled at the boundary) or audio/pcmu (8 kHz G.711, "
        "no resampling)",
    )
    input_rate: int = Field(24000, ge=8000, le=48000, description="caller audio rate sent (pcm)")
    output_rate: int = Field(24000, ge=8000, le=48000, description="robot audio rate asked (pcm)")
    turn_detection: TurnDetectionSettings = Field(default_factory=TurnDetectionSettings)
    transcription_model: str | None = Field(
        None, description="input transcription model (caller turns in the call record)"
    )
    transcription_language: str | None = Field(None, description="e.g. ru; None: auto")
    timeout_s: float = Field(15.0, gt=0, description="connect and session.created within this")
    reconnect: bool = Field(True, description="reconnect when the session ends or drops")
    max_reconnects: int = Field(
        3, ge=0, le=50, description="reconnects after a drop or expiry (not renewals) per call"
    )
    renew_after_s: float | None = Field(
        None, gt=0, description="open a fresh session at a quiet moment after this long"
    )
    unavailable_text: str = Field(
        "Извините, связь с ассистентом прервалась. Перезвоните, пожалуйста. До свидания!",
        description="said (through the tts, if configured) when the service cannot go on",
    )
    proxy: str | None = Field(None, description="proxy URL; default: HTTPS_PROXY from the env")


class RealtimeClosed(Exception):
    """The realtime session's socket closed."""

    def __init__(self, detail: str, *, expired: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expired = expired


class RealtimeConnection:
    """One open realtime session over a WebSocket (websockets' ClientConnection or a stand-in)."""

    def __init__(self, ws: Any, *, clock: Any = None) -> None:
        self._ws = ws
        self._out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._sent: OrderedDict[str, str] = OrderedDict()
        self._audio_queued = 0
        self.dropped_audio = 0
        self.opened_at = (clock or asyncio.get_running_loop().time)()
        self.closed = False

    def send(self, event: dict[str, Any]) -> None:
        """Queues a client event for the writer; never blocks."""
        if self.closed:
            return
        is_audio = event["type"] == "input_audio_buffer.append"
        if is_audio:
            if self._audio_queued >= AUDIO_BACKLOG:
                self.dropped_audio += 1
                return
            self._audio_queued += 1
        event_id = f"vp_{next(self._ids)}"
        if not is_audio:  # errors name the event that caused them: remember which it was
            self._sent[event_id] = event["type"]
            while len(self._sent) > _REMEMBERED_EVENTS:
                self._sent.popitem(last=False)
        self._out.put_nowait({"event_id": event_id, **event})

    def caused_by(self, event_id: str | None) -> str | None:
        return self._sent.get(event_id) if event_id else None

    async def run_writer(self) -> None:
        """Sends queued events in order until the connection closes."""
        from websockets.exceptions import ConnectionClosed

        while (event := await self._out.get()) is not None:
            if event["type"] == "input_audio_buffer.append":
                self._audio_queued -= 1
            try:
                await self._ws.send(json.dumps(event, ensure_ascii=False))
            except ConnectionClosed:
                return

    async def recv(self) -> ServerEvent:
        """The next server event. Raises RealtimeClosed, RealtimeProtocolError (a bad message)."""
        from websockets.exceptions import ConnectionClosed

        try:
            message = await self._ws.recv()
        except ConnectionClosed as exc:
            self.closed = True
            self._out.put_nowait(None)
            frame = exc.rcvd or exc.sent
            code = frame.code if frame is not None else 1006
            reason = frame.reason if frame is not None else ""
            expired = "maximum duration" in reason or "expired" in reason.lower()
            raise RealtimeClosed(
                f"closed ({code}{': ' + reason if reason else ''})", expired=expired
            ) from None
        return server_events.parse_server_event(message)

    async def aclose(self) -> None:
        self.closed = True
        self._out.put_nowait(None)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._ws.close()


class ProtocolRealtime(Realtime):
    """Base of providers that speak the OpenAI Realtime protocol over a WebSocket."""

    Settings: ClassVar[type[ProtocolRealtimeSettings]] = ProtocolRealtimeSettings
    settings: ProtocolRealtimeSettings
    output_modalities: ClassVar[tuple[Modality, ...]] = ("audio",)
    """What the model is asked to answer with. OpenAI: ["audio"] (audio plus its transcript; it
    refuses text and audio together); a provider whose robot words come only as text says so."""

    # -- what a provider says ---------------------------------------------------------------
    def endpoint(self) -> str:
        """The full wss:// URL, query included."""
        raise NotImplementedError

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def missing(self) -> list[str]:
        """Env variables that must be set but are not."""
        return [] if self.api_key else [self.settings.api_key_env]

    # -- shared ------------------------------------------------------------------------------
    @property
    def api_key(self) -> str:
        return self.env.get(self.settings.api_key_env, "").strip()

    def problems(self) -> list[str]:
        return [
            f"{name} is not set; put it in {ROBOT_ENV_PLACEHOLDER} or .env "
            f"({self.name} needs it to connect to {self.settings.url})"
            for name in self.missing()
        ]

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat(self.settings.audio_format, self.settings.input_rate)

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat(self.settings.audio_format, self.settings.output_rate)

    def session(self, instructions: str, *, interrupt: bool) -> dict[str, Any]:
        """The session.update event for a new session."""
        settings = self.settings
        transcription = None
        if settings.transcription_model:
            transcription = {"model": settings.transcription_model}
            if settings.transcription_language:
                transcription["language"] = settings.transcription_language
        return protocol.session_update(
            protocol.realtime_session(
                instructions=instructions,
                voice=settings.voice,
                input_format=self.input_format,
                output_format=self.output_format,
                turn_detection=settings.turn_detection.to_json(interrupt=interrupt),
                transcription=transcription,
                output_modalities=self.output_modalities,
            )
        )

    def _proxy(self) -> str | Literal[True] | None:
        """The configured proxy; else the environment's (HTTPS_PROXY), but never for loopback."""
        if self.settings.proxy:
            return self.settings.proxy
        host = urlsplit(self.settings.url).hostname or ""
        return None if host in ("localhost", "127.0.0.1", "::1") else True

    def _error(self, message: str) -> ProviderError:
        """A ProviderError naming the service; the key is masked even if a server echoed it."""
        if self.api_key:
            message = message.replace(self.api_key, "***")
        return ProviderError(f"{self.name} at {self.settings.url}: {message}")

    async def connect(self) -> tuple[RealtimeConnection, SessionInfo]:
        """Opens a session and waits for session.created. Raises ProviderError."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

        missing = self.missing()
        if missing:
            raise self._error(f"{', '.join(missing)} not set")
        timeout = self.settings.timeout_s
        try:
            async with asyncio.timeout(timeout):
                ws = await connect(
                    self.endpoint(),
                    additional_headers=self.auth_headers(),
                    proxy=self._proxy(),
                    compression=None,
                    max_size=MAX_MESSAGE_BYTES,
                    open_timeout=None,
                    close_timeout=2,
                    ping_interval=20,
                    ping_timeout=20,
                )
                connection = RealtimeConnection(ws)
                try:
                    first = await connection.recv()
                except BaseException:
                    await connection.aclose()
                    raise
        except TimeoutError:
            raise self._error(f"no session within {timeout:g} s") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace")[:200] if exc.response.body else ""
            hint = " (check the API key)" if status in (401, 403) else ""
            raise self._error(f"HTTP {status}{hint} {body}".strip()) from None
        except (OSError, InvalidURI, InvalidHandshake, RealtimeClosed) as exc:
            raise self._error(f"cannot connect: {exc}") from None
        except protocol.RealtimeProtocolError as exc:
            raise self._error(f"bad first message: {exc}") from None
        if isinstance(first, server_events.ServerError):
            await connection.aclose()
            raise self._error(f"{first.code or first.type}: {first.message}")
        if not isinstance(first, SessionInfo):
            # Some servers start with other events; the session goes on with our formats.
            log.debug("%s: first event %r, not session.created", self.name, first)
            first = SessionInfo(False, None, None, None)
        return connection, first
