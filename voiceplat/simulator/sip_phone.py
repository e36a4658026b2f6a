"""The simulated caller's telephone: one pjsua2 library (a SIP user agent) for the whole process.

`SipPhone` owns the library through the robot's own `PjThread`: every pjsua2 call and callback
runs in that thread, except the media clock's frame callbacks, which touch only the call's
`PlayoutBuffer` and post frames to the event loop through a `LoopInbox` (the robot's
`voiceplat.telephony.ingress.sip.media`, reused as it is). pjsua is one per process, so the
simulator's many calls (`--calls N`) are many `PhoneCall`s on one `SipPhone`.

Its calls are `sip_phone_call.PhoneCall`s; `shared_phone` hands the one phone to every user.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pjsua2 as pj

from voiceplat.simulator.sip_phone_call import GoneListener, PhoneCall, PhoneListener
from voiceplat.telephony.ingress.sip.endpoint import CODEC_IDS, destroy_library
from voiceplat.telephony.ingress.sip.media import LoopInbox, PlayoutBuffer
from voiceplat.telephony.ingress.sip.pj_thread import PjThread

log = logging.getLogger(__name__)
PJ_ETOOMANY = 70010
MAX_CALLS = 256
"""Calls asked of pjsua; it takes no more than its build's PJSUA_MAX_CALLS (4 in pjsua2-python
2.15.1.post1's wheel)."""
"""PJSIP's status for "too many objects": every call slot of the library is taken."""
T = TypeVar("T")

_TRANSPORT_KINDS = (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP)
_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}


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


class _LogWriter(pj.LogWriter):
    def write(self, entry: Any) -> None:
        level = _LEVELS.get(entry.level, logging.DEBUG)
        logging.getLogger("pjsip.simulator").log(level, "%s", entry.msg.rstrip())


class SipPhone:
    """The process's SIP user agent: transports bound to one local address, accounts per caller
    user, any number of calls. Start it, dial, stop it; `stop()` ends calls that still run."""

    _live = False

    def __init__(self, local_host: str, codecs: list[str]) -> None:
        self.local_host = local_host
        self.codecs = self.codec_ids(codecs)
        self.thread = PjThread("pjsip-simulator")
        self.inbox: LoopInbox | None = None
        self._endpoint: pj.Endpoint | None = None
        self._log_writer = _LogWriter()
        self._accounts: dict[str, pj.Account] = {}
        self._calls: dict[int, PhoneCall] = {}
        """Every call made, by handle, over or not, until `stop()`."""
        self._handles = itertools.count(1)

    @staticmethod
    def codec_ids(codecs: list[str]) -> list[str]:
        """PJSIP's ids of codecs named as in config.json (PCMA, PCMU, G722); ValueError else."""
        unknown = [c for c in codecs if c.upper() not in CODEC_IDS]
        if unknown or not codecs:
            raise ValueError(f"codecs must be some of {', '.join(CODEC_IDS)} (got {codecs})")
        return [CODEC_IDS[c.upper()] for c in codecs]

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
        config.uaConfig.maxCalls = MAX_CALLS
        config.uaConfig.userAgent = "voiceplat-simulator"
        media = config.medConfig
        media.clockRate = media.sndClockRate = 8000
        media.channelCount = 1
        media.audioFramePtime = media.ptime = 20
        media.noVad = True  # a phone sends every frame
        media.ecTailLen = 0
        media.maxMediaPorts = 2 * MAX_CALLS + 16
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
            call.listener = GoneListener()
        # No frame callback may reach a port being deleted: stop the media clock first.
        if self._endpoint is not None:
            with contextlib.suppress(pj.Error):
                self._endpoint.audDevManager().setNoDev()
        for call in self._calls.values():
            call.port = None
        self._calls.clear()

    def _destroy(self) -> None:
        self._end_calls()
        gc.collect()  # calls a finished command's traceback still held go now too
        ep, self._endpoint = self._endpoint, None
        self.thread.set_poll(None)
        if ep is not None:
            destroy_library(ep, self._accounts.values(), "simulator SIP")
        self._accounts.clear()


@dataclass
class _Shared:
    phone: SipPhone
    loop: asyncio.AbstractEventLoop
    ready: asyncio.Task[None]
    users: int = 0


_shared: _Shared | None = None
_stopping: asyncio.Task[None] | None = None


@contextlib.asynccontextmanager
async def shared_phone(local_host: str, codecs: list[str]) -> AsyncIterator[SipPhone]:
    """The process's one `SipPhone`: started by its first user, stopped when the last is done, so
    that simultaneous `run_sip_calls` (a benchmark's) share it. Its users must want the same
    local address and codecs, from the same event loop."""
    global _shared, _stopping
    loop = asyncio.get_running_loop()
    if _shared is None and _stopping is not None:
        await asyncio.shield(_stopping)  # the previous one is still being destroyed
    state = _shared
    if state is None:
        phone = SipPhone(local_host, codecs)
        state = _shared = _Shared(phone, loop, loop.create_task(phone.start(LoopInbox(loop))))
    elif state.loop is not loop:
        raise RuntimeError("the SIP stack belongs to another event loop")
    elif (state.phone.local_host, state.phone.codecs) != (local_host, SipPhone.codec_ids(codecs)):
        raise ValueError(
            "calls made at the same time in one process share its SIP stack, and so its local "
            f"address and codecs ({state.phone.local_host}, {state.phone.codecs})"
        )
    state.users += 1
    try:
        await asyncio.shield(state.ready)
        yield state.phone
    finally:
        state.users -= 1
        if state.users == 0 and _shared is state:
            _shared = None
            if state.ready.done() and state.ready.exception() is None:
                _stopping = loop.create_task(state.phone.stop())
                await asyncio.shield(_stopping)
