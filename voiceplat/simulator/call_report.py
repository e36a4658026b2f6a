"""The parts of one simulated call's report, from what `CallDriver` and its playout recorded.

`CallDriver.result()` puts them together into a `CallResult` (fields defined in `report.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceplat.simulator.peer_playout import Playout
from voiceplat.simulator.playout_records import Answer, Chunk, Kill
from voiceplat.simulator.report import (
    AnswerReport,
    ChunkReport,
    MarkReport,
    QualityReport,
    Stats,
    UtteranceReport,
    ms,
)
from voiceplat.simulator.turn_gaps import Heard, heard_after, new_turn_after, turn_at


@dataclass(slots=True)
class SentUtterance:
    """One clip the caller sent (pauses excluded), times on the call clock."""

    index: int
    kind: str
    source: str
    sent_start: float
    sent_end: float
    speech_start: float | None
    speech_end: float | None


@dataclass(slots=True)
class SentMark:
    """A mark the robot sent and how FreeSWITCH answered it (or did not)."""

    name: str
    queued: float
    pos: int = 0
    """Robot audio received before it (bytes): the audio it follows."""
    event: str = "pending"
    answered: float | None = None


def utterance_report(
    u: SentUtterance,
    answers: list[Answer],
    stretches: list[Heard] | None = None,
    kills: list[Kill] | None = None,
) -> UtteranceReport:
    """One caller utterance: the answer to it and any robot audio it talked over; with the
    robot turns heard (`stretches`, `kills`), the turn it talked over and what became of it."""
    report = UtteranceReport(
        index=u.index,
        kind=u.kind,
        source=u.source,
        sent_start_ms=ms(u.sent_start),
        sent_end_ms=ms(u.sent_end),
        speech_start_ms=None if u.speech_start is None else ms(u.speech_start),
        speech_end_ms=None if u.speech_end is None else ms(u.speech_end),
    )
    if u.speech_start is None or u.speech_end is None:
        return report
    start = u.speech_start
    reply = next((a for a in answers if a.start > start), None)
    if reply is not None:
        report.answered = True
        report.answer_index = reply.index
        report.v2v_ms = ms(reply.start - u.speech_end)
        report.v2v_arrival_ms = ms(reply.first_arrival - u.speech_end)
    over = next((a for a in answers if a.start <= start and (a.end is None or a.end > start)), None)
    if over is not None:
        report.robot_talking_at_start = True
        report.talk_over_ms = ms((over.end if over.end is not None else start) - start)
        report.kill_audio = over.cut
        if over.killed_at is not None:
            report.kill_audio_after_ms = ms(over.killed_at - start)
    if stretches:
        killed_at = over.killed_at if over is not None else None
        _turn_fields(report, start, killed_at, stretches, kills or [])
    return report


def _turn_fields(
    report: UtteranceReport,
    start: float,
    killed_at: float | None,
    stretches: list[Heard],
    kills: list[Kill],
) -> None:
    turn = turn_at(stretches, start, kills)
    report.robot_turn = turn
    kill = next((k for k in kills if k.at == killed_at), None)
    if turn is not None and kill is not None:
        again = heard_after(stretches, turn, kill.at, kill.received)
        report.resumed = again is not None
        before = [s for s in stretches if s.turn == turn and s.start <= kill.at]
        if again is not None and before:
            report.resume_after_ms = ms(max(0.0, again.start - before[-1].end))
    new = new_turn_after(stretches, start)
    if new is not None:
        report.next_turn = new.turn
        report.next_turn_start_ms = ms(new.start)


def answer_report(a: Answer) -> AnswerReport:
    """One answer as the caller heard it."""
    return AnswerReport(
        index=a.index,
        start_ms=ms(a.start),
        end_ms=None if a.end is None else ms(a.end),
        duration_ms=None if a.end is None else ms(a.end - a.start),
        first_arrival_ms=ms(a.first_arrival),
        bytes=a.bytes_heard,
        underruns=a.underruns,
        ended_by=a.ended_by,
        cut_by_kill_audio=a.cut,
    )


def mark_report(m: SentMark) -> MarkReport:
    return MarkReport(
        name=m.name,
        queued_ms=ms(m.queued),
        event=m.event,
        answered_ms=None if m.answered is None else ms(m.answered),
    )


def chunk_report(c: Chunk) -> ChunkReport:
    return ChunkReport(
        t_ms=ms(c.arrival),
        bytes=c.nbytes,
        jitter_ms=None if c.jitter_s is None else ms(c.jitter_s),
    )


def quality_report(playout: Playout, jitter_ms: list[float], dropped_frames: int) -> QualityReport:
    """The robot audio's quality as the caller heard it (`jitter_ms`: `jitter_samples_ms`)."""
    bps = playout.bytes_per_s
    return QualityReport(
        chunks=playout.chunk_count,
        robot_audio_ms=ms(playout.received_bytes / bps),
        underruns=len(playout.underruns),
        underrun_gaps_ms=[ms(u.gap_s) for u in playout.underruns],
        jitter_ms=Stats.of(jitter_ms),
        max_buffered_ms=ms(playout.max_buffered / bps),
        kill_audio=len(playout.kills),
        flushed_ms=ms(sum(k.flushed_bytes for k in playout.kills) / bps),
        dropped_caller_frames=dropped_frames,
    )


def jitter_samples_ms(playout: Playout) -> list[float]:
    """Every chunk's jitter, in milliseconds to 0.1 ms."""
    return [round(j * 1000.0, 1) for j in playout.jitter]
