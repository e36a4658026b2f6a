"""The PBX side of any streaming protocol, played by the simulator's `CallDriver`.

A *peer* is two parts:

- a `PeerCodec`, sans-I/O: it turns the caller's side of the call (the start, 20 ms slin 8 kHz
  frames, DTMF keys, the hangup, answers to marks) into what goes on the wire (`Wire`: bytes, or
  str for a WebSocket TEXT frame), and what the robot sends into `PeerEvent`s;
- a `Transport` (`peers/transports.py`: `TcpTransport`, `WebSocketTransport`) that moves `Wire`s.

`play_peer_call` runs one call with them on the shared 20 ms ticker and reports a `CallResult`,
exactly as the mod_audio_fork caller does, so every ingress is tested by the same checks. What the
robot does arrives as events: `RobotAudio` (slin 8 kHz to play), `RobotClear` (barge-in: flush
what has not played), `RobotMark` (answer with `codec.mark_answer` when the audio before it has
played, or when cleared, following `codec.marks`), `RobotHangup`, `RobotTransfer`, `RobotEvent`
(reported only), `PeerSend` (the codec answers something at once) and `PeerWarning` (bad input
from the robot: reported in the call's warnings, the call goes on).

A protocol's module `voiceplat/simulator/peers/<name>.py` exposes
`make_peer(url: str, call: CallInfo) -> tuple[PeerCodec, Transport]`; `peers/__init__.py` maps
URL schemes to those modules. Scripts may hold `Dtmf` steps: the keys are sent with
`codec.dtmf` once the robot has answered and gone quiet (as `Say` waits), and the report times
the robot's answer from them (an utterance whose source is "dtmf <keys>").
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from voiceplat.simulator.common import DTMF_SOURCE, DtmfStep
from voiceplat.simulator.common import Dtmf as Dtmf  # a PBX peer script's step
from voiceplat.simulator.driver import CallDriver
from voiceplat.simulator.peer_playout import MarkRules
from voiceplat.simulator.report import EventReport, ms

Wire = bytes | str
"""bytes: stream bytes (TCP) or a BINARY frame; str: a WebSocket TEXT frame."""

PeerStep = DtmfStep


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who calls whom; `metadata` is the simulator's metadata (callId, from, to, ...)."""

    call_id: str
    caller: str
    callee: str
    metadata: dict[str, Any] = field(default_factory=dict)


# --- what the robot sent, as the codec understood it ----------------------------------------


@dataclass(frozen=True, slots=True)
class RobotAudio:
    pcm: bytes
    """slin16 little-endian, 8 kHz (the codec converts from the protocol's format)."""


@dataclass(frozen=True, slots=True)
class RobotClear:
    """Flush the audio not yet played (barge-in); `message` names it in the report."""

    message: str = "clear"


@dataclass(frozen=True, slots=True)
class RobotMark:
    name: str


@dataclass(frozen=True, slots=True)
class RobotHangup:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RobotTransfer:
    target: Any


@dataclass(frozen=True, slots=True)
class RobotEvent:
    """Anything else worth a line in the report's events."""

    type: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class PeerSend:
    """Send this at once (e.g. an acknowledgement the protocol requires)."""

    data: Wire


@dataclass(frozen=True, slots=True)
class PeerWarning:
    """The robot sent something the protocol does not allow; the call goes on."""

    text: str


PeerEvent = (
    RobotAudio
    | RobotClear
    | RobotMark
    | RobotHangup
    | RobotTransfer
    | RobotEvent
    | PeerSend
    | PeerWarning
)


class PeerCodec(Protocol):
    """One call's protocol, PBX side, without I/O. Every method returns what to send, in order."""

    marks: MarkRules
    """How the PBX answers `RobotMark`s: "ideal" (when played), "none" (no marks)."""
    prebuffer: bool
    """Whether the PBX collects mod_audio_fork's pre-buffer before playing (usually False)."""

    def start(self, call: CallInfo) -> list[Wire]:
        """The first messages of the call (the UUID frame, a `start` message, ...)."""
        ...

    def caller_audio(self, frame: bytes) -> list[Wire]:
        """One caller frame (slin16 LE 8 kHz, the call's frame size)."""
        ...

    def dtmf(self, digits: str) -> list[Wire]: ...

    def hangup(self) -> list[Wire]:
        """What the PBX sends as the caller hangs up, before the transport closes."""
        ...

    def mark_answer(self, name: str, event: str) -> list[Wire]:
        """A mark's audio played (`event` "playout") or was flushed ("cleared")."""
        ...

    def receive(self, data: Wire) -> list[PeerEvent]:
        """Bytes or a message from the robot (TCP: any split of the stream)."""
        ...


