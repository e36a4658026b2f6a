"""The robot's WebSocket server: one session per FreeSWITCH connection, many calls per process.

A plain asyncio server whose protocol is `connection.CallConnection` (websockets' sans-I/O parser
and our own socket handling); no websockets server object is involved.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable

from voiceplat.errors import RobotError
from voiceplat.robot import Robot
from voiceplat.sessions.base import Session
from voiceplat.storage.live import LiveCalls
from voiceplat.storage.recorder import Recorder
from voiceplat.telephony.admission import ADMITTED, Decision, admission_for
from voiceplat.telephony.busy import refuse_call
from voiceplat.telephony.channel import CallChannel
from voiceplat.telephony.connection import CallConnection, ConnectionSettings
from voiceplat.telephony.http_routes import RobotHttp
from voiceplat.telephony.ingress.paths import (
    IngressContext,
    channel_for,
    ingress_paths,
    media_auth,
    subprotocols,
)
from voiceplat.telephony.media_auth import exposure_warnings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024
"""Far above any real audio chunk (FreeSWITCH sends ~320 bytes); a bigger message ends that call."""

SessionFactory = Callable[[Robot, CallChannel, Recorder], Session]


def session_class(mode: str) -> type[Session]:
    if mode == "pipeline":
        from voiceplat.sessions.pipeline import PipelineSession

        return PipelineSession
    if mode == "realtime":
        from voiceplat.sessions.realtime import RealtimeSession

        return RealtimeSession
    if mode == "llm_script":
        from voiceplat.sessions.llm_script import LlmScriptSession

        return LlmScriptSession
    raise RobotError(f"mode {mode!r} is not available in this version")


class RobotServer:
    """Listens for FreeSWITCH connections; each accepted WebSocket runs one call's session."""

    def __init__(self, robot: Robot, recorder: Recorder, live: LiveCalls | None = None) -> None:
        self.robot = robot
        self.recorder = recorder
        self.live = live
        """The process's live calls (a sink of `recorder`): the talk page's transcript."""
        self.session_cls = session_class(robot.config.mode)
        self.calls: set[asyncio.Task[None]] = set()
        self.ingress = IngressContext(robot, live)
        self.paths = ingress_paths(robot)
        """WebSocket ingresses by request path; any other path is mod_audio_fork's."""
        self.settings = ConnectionSettings(
            subprotocols=subprotocols(robot), max_message_bytes=MAX_MESSAGE_BYTES
        )
        self._server: asyncio.Server | None = None
        self._connections: set[CallConnection] = set()
        self._accepting = False
        # Plain HTTP on the same port: /metrics, /health, /ready, /live (http_routes.py).
        self.http = RobotHttp(robot, recorder, live, accepting=lambda: self._accepting)
        self.authorize = media_auth(robot)
        """The handshake check: each ingress's own credentials, media_auth's elsewhere (None: none
        configured); a refused handshake never makes a call."""

    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        config = self.robot.config
        tls = config.tls.context(self.robot.directory) if config.tls is not None else None
        for warning in exposure_warnings(host, config.media_auth, config.tls, self.robot.env):
            log.warning("robot %s: %s", self.robot.name, warning)
        try:
            self._server = await loop.create_server(self._new_connection, host, port, ssl=tls)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RobotError(
                    f"port {port} is in use (is another robot running?); "
                    f"set another ws_port in {self.robot.directory / 'config.json'}"
                ) from None
            raise RobotError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self._accepting = True
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def _new_connection(self) -> CallConnection:
        connection = CallConnection(
            self.settings,
            on_open=self._start_call,
            accepting=lambda: self._accepting,
            http_handler=self.http,
            authorize=self.authorize,
        )
        self._connections.add(connection)
        connection.when_closed(lambda: self._connections.discard(connection))
        return connection

    def _start_call(self, connection: CallConnection) -> None:
        # Registered here, in the reader callback, so that shutdown sees every call at once.
        # Admission decides here too: two handshakes cannot both take the last place.
        decision = admission_for(self.robot).admit()
        task = asyncio.get_running_loop().create_task(self._run_call(connection, decision))
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _run_call(self, connection: CallConnection, decision: Decision = ADMITTED) -> None:
        code, reason = 1000, ""
        admission, reserved = admission_for(self.robot), decision.admitted
        try:
            channel = channel_for(connection, self.ingress, self.paths)
            if not decision.admitted:
                # 1013 Try Again Later after the handshake, not 503 in it: mod_audio_fork makes
                # either an event for the dialplan (connect_failed with libwebsockets' text, or
                # disconnect), but only an open socket brings the caller's metadata (for the
                # record) and can carry the busy phrase.
                code, reason = 1013, f"busy: {decision.reason}"
                source = str(getattr(channel, "source", "freeswitch"))
                await refuse_call(self.robot, channel, self.recorder, decision, source)
                return
            reserved = False
            admission.starting()  # the session counts itself from its first step on
            await self.session_cls(self.robot, channel, self.recorder).run()
        except asyncio.CancelledError:
            code = 1001  # going away: the server is shutting down
            raise
        except Exception:  # Session.run() never raises; this is a bug, kept to this call
            log.exception("call failed")
            code = 1011
        finally:
            if reserved:  # ended before its session started
                admission.abandon()
            await connection.close(code, reason)  # a no-op when the session has closed it

    async def shutdown(self, grace_s: float = 30.0) -> None:
        """Stops accepting calls, lets live calls finish up to grace_s, then ends the rest."""
        self._accepting = False  # a handshake that arrives from now on is refused with 503
        if self._server is not None:
            self._server.close()  # no new TCP connections
        if self.calls:
            log.info("waiting up to %.0f s for %d live call(s)", grace_s, len(self.calls))
            _, pending = await asyncio.wait(set(self.calls), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        # Left: sockets still in their handshake or closing handshake (each bounded by a timeout).
        for connection in list(self._connections):
            if not connection.opened:
                connection.abort()
        if self._connections:
            closing = [asyncio.ensure_future(c.close(1001)) for c in self._connections]
            await asyncio.wait(closing, timeout=self.settings.close_timeout_s + 1)
        if self._server is not None:
            await self._server.wait_closed()
