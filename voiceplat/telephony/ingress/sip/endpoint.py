"""PJSIP's library for one process: transports, codecs, media settings, the robot's accounts.

Built and torn down in the PJSIP thread. One `SipEndpoint` per process: pjsua is a singleton.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pjsua2 as pj

from voiceplat.errors import RobotError
from voiceplat.telephony.ingress.sip.settings import SipSettings

log = logging.getLogger(__name__)

CODEC_IDS = {"PCMA": "PCMA/8000/1", "PCMU": "PCMU/8000/1", "G722": "G722/16000/1"}
_TRANSPORTS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}
_SRTP = {
    "off": pj.PJMEDIA_SRTP_DISABLED,
    "optional": pj.PJMEDIA_SRTP_OPTIONAL,
    "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
}
# PJSIP's log levels 1-5 onto Python logging's; 3 (what we ask for) is PJSIP's "info".
_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}

IncomingHandler = Callable[["RobotAccount", Any], None]
RegistrationHandler = Callable[["RobotAccount", int, str, int], None]


def pjsua_max_calls() -> int | None:
    """How many calls pjsua takes at once once initialised: its compile-time PJSUA_MAX_CALLS
    silently caps `uaConfig.maxCalls` (PyPI's pjsua2-python 2.15.1 is built with pjsua's default
    of 4). None when the binding does not export pjsua's C API."""
    try:
        library = ctypes.CDLL(pj._pjsua2.__file__)
        return int(library.pjsua_call_get_max_count())
    except (OSError, AttributeError):
        return None


class _LogWriter(pj.LogWriter):
    def write(self, entry: Any) -> None:
        level = _LEVELS.get(entry.level, logging.DEBUG)
        logging.getLogger("pjsip").log(level, "%s", entry.msg.rstrip())


class RobotAccount(pj.Account):
    """A SIP identity the robot answers as: the direct one (no registration) or an extension."""

    def __init__(
        self, name: str, on_incoming: IncomingHandler, on_registration: RegistrationHandler
    ) -> None:
        super().__init__()
        self.name = name
        self._on_incoming = on_incoming
        self._on_registration = on_registration

    def onIncomingCall(self, prm: Any) -> None:
        self._on_incoming(self, prm)

    def onRegState(self, prm: Any) -> None:
        info = self.getInfo()
        self._on_registration(self, int(prm.code), str(prm.reason), int(info.regExpiresSec))


