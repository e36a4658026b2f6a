"""The end of a call's record: its outcome, the final write, and the after-call work.

The outcome (`sessions/outcome.py`) is decided from the record as it stands at the end, with the
outcome a succeeded tool declared (a booking); then the record is finished, and the after-call
worker (summary, Telegram report: voiceplat/reports/after_call.py) gets the finished snapshot. The
worker never blocks: the session's end is not delayed by either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from voiceplat.sessions.outcome import decide_outcome
from voiceplat.storage.recorder import CallLog
from voiceplat.storage.records import CallSnapshot, CallStatus


class AfterCallQueue(Protocol):
    def submit(self, snapshot: CallSnapshot) -> None: ...


def close_record(
    call: CallLog,
    status: CallStatus,
    reason: str,
    ended_at: datetime,
    *,
    tool_outcome: str | None,
    after_call: AfterCallQueue | None,
) -> None:
    call.finish(
        status,
        reason,
        ended_at=ended_at,
        outcome=lambda snapshot: decide_outcome(snapshot, tool_outcome=tool_outcome),
    )
    if after_call is not None:
        after_call.submit(CallSnapshot(call=call.record, turns=call.turns, pipeline_log=call.log))
