"""The robot's SIP server: PJSIP answers INVITEs it admits, and each call runs one session.

Two halves. In the PJSIP thread: admission (allow_from, digest auth, max_calls, INVITE rate),
answering, RTP timeouts, the calls' PJSIP objects. In the event loop: each admitted call's
`SipChannel` and session, exactly like a WebSocket call's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pjsua2 as pj

from voiceplat.errors import RobotError
from voiceplat.providers.worker import saturated
from voiceplat.robot import Robot
from voiceplat.storage.recorder import Recorder
from voiceplat.telephony.events import CallMetadata
from voiceplat.telephony.ingress.sip import message
from voiceplat.telephony.ingress.sip.admission import Admission
from voiceplat.telephony.ingress.sip.call import SipCall
from voiceplat.telephony.ingress.sip.channel import SipChannel, SipControl
from voiceplat.telephony.ingress.sip.endpoint import RobotAccount, SipEndpoint
from voiceplat.telephony.ingress.sip.media import LoopInbox
from voiceplat.telephony.ingress.sip.pj_thread import PjThread
from voiceplat.telephony.ingress.sip.settings import SipSettings
from voiceplat.telephony.server import session_class

log = logging.getLogger(__name__)

RTP_CHECK_S = 1.0
DESTROY_WAIT_S = 2.0
RETIRE_S = 1.0
NOT_RETRIED_REGISTRATION = frozenset({401, 403, 404, 407})
COUNTERS_LOG_S = 60.0


class SipServer:
    def __init__(
        self, robot: Robot, recorder: Recorder, settings: SipSettings, env: Mapping[str, str]
    ) -> None:
        self.robot = robot
        self.recorder = recorder
        self.settings = settings
        self.session_cls = session_class(robot.config.mode)
        try:
            self.admission = Admission.from_settings(settings, env)
        except ValueError as exc:  # sip.auth's password is not set
            raise RobotError(str(exc)) from None
        self._env = env
        self.calls: set[asyncio.Task[None]] = set()
        self.thread = PjThread()
        self.endpoint: SipEndpoint | None = None
        self.inbox: LoopInbox
        # PJSIP thread only:
        self._live: dict[int, SipCall] = {}
        self._graveyard: deque[tuple[float, SipCall]] = deque()
        """Ended calls kept alive a while: see _call_gone."""
        self._ringing: list[tuple[float, SipCall]] = []
        self._next_rtp_check = 0.0
        self._next_counters_log = time.monotonic() + COUNTERS_LOG_S
        self._last_refused: dict[str, int] = {}
        self._accepting = True

    # -- start and stop (event loop) ----------------------------------------------------------
    async def start(self) -> list[str]:
        """Starts PJSIP; returns what it listens on (e.g. ["udp 0.0.0.0:5060", ...])."""
        self.inbox = LoopInbox(asyncio.get_running_loop())
        self.thread.start()
        try:
            await self.thread.run(self._start_endpoint)
        except BaseException:
            self.thread.stop()
            raise
        assert self.endpoint is not None
        return list(self.endpoint.listening)

    @property
    def max_calls(self) -> int:
        """Calls taken at once: sip.max_calls, capped by what this PJSIP build takes."""
        return self.endpoint.max_calls if self.endpoint else self.settings.max_calls

    def _start_endpoint(self) -> None:
        endpoint = SipEndpoint(
            self.settings,
            self._env,
            Path(self.robot.directory),
            on_incoming=self._on_incoming,
            on_registration=self._on_registration,
        )
        endpoint.start()
        self.endpoint = endpoint
        if endpoint.max_calls < self.settings.max_calls:
            log.warning(
                "this PJSIP build takes at most %d calls at once (PJSUA_MAX_CALLS); sip.max_calls "
                "%d is capped to it, and more INVITEs get 486 Busy Here (see README, Calls over SIP)",
                endpoint.max_calls,
                self.settings.max_calls,
            )
            self.admission.limit_calls(endpoint.max_calls)
        self.thread.set_poll(self._poll)

    async def shutdown(self, grace_s: float = 30.0) -> None:
        """Refuses new calls (503), lets live ones finish up to grace_s, hangs up the rest."""
        await self.thread.run(self._stop_accepting)
        if self.calls:
            _, pending = await asyncio.wait(set(self.calls), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        await self.thread.run(self._destroy)
        self.thread.stop()

    def _stop_accepting(self) -> None:
        self._accepting = False

    def _destroy(self) -> None:
        endpoint = self.endpoint
        if endpoint is not None and self._live:
            self._hang_up_all()
            deadline = time.monotonic() + DESTROY_WAIT_S
            while self._live and time.monotonic() < deadline:
                endpoint.poll(10)  # let the BYEs go out and the calls disconnect
        # Call objects must be gone before the library is: their destructor asserts after it.
        # First stop the media clock, so that no frame callback reaches a port being deleted.
        if endpoint is not None and endpoint.endpoint is not None:
            with contextlib.suppress(pj.Error):
                endpoint.endpoint.audDevManager().setNoDev()
        self._retire_all()
        self._live.clear()
        self._ringing.clear()
        self._graveyard.clear()
        gc.collect()
        if endpoint is not None:
            endpoint.destroy()
        self.thread.set_poll(None)

    # Methods of their own: a loop variable in _destroy would keep the last call alive past
    # endpoint.destroy(), and a Call destroyed after the library asserts.
    def _hang_up_all(self) -> None:
        for call in list(self._live.values()):
            call.hangup_now(503)

    def _retire_all(self) -> None:
        for call in [*self._live.values(), *(call for _, call in self._graveyard)]:
            call.retire()

    # -- PJSIP thread ---------------------------------------------------------------------------
    def _poll(self, timeout_ms: int) -> None:
        assert self.endpoint is not None
        self.endpoint.poll(timeout_ms)
        now = time.monotonic()
        graveyard = self._graveyard
        while graveyard and graveyard[0][0] <= now:
            graveyard.popleft()[1].retire()  # freed here, in the PJSIP thread
        if self._ringing:
            self._answer_due(now)
        if now >= self._next_rtp_check:
            self._next_rtp_check = now + RTP_CHECK_S
            self._check_rtp(RTP_CHECK_S)
        if now >= self._next_counters_log:
            self._next_counters_log = now + COUNTERS_LOG_S
            self._log_counters()

    def _log_counters(self) -> None:
        counters = self.admission.counters()
        refused = {k: v for k, v in counters.items() if k.startswith("rejected_") and v}
        if refused != self._last_refused:
            self._last_refused = refused
            log.info("SIP INVITEs refused so far: %s", refused)

    def _check_rtp(self, elapsed_s: float) -> None:
        limit = self.settings.rtp_timeout_s
        for call in list(self._live.values()):
            packets = call.rtp_packets()
            if packets is None or call.on_hold or packets != call.rx_packets:
                call.rx_packets = packets or call.rx_packets
                call.rx_idle_s = 0.0
                continue
            call.rx_idle_s += elapsed_s
            if call.rx_idle_s >= limit:
                log.warning("SIP call %s: no RTP for %.0f s, hanging up", call.getId(), limit)
                call.end_cause = "rtp_timeout"
                call.hangup_now()

    def _on_registration(self, account: RobotAccount, code: int, reason: str, expires: int) -> None:
        if 200 <= code < 300:
            if expires > 0:
                log.info("SIP registered as %s (%d %s, %d s)", account.name, code, reason, expires)
            else:
                log.info("SIP unregistered (%d %s)", code, reason)
        elif code in NOT_RETRIED_REGISTRATION:
            # PJSIP retries only timeouts, 5xx/6xx and transport errors: refused credentials
            # stay refused until the config changes.
            log.error(
                "SIP registration refused: %d %s; not retried: check sip.register and its "
                "password variable, then restart",
                code,
                reason,
            )
        else:
            retry = self.settings.registration.retry_s if self.settings.registration else 0
            log.warning(
                "SIP registration failed: %d %s; retrying in about %.0f s", code, reason, retry
            )

    def _on_incoming(self, account: RobotAccount, prm: Any) -> None:
        call = SipCall(account, prm.callId, self.inbox, self._call_gone, list(self.settings.codecs))
        self._live[call.key] = call
        whole = str(prm.rdata.wholeMsg)
        start_line, headers = message.split_message(whole)
        source = message.source_host(str(prm.rdata.srcAddress))
        refusal = self._refusal(source, headers)
        if refusal is not None:
            status, reason, extra_headers = refusal
            self._reject(call, status, reason, extra_headers)
            return
        call.admitted = True
        self.admission.call_started()
        call.metadata = self._metadata(call, start_line, headers, source)
        self._answer(call, 180)
        delay_s = self.settings.answer_after_ms / 1000.0
        if delay_s:
            self._ringing.append((time.monotonic() + delay_s, call))
        else:
            self._answer_ringing(call)

    def _answer_ringing(self, call: SipCall) -> None:
        """Answers a call that is still ringing (the caller may have cancelled) and starts its
        session: a session never runs for a call that was not answered."""
        if call.gone or call.metadata is None:
            return
        self._answer(call, 200)
        self.inbox.post(self._start_call, call.key, call.metadata)

    def _answer_due(self, now: float) -> None:
        due = [call for at, call in self._ringing if at <= now]
        if due:
            self._ringing = [(at, call) for at, call in self._ringing if at > now]
            for call in due:
                self._answer_ringing(call)

    def _refusal(
        self, source: str, headers: dict[str, list[str]]
    ) -> tuple[int, str, dict[str, str]] | None:
        if not self._accepting:
            return 503, "Service Unavailable", {"Retry-After": "30"}
        verdict = self.admission.check(
            source,
            authorization=message.header(headers, "authorization"),
            overloaded=bool(saturated()),
        )
        if verdict.allowed:
            return None
        # Per INVITE only at debug level: a scanner sends thousands. The counters are logged
        # once a minute instead (_log_counters).
        log.debug("SIP INVITE from %s refused: %d %s", source, verdict.status, verdict.detail)
        return verdict.status, verdict.reason, verdict.headers

    def _metadata(
        self, call: SipCall, start_line: str, headers: dict[str, list[str]], source: str
    ) -> CallMetadata:
        info = call.getInfo()
        asserted = message.header(headers, "p-asserted-identity")
        from_value = message.header(headers, "from") or str(info.remoteUri)
        to_value = message.header(headers, "to") or str(info.localUri)
        uri = message.request_uri(start_line)
        extra = {
            "sip_call_id": message.header(headers, "call-id") or str(info.callIdString),
            "request_uri": uri,
            "from": from_value,
            "to": to_value,
            "source_address": source,
        }
        if name := message.display_name(asserted or from_value):
            extra["caller_name"] = name
        return CallMetadata(
            call_id=str(info.callIdString),
            caller=message.uri_user(asserted) or message.uri_user(from_value),
            callee=message.uri_user(to_value) or message.uri_user(uri),
            source="sip",
            extra={k: v for k, v in extra.items() if v},
        )

    def _answer(self, call: SipCall, status: int) -> None:
        op = pj.CallOpParam(True)
        op.statusCode = status
        try:
            call.answer(op)
        except pj.Error as exc:
            log.warning("SIP answer failed: %s", exc.info())

    def _reject(
        self, call: SipCall, status: int, reason: str, extra_headers: Mapping[str, str]
    ) -> None:
        op = pj.CallOpParam(True)
        op.statusCode = status
        op.reason = reason
        for name, value in extra_headers.items():
            sip_header = pj.SipHeader()
            sip_header.hName = name
            sip_header.hValue = value
            op.txOption.headers.append(sip_header)
        try:
            # answer(), not hangup(): in onIncomingCall hangup() drops txOption's headers
            # (the 401's WWW-Authenticate, the 503's Retry-After); a final answer >= 300 refuses.
            call.answer(op)
        except pj.Error as exc:
            log.warning("SIP reject failed: %s", exc.info())

    def _call_gone(self, call: SipCall) -> None:
        if self._live.pop(call.key, None) is not None and call.admitted:
            self.admission.call_ended()
        # Not deleted now: inside its own callback that is not allowed, and PJSIP's conference
        # bridge removes the call's media port a tick after the port is destroyed, during which
        # the media clock could still call into a half-destroyed Python port.
        self._graveyard.append((time.monotonic() + RETIRE_S, call))

    def _bind(self, key: int, channel: SipChannel) -> None:
        call = self._live.get(key)
        if call is None:  # gone while the loop made its channel
            self.inbox.post(channel.on_disconnected, "caller_hangup")
        else:
            call.bind(channel)

    def _hangup(self, key: int) -> None:
        call = self._live.get(key)
        if call is not None:
            call.hangup_now()

    def _refer(self, key: int, target: str) -> None:
        call = self._live.get(key)
        if call is None:
            raise RuntimeError("the call has ended")
        call.refer(target)

    # -- event loop -------------------------------------------------------------------------
    def _start_call(self, key: int, metadata: CallMetadata) -> None:
        # The loop side holds no pj.Call, only its key: a Call object must never outlive the
        # library (its destructor asserts), and only the PJSIP thread may touch it.
        thread = self.thread
        control = SipControl(
            hangup=lambda: thread.run(lambda: self._hangup(key)),
            refer=lambda target: thread.run(lambda: self._refer(key, target)),
            transfer_timeout_s=self.settings.transfer_timeout_s,
        )
        channel = SipChannel(metadata, control, self.inbox)
        thread.submit(lambda: self._bind(key, channel))
        task = asyncio.get_running_loop().create_task(self._run_call(channel))
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _run_call(self, channel: SipChannel) -> None:
        try:
            await self.session_cls(self.robot, channel, self.recorder).run()
        except Exception:  # Session.run() never raises; this is a bug, kept to this call
            log.exception("SIP call failed")
        finally:
            await channel.close()
