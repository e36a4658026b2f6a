"""One SIP call in PJSIP's thread: its state, media, keys and transfer, reported to its channel.

Everything here runs in the PJSIP thread (`pj_thread.PjThread`). Reports to the session go through
the call's `LoopInbox` to its `SipChannel`, in the order PJSIP made them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from voiceplat.telephony.events import CallMetadata, DtmfIn, DtmfMethod
from voiceplat.telephony.ingress.sip import sdp_codecs
from voiceplat.telephony.ingress.sip.channel import SipChannel
from voiceplat.telephony.ingress.sip.media import CallMediaPort, LoopInbox, PlayoutBuffer

log = logging.getLogger(__name__)
_keys = itertools.count(1)

_DTMF_METHODS: dict[int, DtmfMethod] = {
    pj.PJSUA_DTMF_METHOD_RFC2833: "rfc4733",
    pj.PJSUA_DTMF_METHOD_SIP_INFO: "sip_info",
}


class SipCall(pj.Call):
    def __init__(
        self,
        account: pj.Account,
        call_id: int,
        inbox: LoopInbox,
        on_gone: Callable[[SipCall], None],
        codecs: list[str],
    ) -> None:
        super().__init__(account, call_id)
        self.key = next(_keys)
        """Unique in the process (PJSIP reuses call ids)."""
        self.codecs = codecs
        self.inbox = inbox
        self.channel: SipChannel | None = None
        self.port: CallMediaPort | None = None
        self.playout: PlayoutBuffer | None = None
        self.audio_index: int | None = None
        self.rx_packets = 0
        self.rx_idle_s = 0.0
        self.on_hold = False
        self.gone = False
        self.admitted = False
        self.metadata: CallMetadata | None = None
        """Counted as a live call by admission (refused INVITEs are not)."""
        self.end_cause = "caller_hangup"
        self._on_gone = on_gone
        self._pending: list[tuple[Callable[..., None], tuple[Any, ...]]] = []

    def bind(self, channel: SipChannel) -> None:
        """Called in the PJSIP thread once the loop has made the call's channel."""
        self.channel = channel
        self.playout = channel.playout
        pending, self._pending = self._pending, []
        for callback, args in pending:
            callback(*args)
        if self.gone:
            self.inbox.post(channel.on_disconnected, self.end_cause)
        else:
            self._connect_media()

    def _report(self, name: str, *args: Any) -> None:
        channel = self.channel
        if channel is None:
            self._pending.append((lambda *a: self._report(name, *a), args))
            return
        self.inbox.post(getattr(channel, name), *args)

    # -- PJSIP callbacks ---------------------------------------------------------------------
    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.gone:
            self.gone = True
            # The port stays with this object, which the server deletes RETIRE_S later: the
            # bridge removes a destroyed port's slot only at its next tick (PJSIP >= 2.14).
            if self.channel is not None:
                self.inbox.post(self.channel.on_disconnected, self.end_cause)
            self._on_gone(self)

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        hold = False
        for media in info.media:
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if media.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                self.audio_index = media.index
                hold = media.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
        self.on_hold = hold
        if self.channel is not None:
            self._connect_media()

    def onCallSdpCreated(self, prm: Any) -> None:
        offer = str(prm.remSdp.wholeSdp)
        if not offer:
            return  # we make the offer (a re-INVITE without SDP): PJSIP's order is ours
        codec = sdp_codecs.choose(offer, self.codecs)
        if codec is not None:
            prm.sdp.wholeSdp = sdp_codecs.restrict(str(prm.sdp.wholeSdp), codec)

    def onDtmfDigit(self, prm: Any) -> None:
        digit = str(prm.digit).upper()
        self._report("on_dtmf_digit", DtmfIn(digit, _DTMF_METHODS.get(prm.method, "other")))

    def onCallTransferStatus(self, prm: Any) -> None:
        self._report("on_transfer_status", int(prm.statusCode), str(prm.reason), prm.finalNotify)
        if prm.finalNotify or prm.statusCode >= 300:
            prm.cont = False

    # -- media -------------------------------------------------------------------------------
    def _connect_media(self) -> None:
        if self.audio_index is None or self.gone or self.playout is None:
            return
        channel = self.channel
        assert channel is not None
        try:
            audio = self.getAudioMedia(self.audio_index)
        except pj.Error:
            return  # no media yet (e.g. a re-INVITE in progress); the next media state retries
        if self.port is None:
            self.port = CallMediaPort(
                lambda data: self.inbox.post(channel.on_audio, data), self.playout
            )
            self.port.create(f"call{self.getId()}")
        audio.startTransmit(self.port)
        self.port.startTransmit(audio)

    def retire(self) -> None:
        """Drops what refers back to this call (its media port, whose callback holds the call;
        reports waiting for a channel), so that the call and its port are freed by reference
        counting where this runs, in the PJSIP thread. Left in a reference cycle they would be
        freed by Python's cyclic garbage collector in whichever thread it runs, and pjlib aborts
        the process when called from a thread it does not know (pj_thread_this assertion)."""
        self.port = None
        self.playout = None
        self.channel = None
        self._pending.clear()

    def rtp_packets(self) -> int | None:
        """RTP packets received so far on the audio stream (None: no stream now)."""
        if self.audio_index is None or self.gone:
            return None
        try:
            return int(self.getStreamStat(self.audio_index).rtcp.rxStat.pkt)
        except pj.Error:
            return None

    # -- commands (run in the PJSIP thread) --------------------------------------------------
    def hangup_now(self, status: int = 200) -> None:
        if self.gone:
            return
        op = pj.CallOpParam(True)
        op.statusCode = status
        try:
            self.hangup(op)
        except pj.Error as exc:
            log.info("hangup of call %s: %s", self.getId(), exc.info())

    def refer(self, target: str) -> None:
        op = pj.CallOpParam(True)
        self.xfer(target, op)
