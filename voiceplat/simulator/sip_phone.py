"""The simulated caller's telephone: one pjsua2 library (a SIP user agent) for the whole process.

`SipPhone` owns the library through the robot's own `PjThread`: every pjsua2 call and callback
runs in that thread, except the media clock's frame callbacks, which touch only the call's
`PlayoutBuffer` and post frames to the event loop through a `LoopInbox` (the robot's
`voiceplat.telephony.ingress.sip.media`, reused as it is). pjsua is one per process, so the
simulator's many calls (`--calls N`) are many `PhoneCall`s on one `SipPhone`.

A `PhoneCall` reports to its `PhoneListener` (the loop side, `sip_caller.py`), in the event loop.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import pjsua2 as pj

from voiceplat.telephony.ingress.sip.endpoint import CODEC_IDS
from voiceplat.telephony.ingress.sip.media import CallMediaPort, LoopInbox, PlayoutBuffer
from voiceplat.telephony.ingress.sip.pj_thread import PjThread

log = logging.getLogger(__name__)
PJ_ETOOMANY = 70010
"""PJSIP's status for "too many objects": every call slot of the library is taken."""
T = TypeVar("T")

_TRANSPORT_KINDS = (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP)
_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}


class PhoneListener(Protocol):
    """What a call reports; every method runs in the event loop."""

    def on_sip_state(self, state: str, status: int, reason: str) -> None: ...

    def on_media(self, codec: str) -> None: ...

    def on_frame(self, data: bytes, taken: int, clock_time: float) -> None: ...

    def on_transfer_request(self, target: str) -> None: ...

    def on_ended(self, status: int, reason: str, confirmed: bool, by_us: bool) -> None: ...


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 goes to stderr: the report (`--json` too) owns stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class _Gone:
    """The listener of a call whose loop side has finished: reports go nowhere."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


class _LogWriter(pj.LogWriter):
    def write(self, entry: Any) -> None:
        level = _LEVELS.get(entry.level, logging.DEBUG)
        logging.getLogger("pjsip.simulator").log(level, "%s", entry.msg.rstrip())


class PhoneCall(pj.Call):
    """One outgoing call, in the PJSIP thread."""

    def __init__(
        self,
        account: pj.Account,
        inbox: LoopInbox,
        listener: PhoneListener | _Gone,
        playout: PlayoutBuffer,
    ) -> None:
        super().__init__(account)
        self.inbox = inbox
        self.listener = listener
        self.playout = playout
        self.port: CallMediaPort | None = None
        self.audio_index: int | None = None
        self.confirmed = False
        self.hanging_up = False
        self.gone = False
        self.final_stats: dict[str, Any] = {}

    # -- PJSIP callbacks ---------------------------------------------------------------------
    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        status, reason = int(info.lastStatusCode), str(info.lastReason)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed = True
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if self.gone:
                return
            self.gone = True
            self.port = None  # its conference slot goes with it
            listener = self.listener
            self.inbox.post(listener.on_ended, status, reason, self.confirmed, self.hanging_up)
            return
        self.inbox.post(self.listener.on_sip_state, str(info.stateText), status, reason)

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
            ):
                self.audio_index = media.index
        self._connect_media()

    def onCallTransferRequest(self, prm: Any) -> None:
        # The simulator cannot reach the transfer target: it reports the REFER and declines it,
        # so the robot hears a refusal (603) and carries on.
        self.inbox.post(self.listener.on_transfer_request, str(prm.dstUri))
        prm.statusCode = 603

    # -- media -------------------------------------------------------------------------------
    def _connect_media(self) -> None:
        if self.audio_index is None or self.gone:
            return
        try:
            audio = self.getAudioMedia(self.audio_index)
        except pj.Error:
            return  # no media yet; the next media state retries
        first = self.port is None
        if self.port is None:
            inbox, listener, playout = self.inbox, self.listener, self.playout

            def heard(data: bytes) -> None:  # the media clock's thread
                inbox.post(listener.on_frame, data, playout.played, time.monotonic())

            self.port = CallMediaPort(heard, playout)
            self.port.create(f"caller{self.getId()}")
        # Our side first: a tick that hands us robot audio without taking a caller frame would
        # leave the caller's frames one tick later than counted (sip_caller's lead).
        self.port.startTransmit(audio)
        audio.startTransmit(self.port)
        if first:
            self.inbox.post(self.listener.on_media, self.codec())

    def codec(self) -> str:
        try:
            info = self.getStreamInfo(self.audio_index or 0)
            return f"{info.codecName}/{info.codecClockRate}"
        except pj.Error:
            return "?"

    def onStreamDestroyed(self, prm: Any) -> None:
        if prm.streamIdx == self.audio_index:
            self.final_stats = self._stream_stats(prm.streamIdx) or self.final_stats

    def rtp_stats(self) -> dict[str, Any]:
        """What RTCP knows about the robot's RTP as received, and the jitter buffer's state
        (at the end of the stream once the call is over)."""
        if self.audio_index is None or self.gone:
            return self.final_stats
        return self._stream_stats(self.audio_index) or self.final_stats

    def _stream_stats(self, index: int) -> dict[str, Any]:
        try:
            stat = self.getStreamStat(index)
        except pj.Error:
            return {}
        rx, jbuf = stat.rtcp.rxStat, stat.jbuf
        return {
            "rx_packets": int(rx.pkt),
            "rx_lost": int(rx.loss),
            "rx_discarded": int(rx.discard),
            "rx_jitter_ms": {
                "mean": round(rx.jitterUsec.mean / 1000.0, 2),
                "max": round(rx.jitterUsec.max / 1000.0, 2),
            },
            "jitter_buffer_ms": {"avg": int(jbuf.avgDelayMsec), "max": int(jbuf.maxDelayMsec)},
            "tx_packets": int(stat.rtcp.txStat.pkt),
        }

    # -- commands (PJSIP thread) -------------------------------------------------------------
    def hang_up(self) -> None:
        if self.gone or self.hanging_up or self.getId() < 0:
            return
        self.hanging_up = True
        try:
            self.hangup(pj.CallOpParam(True))
        except pj.Error as exc:
            log.info("hangup of simulated call %s: %s", self.getId(), exc.info())

    def send_dtmf(self, digits: str) -> None:
        param = pj.CallSendDtmfParam()
        param.method = pj.PJSUA_DTMF_METHOD_RFC2833
        param.digits = digits
        self.sendDtmf(param)


class SipPhone:
    """The process's SIP user agent: transports bound to one local address, accounts per caller
    user, any number of calls. Start it, dial, stop it; `stop()` ends calls that still run."""

    _live = False

    def __init__(self, local_host: str, codecs: list[str], max_calls: int = 1) -> None:
        unknown = [c for c in codecs if c.upper() not in CODEC_IDS]
        if unknown or not codecs:
            raise ValueError(f"codecs must be some of {', '.join(CODEC_IDS)} (got {codecs})")
        self.local_host = local_host
        self.codecs = [CODEC_IDS[c.upper()] for c in codecs]
        self.max_calls = max_calls
        self.thread = PjThread("pjsip-simulator")
        self.inbox: LoopInbox | None = None
        self._endpoint: pj.Endpoint | None = None
        self._log_writer = _LogWriter()
        self._accounts: dict[str, pj.Account] = {}
        self._calls: dict[int, PhoneCall] = {}
        """Every call made, by handle, over or not, until `stop()`."""
        self._handles = itertools.count(1)

    async def start(self, inbox: LoopInbox) -> None:
        if SipPhone._live:
            raise RuntimeError("one SipPhone per process: pjsua2 is a singleton")
        SipPhone._live = True
        self.inbox = inbox
        self.thread.start()
        try:
            await self.thread.run(self._start)
        except BaseException:
            await self.stop()
            raise

    def _start(self) -> None:
        ep = pj.Endpoint()
        with _stdout_to_stderr():  # pjlib greets on stdout before our log writer is set
            ep.libCreate()
        self._endpoint = ep
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0  # events come from PjThread's poll
        config.uaConfig.mainThreadOnly = False
        config.uaConfig.maxCalls = self.max_calls + 4
        config.uaConfig.userAgent = "voiceplat-simulator"
        media = config.medConfig
        media.clockRate = media.sndClockRate = 8000
        media.channelCount = 1
        media.audioFramePtime = media.ptime = 20
        media.noVad = True  # a phone sends every frame
        media.ecTailLen = 0
        media.maxMediaPorts = 2 * self.max_calls + 16
        config.logConfig.level = config.logConfig.consoleLevel = 3
        config.logConfig.writer = self._log_writer
        config.logConfig.decor = 0
        try:
            ep.libInit(config)
            ep.audDevManager().setNullDev()  # the null device's clock drives the media
            for codec in ep.codecEnum2():
                codec_id = str(codec.codecId)
                wanted = codec_id in self.codecs
                ep.codecSetPriority(codec_id, 255 - self.codecs.index(codec_id) if wanted else 0)
            for kind in _TRANSPORT_KINDS:
                transport = pj.TransportConfig()
                transport.port = 0  # any free port
                transport.boundAddress = self.local_host
                ep.transportCreate(kind | (128 if ":" in self.local_host else 0), transport)
            ep.libStart()
        except pj.Error as exc:
            raise OSError(f"the simulator's SIP stack cannot start: {exc.info()}") from None
        self.thread.set_poll(self._poll)

    def _poll(self, timeout_ms: int) -> None:
        if self._endpoint is not None:
            self._endpoint.libHandleEvents(timeout_ms)

    def _account(self, user: str) -> pj.Account:
        account = self._accounts.get(user)
        if account is None:
            config = pj.AccountConfig()
            host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
            config.idUri = f"sip:{user}@{host}"
            rtp = config.mediaConfig.transportConfig
            rtp.port = 0
            rtp.boundAddress = self.local_host
            account = pj.Account()
            account.create(config)
            self._accounts[user] = account
        return account

    async def dial(
        self, uri: str, user: str, listener: PhoneListener, playout: PlayoutBuffer
    ) -> tuple[int, str]:
        """Sends the INVITE; returns the call's handle (for the other commands) and its SIP
        Call-ID. Raises OSError when PJSIP cannot even send it (e.g. a URI it cannot parse).

        The event loop never holds a pj.Call, nor an exception whose traceback does: one must be
        deleted in this thread and before the library, so the phone keeps every call it made
        until `stop()`."""
        assert self.inbox is not None
        inbox = self.inbox

        def dial() -> tuple[int, str]:
            param = pj.CallOpParam(True)
            param.opt.audioCount = 1
            param.opt.videoCount = 0
            handle = next(self._handles)
            self._calls[handle] = PhoneCall(self._account(user), inbox, listener, playout)
            try:
                self._calls[handle].makeCall(uri, param)
                return handle, str(self._calls[handle].getInfo().callIdString)
            except pj.Error as exc:
                problem = str(exc.reason)
                too_many = exc.status == PJ_ETOOMANY
            del self._calls[handle]  # never dialled: nothing to hang up
            if too_many:
                live = sum(1 for call in self._calls.values() if not call.gone)
                problem += (
                    f": {live} calls are up, and this pjsua2 build takes no more at once in one "
                    "process (its PJSUA_MAX_CALLS)"
                )
            raise OSError(f"cannot call {uri}: {problem}")  # here, its traceback holds no call

        return await self.thread.run(dial)

    async def _on_call(self, handle: int, work: Callable[[PhoneCall], T]) -> T:
        def run() -> T:
            try:
                return work(self._calls[handle])
            except pj.Error as exc:
                problem = str(exc.info())
            raise OSError(problem)  # here, its traceback holds no call

        return await self.thread.run(run)

    async def hang_up(self, handle: int) -> None:
        await self._on_call(handle, PhoneCall.hang_up)

    async def send_dtmf(self, handle: int, digits: str) -> None:
        await self._on_call(handle, lambda call: call.send_dtmf(digits))

    async def rtp_stats(self, handle: int) -> dict[str, Any]:
        return await self._on_call(handle, PhoneCall.rtp_stats)

    async def stop(self) -> None:
        """Hangs up what still runs, destroys the library (calls first) and ends the thread."""
        if self.thread.in_thread():
            raise RuntimeError("stop() from the PJSIP thread")
        try:
            await self.thread.run(self._destroy)
        except RuntimeError:
            pass  # the thread never started
        self.thread.stop()
        SipPhone._live = False

    def _end_calls(self) -> None:
        """Hangs up and deletes every call (no reference to one may outlive this function)."""
        for call in self._calls.values():
            call.hang_up()
            call.port = None
            call.listener = _Gone()
        self._calls.clear()

    def _destroy(self) -> None:
        self._end_calls()
        gc.collect()  # calls a finished command's traceback still held go now too
        ep, self._endpoint = self._endpoint, None
        self.thread.set_poll(None)
        if ep is None:
            return
        for account in self._accounts.values():
            try:
                account.shutdown()
            except pj.Error:
                pass
        self._accounts.clear()
        try:
            ep.libDestroy()
        except pj.Error as exc:
            log.warning("simulator SIP shutdown: %s", exc.info())
