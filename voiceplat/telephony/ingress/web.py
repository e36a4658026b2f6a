"""The browser ingress: the "Talk to a robot" page's WebSocket (path `/web` on the robot's port).

Protocol (ours; the page is voiceplat/web/static/talk.js):

- browser -> robot: the first TEXT message is JSON metadata `{"robot": name, "caller": optional}`;
  the call id is made here (source "web"). Then BINARY PCM16 LE 8 kHz mono of any size (the page
  resamples in an AudioWorklet; an odd trailing byte is carried into the next message). TEXT
  `{"type": "hangup"}` ends the call; `{"type": "dtmf", "digit": "5"}` presses a key.
- robot -> browser: BINARY PCM16 8 kHz mono, paced at real time with a small lead (as to
  FreeSWITCH: the shared `Pacer`); TEXT `{"type": "call", "call_id"}` once, `{"type": "clear"}` on
  barge-in (the page drops what it has queued), `{"type": "turn", ...TurnRecord}` whenever a turn is
  written (from the robot process's `LiveCalls`), `{"type": "error", "message"}` on bad input, and
  `{"type": "ended", "end_reason"}` last. Bad input ends the call as `protocol_error`, close code 1008.

The browser answers no marks, so what the caller has heard is the playout clock alone
(`PlayoutModel`): the page plays audio as it arrives, a few tens of ms of output latency later.
Origin headers are accepted from anywhere; who may call is `media_auth`'s (telephony/media_auth.py):
with it on, the page's socket carries `?token=<token>` (a browser's WebSocket cannot set headers),
checked in the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import TYPE_CHECKING, Any, Unpack

from voiceplat.audio.pcm import duration_ms
from voiceplat.config import DTMF_KEYS
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import (
    AudioIn,
    CallMetadata,
    CallProtocolError,
    DtmfIn,
    TransferResult,
)
from voiceplat.telephony.ingress.paced import PacedChannel, Pacing, Transport

if TYPE_CHECKING:
    from voiceplat.storage.live import LiveCalls, LiveEvent, Subscription

PATH = "/web"
MAX_CALLER = 64
ENDED_WAIT_S = 1.0
"""How long closing waits for the finished record (through LiveCalls) to tell the page why."""

Event = CallMetadata | AudioIn | DtmfIn | Hangup


class WebDecoder:
    """Decodes what the page sends, in order. Raises CallProtocolError on a broken stream."""

    def __init__(self, robot: str | None = None) -> None:
        self.robot = robot
        self.metadata: CallMetadata | None = None
        self._carry = b""

    def text(self, message: str) -> list[Event]:
        data = _json_object(message, "metadata" if self.metadata is None else "TEXT message")
        if self.metadata is None:
            self.metadata = self._metadata(data)
            return [self.metadata]
        kind = data.get("type")
        if kind == "hangup":
            return [Hangup("caller_hangup")]
        if kind == "dtmf":
            digit = data.get("digit")
            if not isinstance(digit, str) or len(digit) != 1 or digit not in DTMF_KEYS:
                raise CallProtocolError(f"dtmf digit must be one of {DTMF_KEYS}, got {digit!r}")
            return [DtmfIn(digit, "other")]
        raise CallProtocolError(f"unknown message type {kind!r} (expected hangup or dtmf)")

    def binary(self, message: bytes) -> list[Event]:
        if self.metadata is None:
            raise CallProtocolError("audio arrived before the metadata TEXT message")
        data = self._carry + message
        whole = len(data) - len(data) % 2
        self._carry = data[whole:]
        return [AudioIn(data[:whole])] if whole else []

    def _metadata(self, data: dict[str, Any]) -> CallMetadata:
        robot, caller = data.get("robot"), data.get("caller")
        if not isinstance(robot, str) or not robot:
            raise CallProtocolError('metadata needs "robot": the name of the robot to talk to')
        if self.robot is not None and robot != self.robot:
            raise CallProtocolError(f"this port serves robot {self.robot!r}, not {robot!r}")
        if caller is not None and (not isinstance(caller, str) or len(caller) > MAX_CALLER):
            raise CallProtocolError(f'"caller" must be a string of at most {MAX_CALLER} chars')
        return CallMetadata(
            call_id=str(uuid.uuid4()), caller=caller or None, callee=robot, source="web"
        )


def _json_object(message: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(message)
    except ValueError:
        raise CallProtocolError(f"{what} is not JSON: {message[:80]!r}") from None
    if not isinstance(data, dict):
        raise CallProtocolError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def event_json(event: LiveEvent) -> dict[str, Any] | None:
    """What the page is told of a live event of its call (None: nothing)."""
    if event.type == "turn" and event.turn is not None:
        return {"type": "turn", **event.turn.model_dump(mode="json")}
    if event.type == "call_ended" and event.call is not None:
        return {"type": "ended", "end_reason": event.call.end_reason}
    return None


class WebChannel(PacedChannel):
    """One browser call as a `CallChannel` (see the module docstring for the protocol)."""

    source = "web"
    """The call record's source when the call fails before its metadata (a subclass for
    another protocol sets its own)."""
    peer = "the page"

    def __init__(
        self,
        transport: Transport,
        *,
        robot: str | None = None,
        live: LiveCalls | None = None,
        **pacing: Unpack[Pacing],
    ) -> None:
        super().__init__(transport, **pacing)
        self._decoder = WebDecoder(robot)
        self._live = live
        self._pending = bytearray()
        self._drained = asyncio.Event()
        self._forwarder: asyncio.Task[None] | None = None
        self._ended_sent = False
        transport.attach(self)

    # -- inbound: called by the transport's reader -----------------------------------------
    def _decode(self, message: str | bytes) -> list[Event]:
        if isinstance(message, str):
            return self._decoder.text(message)
        return self._decoder.binary(message)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CallMetadata):
            self._metadata = event
            self._started(event)
        elif isinstance(event, Hangup):
            self._fail(event)  # the page hung up
        else:
            super()._on_event(event)

    def _started(self, metadata: CallMetadata) -> None:
        self._send(json.dumps({"type": "call", "call_id": metadata.call_id}))
        if self._live is not None:
            subscription = self._live.subscribe(metadata.call_id)
            self._forwarder = asyncio.get_running_loop().create_task(self._forward(subscription))
        self._metadata_ready.set()

    async def _forward(self, subscription: Subscription) -> None:
        """Tells the page each turn of its call as it is written, and why the call ended."""
        try:
            async for event in subscription:
                message = event_json(event)
                if message is not None:
                    self._send(json.dumps(message, ensure_ascii=False))
                if message is not None and message["type"] == "ended":
                    self._ended_sent = True
                    return
        finally:
            subscription.close()

    # -- outbound --------------------------------------------------------------------------
    def _unsent_bytes(self) -> int:
        return len(self._pending)

    def play(self, data: bytes) -> tuple[float, float]:
        start = self.queued_ms
        if data and not self.closed:
            self._pending += data[: len(data) - len(data) % 2]
            self._drained.clear()
            self._pacer.wake(self)
        return start, self.queued_ms

    def mark(self, name: str) -> asyncio.Future[str]:
        """The page answers no marks: "unsent" (the playout clock says what was heard)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.set_result("unsent")
        return future

    async def clear(self) -> float:
        """Barge-in: drops what is queued here and tells the page to drop what it holds."""
        heard = self._drop_pending()
        self._send('{"type":"clear"}')
        return heard

    def _drop_pending(self) -> float:
        """Barge-in, here: drops the audio not sent yet. Returns the heard position."""
        self._pending.clear()
        self._drained.set()
        return self.playout.flush(self._clock())

    async def wait_heard(self, timeout_s: float) -> None:
        """Waits until the playout clock says everything queued so far was played (at most
        `timeout_s`); raises why the call ended if it ended before all of it was sent."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not self._ended.done():
                    if self._pending:
                        await self._until_ended(self._drained.wait())
                        continue
                    left = self.playout.playout_end - self._clock()
                    if left <= 0:
                        return
                    await self._until_ended(asyncio.sleep(left))
        if self._ended.done() and self._pending:
            await self._raise_why_ended()

    async def _until_ended(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task, self._ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()

    async def transfer(self, target: str) -> TransferResult:
        return TransferResult(
            accepted=False, reason="a call from the browser cannot be transferred"
        )

    async def close(self) -> None:
        """Tells the page why the call ended (an error first, if it sent bad input), then closes."""
        failure = self._inbound.failure
        if isinstance(failure, CallProtocolError):
            self._send(json.dumps({"type": "error", "message": str(failure)}, ensure_ascii=False))
        forwarder = self._forwarder
        if forwarder is not None and not self.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ENDED_WAIT_S):
                    await asyncio.shield(forwarder)
        if not self._ended_sent:
            reason = "protocol_error" if isinstance(failure, CallProtocolError) else None
            if isinstance(failure, Hangup):
                reason = failure.end_reason
            self._send(json.dumps({"type": "ended", "end_reason": reason}))
            self._ended_sent = True
        self._set_closed()
        await self._close_transport(failure)

    def _set_closed(self) -> None:
        super()._set_closed()
        self._drained.set()
        if self._forwarder is not None and not self._forwarder.done():
            self._forwarder.cancel()

    def pace(self, now: float, horizon: float) -> float | None:
        """Called by the pacer: sends the audio due by `horizon`; returns when the next chunk is
        due, or None when nothing is queued."""
        while self._pending and not self.closed:
            wait = self._not_due(now, horizon)
            if wait is not None:
                return wait
            chunk = bytes(self._pending[: self._chunk_bytes])
            del self._pending[: self._chunk_bytes]
            self.playout.on_send(duration_ms(len(chunk)), now)
            self._send(chunk)
        self._drained.set()
        return None
