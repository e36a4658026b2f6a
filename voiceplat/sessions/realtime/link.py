"""Realtime mode's connection to the service, across reconnects and renewals.

At most one session with the service is open at a time (`connection`; None while reconnecting).
Opening one asks for our formats and instructions (session.update) and resets the caller
audio's timeline; a closed one is reopened up to `max_reconnects` times, and `renew` opens a fresh
one at a quiet moment before the service's session expires. What the call does around that
(replies lost, the conversation replayed, the goodbye when the service is gone) is the session's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from voiceplat.providers.base import ProviderError
from voiceplat.providers.realtime.connection import (
    ProtocolRealtime,
    RealtimeClosed,
    RealtimeConnection,
)
from voiceplat.providers.realtime.protocol import AudioFormat
from voiceplat.providers.realtime.server_events import ServerEvent, SessionInfo
from voiceplat.sessions.realtime.uplink import CallerUplink
from voiceplat.storage.recorder import CallLog


class ServiceGone(Exception):
    """The service cannot go on: reconnecting is off, or the reconnects are used up."""

    def __init__(self, detail: str, *, expired: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expired = expired


class RealtimeLink:
    """The call's sessions with the service, one after another; see the module's docstring."""

    def __init__(
        self,
        provider: ProtocolRealtime,
        call: CallLog,
        uplink: CallerUplink,
        *,
        session_update: dict[str, Any],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        clock: Callable[[], float],
    ) -> None:
        """`session_update`: sent on every new session; `spawn` runs a connection's writer task
        with the call's other tasks."""
        self._provider = provider
        self._settings = provider.settings
        self._call = call
        self._uplink = uplink
        self._session_update = session_update
        self._spawn = spawn
        self._clock = clock
        self.connection: RealtimeConnection | None = None
        self.out_format: AudioFormat = provider.output_format
        """The robot audio's format, as the service last said."""
        self._expired = False
        self._renewing = False
        self._reconnects = 0

    # -- the open session --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.closed

    def send(self, event: dict[str, Any]) -> None:
        """Sends a client event; dropped while there is no open session."""
        if self.connection is not None and not self.connection.closed:
            self.connection.send(event)

    async def recv(self) -> ServerEvent:
        """The next event. Raises RealtimeClosed, RealtimeProtocolError (a bad message)."""
        assert self.connection is not None
        return await self.connection.recv()

    def caused_by(self, event_id: str | None) -> str | None:
        """The type of our event that an error names, if we remember it."""
        return self.connection.caused_by(event_id) if self.connection is not None else None

    def mark_expired(self) -> None:
        """The service said the session expired: when it closes, it is reconnected as such."""
        self._expired = True

    async def open(self, *, first: bool) -> None:
        """Opens a session with our settings. Raises ProviderError."""
        connection, info = await self._provider.connect()
        self.connection = connection
        self._uplink.timeline.reset()  # each session's input buffer starts at 0
        self._spawn(connection.run_writer())
        self._call.event("realtime_connected", session_id=info.session_id, reconnect=not first)
        self.on_session(info)
        connection.send(self._session_update)
        if first:
            self._uplink.flush(connection)  # the caller may have spoken while we connected

    def on_session(self, info: SessionInfo) -> None:
        """The formats the service uses. session.updated is the answer to our session.update;
        session.created only says its defaults, so caller audio keeps the format we asked for."""
        uplink = self._uplink
        if info.output_format is not None:
            self.out_format = info.output_format
        if info.updated and info.input_format is not None and info.input_format != uplink.format:
            uplink.set_format(info.input_format)
        if info.session_id or info.output_format:
            self._call.event(
                "realtime_session",
                updated=info.updated,
                input=uplink.format.to_json(),
                output=self.out_format.to_json(),
            )

    async def aclose(self) -> None:
        if self.connection is not None:
            await self.connection.aclose()

    # -- when it closes ----------------------------------------------------------------------
    def closed(self, closed: RealtimeClosed) -> tuple[bool, bool]:
        """The session closed: forgotten. Returns (expired, renewing): whether the service ended
        it for its age, and whether it was our renewal."""
        expired, renewing = closed.expired or self._expired, self._renewing
        self._expired = self._renewing = False
        self.connection = None
        self._call.event("realtime_closed", detail=closed.detail, expired=expired, renew=renewing)
        return expired, renewing

    async def reopen(self, detail: str, *, expired: bool, renewing: bool) -> None:
        """A new session after `closed`. Raises ServiceGone when there will be none."""
        settings = self._settings
        if not renewing and not settings.reconnect:
            raise ServiceGone(detail, expired=expired)
        while True:
            if not renewing:  # a renewal is ours: it does not use up a reconnect
                self._reconnects += 1
                if self._reconnects > settings.max_reconnects:
                    raise ServiceGone(f"{detail}; reconnects used up", expired=expired)
            try:
                await self.open(first=False)
                return
            except ProviderError as exc:
                self._call.event("error", source="realtime", detail=f"reconnect: {exc}")
                renewing = False
                await asyncio.sleep(min(2.0, 0.25 * self._reconnects))

    async def renew(self, after_s: float, quiet: Callable[[], bool]) -> None:
        """Opens a fresh session at a quiet moment once a session is `after_s` old, before the
        service's own limit ends it mid-sentence (the call's pump sees it closed and reopens)."""
        while True:
            connection = self.connection
            if connection is None or connection.closed:
                await asyncio.sleep(0.1)
                continue
            wait = connection.opened_at + after_s - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if quiet():
                self._renewing = True
                age = round(self._clock() - connection.opened_at, 1)
                self._call.event("realtime_renew", age_s=age)
                await connection.aclose()
            else:
                await asyncio.sleep(0.2)
