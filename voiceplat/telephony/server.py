"""The robot's WebSocket server: one session per FreeSWITCH connection, many calls per process."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable

from websockets.asyncio.server import Server, serve

from voiceplat.errors import RobotError
from voiceplat.robot import Robot
from voiceplat.sessions.base import Session
from voiceplat.storage.recorder import Recorder
from voiceplat.telephony.audio_fork import SUBPROTOCOL
from voiceplat.telephony.channel import CallChannel
from voiceplat.telephony.connection import CallConnection

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
    def __init__(self, robot: Robot, recorder: Recorder) -> None:
        self.robot = robot
        self.recorder = recorder
        self.session_cls = session_class(robot.config.mode)
        self.calls: set[asyncio.Task[object]] = set()
        self._server: Server | None = None

    async def _handle(self, connection: CallConnection) -> None:
        playout = self.robot.config.playout
        channel = CallChannel(connection, lead_ms=playout.lead_ms, chunk_ms=playout.chunk_ms)
        task = asyncio.current_task()
        assert task is not None
        self.calls.add(task)
        try:
            await self.session_cls(self.robot, channel, self.recorder).run()
        finally:
            self.calls.discard(task)

    async def start(self, host: str, port: int) -> Server:
        try:
            self._server = await serve(
                self._handle,
                host,
                port,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                create_connection=CallConnection,
                max_size=MAX_MESSAGE_BYTES,
                ping_interval=None,  # FreeSWITCH does not answer pings on every version
                compression=None,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RobotError(
                    f"port {port} is in use (is another robot running?); "
                    f"set another ws_port in {self.robot.directory / 'config.json'}"
                ) from None
            raise RobotError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def shutdown(self, grace_s: float = 30.0) -> None:
        """Stops accepting calls, lets live calls finish up to grace_s, then ends the rest."""
        if self._server is not None:
            self._server.close(close_connections=False)
        if self.calls:
            log.info("waiting up to %.0f s for %d live call(s)", grace_s, len(self.calls))
            _, pending = await asyncio.wait(set(self.calls), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
