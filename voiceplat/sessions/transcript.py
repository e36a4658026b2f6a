"""The call's turns: their numbering, their records, and the dialog the robot's models are shown.

One per call, owned by the session and made when the call's record opens. Every turn, the caller's
or the robot's, gets the next index; its record goes into the call's log; what the caller said and
what the caller heard of the robot go into the dialog history. An utterance the utterance filter
dropped (noise, a hallucination) is recorded as an ignored turn but is not in the dialog: the
models never see it, and it is not the caller's last words for `caller_said_goodbye`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from voiceplat.providers.base import Message
from voiceplat.sessions.turn import RobotTurn, utcnow
from voiceplat.storage.recorder import CallLog
from voiceplat.storage.records import ToolCallRecord, TurnRecord


class CallTranscript:
    def __init__(
        self,
        call: CallLog,
        *,
        started_clock: float,
        started_wall: datetime,
        prompt: str,
        history_turns: int,
        goodbye_words: list[str],
    ) -> None:
        """`started_clock`/`started_wall`: the same moment on the session's clock and the wall
        clock; `history_turns`: how many recent messages the dialog keeps (0: none)."""
        self._call = call
        self._started_clock = started_clock
        self._started_wall = started_wall
        self._prompt = prompt
        self._history_turns = history_turns
        self._goodbye_words = goodbye_words
        self._next_idx = 0
        self.history: list[Message] = []
        """What was said, in order: the caller's words, and the robot's as far as heard."""

    def wall(self, t: float) -> datetime:
        """The wall-clock time of the session clock's `t`."""
        return self._started_wall + timedelta(seconds=t - self._started_clock)

    def peek_idx(self) -> int:
        """The index the next turn will get (nothing is allocated)."""
        return self._next_idx

    def next_idx(self) -> int:
        idx = self._next_idx
        self._next_idx += 1
        return idx

    def record_user_turn(
        self,
        text: str,
        started: float,
        ended: float,
        asr_ms: float | None,
        *,
        ignored: str | None = None,
    ) -> int:
        """Records what the caller said (`started`/`ended` on the session clock); returns its index.

        `ignored`: why the utterance is not a turn (voiceplat.turns.utterance_filter's reason); it
        is recorded with its text and that reason, and left out of the dialog history."""
        idx = self.next_idx()
        self._call.add_turn(
            TurnRecord(
                call_id=self._call.record.call_id,
                idx=idx,
                role="user",
                text=text,
                started_at=self.wall(started),
                ended_at=self.wall(ended),
                asr_ms=asr_ms,
                ignored=ignored,
            )
        )
        if ignored is None:
            self.history.append(Message("user", text))
        return idx

    def record_robot_turn(self, turn: RobotTurn) -> None:
        """Records a robot turn however it ended; the dialog gets only what the caller heard."""
        heard = turn.heard_text()
        self._call.add_turn(
            TurnRecord(
                call_id=self._call.record.call_id,
                idx=turn.idx,
                role="robot",
                text=turn.text,
                heard_text=heard if turn.interrupted else None,
                started_at=turn.started_at,
                ended_at=utcnow(),
                interrupted=turn.interrupted,
                asr_ms=turn.asr_ms,
                llm_ttft_ms=turn.llm_ttft_ms,
                tts_ttfb_ms=turn.tts_ttfb_ms,
                v2v_ms=turn.v2v_ms,
                track=turn.track,
                error=turn.error,
                # Set by the session's audio sender; a turn that never sent audio has none.
                starved_ms=getattr(turn, "starved_ms", None),
                starved_max_ms=getattr(turn, "starved_max_ms", None),
                resumed=getattr(turn, "resumed", 0) or 0,
                tool_calls=_tool_calls(turn),
            )
        )
        if heard:
            self.history.append(Message("assistant", heard))

    def dialog(self, then: Message | None = None) -> list[Message]:
        """System prompt and the recent dialog, consecutive same-role messages merged; `then` is
        a message not yet in the history (what the caller is likely to have said)."""
        history = self.history if then is None else [*self.history, then]
        recent = history[-self._history_turns :] if self._history_turns else []
        merged: list[Message] = []
        for message in recent:
            if merged and merged[-1].role == message.role:
                merged[-1] = Message(message.role, f"{merged[-1].content} {message.content}")
            else:
                merged.append(message)
        return [Message("system", self._prompt), *merged]

    def caller_said_goodbye(self) -> bool:
        """Whether the caller's last words hold one of `goodbye_words` (always, if the list is empty)."""
        words = self._goodbye_words
        if not words:
            return True
        said = next((m.content for m in reversed(self.history) if m.role == "user"), "")
        said = said.lower().replace("ё", "е")
        return any(word.lower().replace("ё", "е") in said for word in words)


def _tool_calls(turn: RobotTurn) -> list[ToolCallRecord]:
    """The tools the turn's answer called (webhooks and builtins), as recorded."""
    notes = turn.notes
    if notes is None:
        return []
    return [
        ToolCallRecord(
            name=r.name, arguments=r.arguments, ok=r.ok, result=r.result, error=r.error, ms=r.ms
        )
        for r in notes.tool_results
    ]
