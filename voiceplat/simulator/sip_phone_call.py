"""One call of the simulator's telephone (`sip_phone.SipPhone`), in the PJSIP thread.

Its reports go to a `PhoneListener` (the loop side, `sip_caller.py`) through the phone's
`LoopInbox`, in the order PJSIP made them. The media clock's thread only touches the call's
`PlayoutBuffer` (the robot's `CallMediaPort` drains it) and posts the robot's frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import pjsua2 as pj

from voiceplat.telephony.ingress.sip.media import CallMediaPort, LoopInbox, PlayoutBuffer

log = logging.getLogger(__name__)


class PhoneListener(Protocol):
    """What a call reports; every method runs in the event loop."""

    def on_sip_state(self, state: str, status: int, reason: str) -> None: ...

    def on_media(self, codec: str) -> None: ...

    def on_frame(self, data: bytes, taken: int, clock_time: float) -> None: ...

    def on_transfer_request(self, target: str) -> None: ...

    def on_ended(self, status: int, reason: str, confirmed: bool, by_us: bool) -> None: ...


class GoneListener:
    """The listener of a call whose loop side has finished: reports go nowhere."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


class PhoneCall(pj.Call):
    """One outgoing call, in the PJSIP thread."""

    def __init__(
        self,
        account: pj.Account,
        inbox: LoopInbox,
        listener: PhoneListener | GoneListener,
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
            # The port is kept until stop(): destroyed here, its slot leaves PJSIP's bridge only
            # at the next tick, and the media clock could still call the half-destroyed port
            # (a segfault with several calls on one stack).
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
