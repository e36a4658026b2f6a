"""Realtime mode's connection to the service: opening a session, caller audio up, reconnecting with
the conversation replayed when a session ends or drops, renewal at a quiet moment before it expires,
and the goodbye when the service cannot go on."""

from __future__ import annotations

import asyncio

from voiceplat.providers.base import ProviderError
from voiceplat.providers.realtime import protocol
from voiceplat.providers.realtime.connection import RealtimeClosed
from voiceplat.providers.realtime.protocol import SessionInfo
from voiceplat.sessions.base import CallEnded
from voiceplat.sessions.realtime_replies import RealtimeReplySession
from voiceplat.sessions.realtime_turns import CallerTurns
from voiceplat.sessions.realtime_uplink import CallerUplink


class RealtimeLinkSession(RealtimeReplySession):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.uplink = CallerUplink(self.rt.input_format, self.clock)
        self.callers = CallerTurns(self)
        self._in_speech = False
        self._renewing = False
        self._expired = False
        self._reconnects = 0

    async def _open(self, *, first: bool) -> None:
        link, info = await self.rt.connect()
        self.link = link
        self.uplink.timeline.reset()
        self._tasks.create_task(link.run_writer())
        self.call.event("realtime_connected", session_id=info.session_id, reconnect=not first)
        self._on_session(info)
        link.send(self.rt.session(self.robot.prompt, interrupt=self.config.barge_in.enabled))
        if first:
            self.uplink.flush(self.link)  # the caller may have spoken while we connected

    def _on_session(self, info: SessionInfo) -> None:
        """The formats the service uses. session.updated is the answer to our session.update;
        session.created only says its defaults, so caller audio keeps the format we asked for."""
        if info.output_format is not None:
            self.out_format = info.output_format
        if (
            info.updated
            and info.input_format is not None
            and info.input_format != self.uplink.format
        ):
            self.uplink.set_format(info.input_format)
        if info.session_id or info.output_format:
            self.call.event(
                "realtime_session",
                updated=info.updated,
                input=self.uplink.format.to_json(),
                output=self.out_format.to_json(),
            )

    async def _uplink(self) -> None:
        while True:
            audio = await self.channel.audio()
            self.uplink.send(audio.data, self.link)

    def _drop_pending_users(self, error: str) -> bool:
        """Caller turns whose transcript will never come are recorded without text; True if the
        caller finished one of them (see CallerTurns.drop)."""
        lost = self.callers.drop(error)
        self._in_speech = False
        return lost

    async def _recover(self, closed: RealtimeClosed) -> None:
        """The session closed: reconnect with the conversation replayed, or end the call."""
        expired, renewing = closed.expired or self._expired, self._renewing
        self._expired = self._renewing = False
        self.link = None
        self.call.event("realtime_closed", detail=closed.detail, expired=expired, renew=renewing)
        lost_answer = self._drop_live_replies()
        lost_speech = self._drop_pending_users("the realtime session closed before the transcript")
        for scripted in self._scripted:
            scripted.done.set()
        self._scripted.clear()
        if not renewing:
            if not self.rt.settings.reconnect:
                await self._cannot_go_on(closed.detail, expired=expired)
        while True:
            if not renewing:
                self._reconnects += 1
                if self._reconnects > self.rt.settings.max_reconnects:
                    await self._cannot_go_on(f"{closed.detail}; reconnects used up", expired)
            try:
                await self._open(first=False)
                break
            except ProviderError as exc:
                self.call.event("error", source="realtime", detail=f"reconnect: {exc}")
                renewing = False
                await asyncio.sleep(min(2.0, 0.25 * self._reconnects))
        self._replay()
        if lost_speech and not self._closing:
            self._say(self.config.fallback_text, interruptible=True)
        elif (lost_answer or self._unanswered()) and not self._closing:
            self._send(protocol.response_create())

    def _conversation(self) -> list[tuple[str, str]]:
        """(role, text) so far in turn order: recorded turns, and replies still playing."""
        said: dict[int, tuple[str, str]] = {
            t.idx: ("user" if t.role == "user" else "assistant", t.heard_text or t.text)
            for t in self.call.turns
        }
        for reply in self._replies.values():
            if reply.turn is not None and reply.turn.idx not in said:
                said[reply.turn.idx] = ("assistant", reply.text)
        return [(role, text.strip()) for _, (role, text) in sorted(said.items()) if text.strip()]

    def _replay(self) -> None:
        """The conversation so far, as text items: the new session continues where the old ended."""
        items = self._conversation()
        keep = self.config.history_turns
        for role, text in items[-keep:] if keep else []:
            self._send(protocol.message_item(role, text))  # type: ignore[arg-type]
        self.call.event("realtime_replayed", items=min(len(items), keep))
        self.uplink.flush(self.link)

    def _unanswered(self) -> bool:
        items = self._conversation()
        return bool(items) and items[-1][0] == "user"

    async def _renewer(self, after_s: float) -> None:
        """Opens a fresh session at a quiet moment before the service's session expires."""
        while True:
            link = self.link
            if link is None or link.closed:
                await asyncio.sleep(0.1)
                continue
            wait = link.opened_at + after_s - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if self.speaker is None and not (self._in_speech or self._scripted or self._closing):
                self._renewing = True
                self.call.event("realtime_renew", age_s=round(self.clock() - link.opened_at, 1))
                await link.aclose()  # the pump sees it closed and reconnects
            else:
                await asyncio.sleep(0.2)

    async def _cannot_go_on(self, detail: str, expired: bool) -> None:
        """The service is gone for good: say so (tts) if we can, then hang up."""
        self._closing = True
        reason = "realtime_expired" if expired else "realtime_unavailable"
        self.call.event(reason, detail=detail)
        text = self.config.max_call_text if expired else self.rt.settings.unavailable_text
        if self.has_tts:
            await self.speak([text], interruptible=False)
        raise CallEnded(reason)  # _finish hangs up