class SipEndpoint:
    def __init__(
        self,
        settings: SipSettings,
        env: Mapping[str, str],
        robot_dir: Path,
        on_incoming: IncomingHandler,
        on_registration: RegistrationHandler,
    ) -> None:
        self.settings = settings
        self._env = env
        self._robot_dir = robot_dir
        self._on_incoming = on_incoming
        self._on_registration = on_registration
        self.endpoint: pj.Endpoint | None = None
        self.accounts: list[RobotAccount] = []
        self.listening: list[str] = []
        self.max_calls = settings.max_calls
        """Calls this PJSIP build takes at once: sip.max_calls, or less (PJSUA_MAX_CALLS)."""
        self._log_writer = _LogWriter()

    # -- start (in the PJSIP thread) ----------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        ep = pj.Endpoint()
        ep.libCreate()
        self.endpoint = ep
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0  # every SIP event comes from our own poll (pj_thread.py)
        config.uaConfig.mainThreadOnly = False
        config.uaConfig.maxCalls = s.max_calls + 8  # room to answer the extra ones 486
        config.uaConfig.userAgent = s.user_agent
        config.medConfig.clockRate = 8000  # the bridge runs at the session's rate; G.722 resampled
        config.medConfig.sndClockRate = 8000
        config.medConfig.channelCount = 1
        config.medConfig.audioFramePtime = 20
        config.medConfig.ptime = 20
        config.medConfig.noVad = True  # we send every frame: no silence suppression of our own
        config.medConfig.ecTailLen = 0
        config.medConfig.maxMediaPorts = 2 * s.max_calls + 16
        config.logConfig.level = 3
        config.logConfig.consoleLevel = 3
        config.logConfig.writer = self._log_writer
        config.logConfig.decor = 0
        try:
            ep.libInit(config)
            self.max_calls = min(s.max_calls, pjsua_max_calls() or s.max_calls)
            ep.audDevManager().setNullDev()  # no sound card: the null device's clock drives media
            self._set_codecs(ep)
            self._create_transports(ep)
            ep.libStart()
            self._create_accounts()
        except pj.Error as exc:
            self.destroy()
            raise RobotError(f"SIP cannot start: {exc.info()}") from None

    def poll(self, timeout_ms: int) -> None:
        if self.endpoint is not None:
            self.endpoint.libHandleEvents(timeout_ms)

    def _set_codecs(self, ep: pj.Endpoint) -> None:
        wanted = [CODEC_IDS[name] for name in self.settings.codecs]
        for codec in ep.codecEnum2():
            codec_id = str(codec.codecId)
            priority = 255 - wanted.index(codec_id) if codec_id in wanted else 0
            ep.codecSetPriority(codec_id, priority)

    def _create_transports(self, ep: pj.Endpoint) -> None:
        s = self.settings
        for name in s.transports:
            config = pj.TransportConfig()
            config.port = s.tls.port if name == "tls" and s.tls else s.port
            config.boundAddress = s.host
            if s.public_address:
                config.publicAddress = s.public_address
            if name == "tls" and s.tls:
                cert, key, ca = s.tls.paths(self._robot_dir)
                config.tlsConfig.certFile = str(cert)
                config.tlsConfig.privKeyFile = str(key)
                if ca is not None:
                    config.tlsConfig.CaListFile = str(ca)
                config.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
            kind = _TRANSPORTS[name] if ":" not in s.host else _TRANSPORTS[name] | 128  # IPv6 flag
            try:
                ep.transportCreate(kind, config)
            except pj.Error as exc:
                raise RobotError(
                    f"SIP cannot listen on {name} {s.host}:{config.port}: {exc.reason}"
                ) from None
            self.listening.append(f"{name} {s.host}:{config.port}")

    def _media_config(self, config: pj.AccountConfig) -> None:
        s = self.settings
        rtp = config.mediaConfig.transportConfig
        rtp.port = s.rtp_port
        rtp.portRange = s.rtp_port_range
        rtp.boundAddress = s.host
        if s.public_address:
            rtp.publicAddress = s.public_address
        config.mediaConfig.srtpUse = _SRTP[s.srtp]
        config.mediaConfig.srtpSecureSignaling = 0
        # Accept a re-INVITE's SDP as offered (hold, a new address); no session timers required.
        config.callConfig.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL

    def _create_accounts(self) -> None:
        s = self.settings
        host = s.public_address or ("127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host)
        direct = pj.AccountConfig()
        direct.idUri = f"sip:robot@{host}:{s.port}"
        self._media_config(direct)
        account = RobotAccount("direct", self._on_incoming, self._on_registration)
        account.create(direct, True)  # the default account: it takes every INVITE
        self.accounts.append(account)
        reg = s.registration
        if reg is None:
            return
        registrar_host = reg.registrar.split(":", 1)[1].split(";")[0]
        config = pj.AccountConfig()
        config.idUri = f"sip:{reg.user}@{reg.domain or registrar_host}"
        config.regConfig.registrarUri = reg.registrar
        config.regConfig.timeoutSec = reg.expires
        config.regConfig.retryIntervalSec = max(1, round(reg.retry_s))
        config.regConfig.firstRetryIntervalSec = max(1, round(min(reg.retry_s, 5)))
        config.regConfig.randomRetryIntervalSec = max(0, round(reg.retry_s / 3))
        config.regConfig.dropCallsOnFail = False
        password = reg.password(self._env)
        if password is not None:
            config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", reg.user, 0, password))
        self._media_config(config)
        account = RobotAccount("register", self._on_incoming, self._on_registration)
        account.create(config)
        self.accounts.append(account)

    # -- stop (in the PJSIP thread) ----------------------------------------------------------
    def destroy(self) -> None:
        ep, self.endpoint = self.endpoint, None
        if ep is not None:
            destroy_library(ep, self.accounts, "SIP")
        self.accounts.clear()


def destroy_library(ep: pj.Endpoint, accounts: Iterable[pj.Account], who: str) -> None:
    """Shuts the accounts down, then the library (in the PJSIP thread; calls already gone)."""
    for account in accounts:
        with contextlib.suppress(pj.Error):
            account.shutdown()
    try:
        ep.libDestroy()
    except pj.Error as exc:
        log.warning("%s shutdown: %s", who, exc.info())
