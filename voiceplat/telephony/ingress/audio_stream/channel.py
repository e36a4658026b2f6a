"""The mod_audio_stream ingress: one call's WebSocket plus its own event-socket connection.

Media (codec.py): caller audio as BINARY L16 in; robot audio out as `streamAudio` TEXT, paced
like the browser's (WebChannel's pacer and playout clock), `chunk_ms` per message. The module
writes each message to a file and announces it with `mod_audio_stream::play` on the event
socket; this channel answers each with `uuid_broadcast <uuid> <file> aleg`, which FreeSWITCH
queues, so the chunks play in order. Control goes through the event socket too: barge-in is
`uuid_break <uuid> all` (stops the playing file and every queued one), the robot's hangup
`uuid_kill`, transfer `uuid_transfer`; DTMF and the hangup come as `DTMF` / `CHANNEL_HANGUP`.

The module answers no marks: what the caller heard is the playout clock (`PlayoutModel`).
A barge-in also ignores the play events of chunks sent before it that arrive after it (the
k-th play event is the k-th chunk: the module numbers its files in order).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import CallMetadata, CallProtocolError, TransferResult
from voiceplat.telephony.ingress.audio_stream import codec
from voiceplat.telephony.ingress.audio_stream.esl import EslEvent
from voiceplat.telephony.ingress.audio_stream.esl_client import EslClient, EslError
from voiceplat.telephony.ingress.audio_stream.settings import AudioStreamSettings
from voiceplat.telephony.ingress.paced import Transport
from voiceplat.telephony.ingress.web import WebChannel
from voiceplat.telephony.pacer import Pacer

ESL_TIMEOUT_S = 5.0
"""Connecting to the event socket, and each command we wait on (transfer, hangup)."""

EslFactory = Callable[[Callable[[EslEvent], None]], EslClient]


class AudioStreamChannel(WebChannel):
    source = "freeswitch"
    """The call record's source when the call fails before its metadata."""

    def __init__(
        self,
        transport: Transport,
        *,
        settings: AudioStreamSettings | None = None,
        lead_ms: int = 200,
        max_audio_ahead_s: float = 3.0,
        pacer: Pacer | None = None,
        esl_password: str | None = None,
        esl_factory: EslFactory = EslClient,
    ) -> None:
        self.settings = settings or AudioStreamSettings()
        chunk_ms = self.settings.chunk_ms
        # One chunk always queued in FreeSWITCH beyond the playing one: no gap between files.
        super().__init__(
            transport,
            lead_ms=max(lead_ms, 2 * chunk_ms),
            chunk_ms=chunk_ms,
            max_audio_ahead_s=max_audio_ahead_s,
            pacer=pacer,
        )
        self._stream = codec.AudioStreamDecoder()
        self._decoder = self._stream  # type: ignore[assignment]  # (same text/binary/metadata)
        self.esl = esl_factory(self._on_esl_event)
        self._esl_task: asyncio.Task[None] | None = None
        self._chunks_sent = 0
        self._plays_seen = 0
        self._skip_before = 0
        self._esl_password = esl_password or self.settings.esl_password(os.environ)
        self.broadcasts = 0
        """Files handed to uuid_broadcast (for tests and the benchmark)."""

    def refuse(self, reason: str) -> None:
        """Ends the call before it starts, closed 1008 with `reason`: bad credentials that no
        handshake check refused first (the handshake's 401 normally comes before any channel)."""
        self._fail(CallProtocolError(reason))

    # -- inbound --------------------------------------------------------------------------
    def _started(self, metadata: CallMetadata) -> None:
        self._esl_task = asyncio.get_running_loop().create_task(self._connect_esl())

    async def _connect_esl(self) -> None:
        """The session gets the metadata once the event socket can carry out its commands."""
        settings = self.settings
        try:
            await self.esl.connect(
                settings.esl_host, settings.esl_port, self._esl_password, ESL_TIMEOUT_S
            )
            async with asyncio.timeout(ESL_TIMEOUT_S):
                await self.esl.subscribe(codec.EVENTS, uuid=self._stream.channel_uuid)
        except (EslError, TimeoutError) as exc:
            self._fail(CallProtocolError(f"FreeSWITCH's event socket: {exc or 'timed out'}"))
            return
        self._metadata_ready.set()

    async def metadata(self) -> CallMetadata:
        await self._metadata_ready.wait()
        if self._inbound.failure is not None and self._decoder.metadata is None:
            raise self._inbound.failure
        if isinstance(self._inbound.failure, CallProtocolError):
            raise self._inbound.failure  # the event socket failed: no call can be served
        assert self._decoder.metadata is not None
        return self._decoder.metadata

    def _on_esl_event(self, event: EslEvent) -> None:
        if event.uuid and event.uuid != self._stream.channel_uuid:
            return  # (the filter keeps other channels away; a real server may send more)
        path = codec.play_file(event)
        if path is not None:
            index, self._plays_seen = self._plays_seen, self._plays_seen + 1
            if index >= self._skip_before and not self.closed:
                self.broadcasts += 1
                self.esl.send_api(f"uuid_broadcast {self._stream.channel_uuid} {path} aleg")
            return
        key = codec.dtmf_key(event)
        if key is not None:
            self._on_key(key)
        elif event.name == "CHANNEL_HANGUP":
            self._fail(Hangup("caller_hangup"))

    # -- outbound -------------------------------------------------------------------------
    def _send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):  # a paced chunk of robot audio
            self._chunks_sent += 1
            message = codec.stream_audio(message)
        super()._send(message)

    async def clear(self) -> float:
        """Barge-in: drops what is queued here; FreeSWITCH stops the playing file and the
        queued ones; chunks already sent but not yet announced are not broadcast."""
        heard = self._drop_pending()
        self._skip_before = self._chunks_sent
        if not self.closed:
            self.esl.send_api(f"uuid_break {self._stream.channel_uuid} all")
        return heard

    async def transfer(self, target: str) -> TransferResult:
        if not target or any(c.isspace() for c in target):
            return TransferResult(accepted=False, reason=f"bad transfer target {target!r}")
        answer = await self._api(f"uuid_transfer {self._stream.channel_uuid} {target}")
        if answer.startswith("+OK"):
            return TransferResult(accepted=True)
        return TransferResult(accepted=False, reason=answer.strip() or "no answer")

    async def disconnect(self) -> None:
        """The robot hangs up: FreeSWITCH kills the channel (the module then closes too)."""
        await self._api(f"uuid_kill {self._stream.channel_uuid}")
        await self.close()

    async def _api(self, line: str) -> str:
        try:
            async with asyncio.timeout(ESL_TIMEOUT_S):
                return await self.esl.api(line)
        except (EslError, TimeoutError) as exc:
            return f"-ERR event socket: {exc or 'timed out'}"

    async def close(self) -> None:
        failure = self._inbound.failure
        self._set_closed()
        if self._esl_task is not None and not self._esl_task.done():
            self._esl_task.cancel()
        await self.esl.close()
        await self._close_transport(failure)