class Transport(Protocol):
    async def open(self) -> None:
        """Connects; raises OSError (or the library's handshake error) when it cannot."""
        ...

    def send(self, data: Wire, *, audio: bool = False) -> bool:
        """Queues `data` without waiting; audio beyond the send buffer is dropped (returns
        False): the shared ticker must never wait on one slow robot."""
        ...

    async def receive(self) -> Wire | None:
        """The next bytes or message; None once the robot has closed the connection."""
        ...

    async def close(self) -> None: ...


class PeerCall:
    """Glue between one transport, its codec and its driver; a client of the shared ticker."""

    def __init__(
        self,
        codec: PeerCodec,
        transport: Transport,
        driver: CallDriver,
        *,
        hangup_after_s: float | None = None,
    ) -> None:
        self.codec = codec
        self.transport = transport
        self.driver = driver
        self.hangup_after_s = hangup_after_s
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.dropped = 0
        self.lag_max = 0.0
        self.closing: asyncio.Task[None] | None = None
        self._seen_utterances = 0

    def now(self) -> float:
        return self.loop.time() - self.t0

    def send(self, wires: list[Wire], *, audio: bool = False) -> None:
        for data in wires:
            if not self.transport.send(data, audio=audio):
                self.dropped += 1

    # --- the ticker ------------------------------------------------------------------------

    def on_tick(self, k: int, lag_s: float) -> None:
        self.lag_max = max(self.lag_max, lag_s)
        driver = self.driver
        if self.hangup_after_s is not None and k * driver.period >= self.hangup_after_s:
            driver.hangup = True
        frame, replies = driver.on_tick(k)
        for reply in replies:
            self._answer_mark(reply)
        self._new_utterances()
        if frame is not None:
            self.send(self.codec.caller_audio(frame), audio=True)
        elif driver.ended:
            self.hang_up(by_caller=driver.end_reason is None)

    def on_tick_error(self, exc: Exception) -> None:
        self.driver.error(f"simulator error: {exc!r}")
        self.hang_up(by_caller=False)

    def _new_utterances(self) -> None:
        driver = self.driver
        while self._seen_utterances < len(driver.utterances):
            u = driver.utterances[self._seen_utterances]
            self._seen_utterances += 1
            if u.source.startswith(DTMF_SOURCE):
                digits = u.source.removeprefix(DTMF_SOURCE)
                u.speech_start = u.speech_end = driver.now  # sent now, timed from now
                driver.events.append(
                    EventReport(type="dtmf", t_ms=ms(driver.now), data={"digits": digits})
                )
                self.send(self.codec.dtmf(digits))

    def _answer_mark(self, reply: str) -> None:
        data = json.loads(reply)["data"]  # the driver's own {"type": "mark", "data": {...}}
        self.send(self.codec.mark_answer(data["name"], data["event"]))

    # --- the robot -------------------------------------------------------------------------

    def on_data(self, data: Wire) -> None:
        now = self.now()
        driver = self.driver
        for event in self.codec.receive(data):
            if isinstance(event, RobotAudio):
                driver.on_binary(event.pcm, now)
            elif isinstance(event, RobotClear):
                for reply in driver.on_text('{"type": "killAudio"}', now):
                    self._answer_mark(reply)
                driver.events[-1] = EventReport(
                    type="killAudio", t_ms=ms(now), data={"message": event.message}
                )
            elif isinstance(event, RobotMark):
                driver.on_text(json.dumps({"type": "mark", "data": {"name": event.name}}), now)
            elif isinstance(event, RobotHangup):
                driver.events.append(
                    EventReport(type="hangup", t_ms=ms(now), data={"reason": event.reason})
                )
                if driver.disconnect_at is None:
                    driver.disconnect_at = now
                if not driver.ended:
                    driver.robot_hung_up = True
                    driver.end("robot_hung_up")
            elif isinstance(event, RobotTransfer):
                driver.events.append(EventReport(type="transfer", t_ms=ms(now), data=event.target))
                driver.transferred, driver.transfer_target = True, event.target
                driver.end("transferred")
            elif isinstance(event, RobotEvent):
                driver.events.append(EventReport(type=event.type, t_ms=ms(now), data=event.data))
            elif isinstance(event, PeerSend):
                self.send([event.data])
            else:
                driver.warnings.append(f"at {ms(now)} ms: {event.text}")

    def hang_up(self, *, by_caller: bool) -> None:
        """Ends the call on our side once: the codec's hangup (when the caller hangs up), then
        the transport closes."""
        if self.closing is not None:
            return
        if by_caller:
            self.send(self.codec.hangup())
        self.closing = self.loop.create_task(self.transport.close())
