"""The caller's keys in realtime mode (the rules are sessions/dtmf.py's).

Keys without an action go to the model as a user text item, "[DTMF 1 2 3]", and it is asked for a
response; the item is recorded as a caller turn, so it is replayed after a reconnect like speech.
"repeat" has the model say its last turn again verbatim; a transfer's phrases are the model's too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceplat.providers.realtime import protocol
from voiceplat.sessions.dtmf import last_robot_turn

if TYPE_CHECKING:
    from voiceplat.sessions.realtime.session import RealtimeSession


class RealtimeKeyActions:
    def __init__(self, session: RealtimeSession) -> None:
        self.session = session

    async def interrupt(self) -> None:
        await self.session.replies.interrupt(None)

    async def repeat_last(self) -> None:
        turn = last_robot_turn(self.session.call)
        if turn is None:
            self.session.call.event("dtmf_ignored", reason="the robot has said nothing yet")
            return
        self.session.say_soon(turn.text)

    async def keyed_digits(self, text: str) -> None:
        session = self.session
        now = session.clock()
        session.transcript.record_user_turn(text, now, now, None)
        if not session.link.connected:
            # Not lost: the turn is in the record, and a reconnect replays it and asks for an answer.
            session.call.event("dtmf_unanswered", text=text, reason="the service is reconnecting")
            return
        session.replies.caller_stopped(now)  # the answer's voice-to-voice time starts here
        session.link.send(protocol.message_item("user", text))
        session.link.send(protocol.response_create())

    async def transfer(self, target: str) -> None:
        await self.session.transfer(target, by="dtmf")
