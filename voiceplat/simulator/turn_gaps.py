"""Robot turns as the caller heard them: their audio found by the robot's marks, and the gaps.

The robot sends a mark after each sentence of a turn, named `t{turn}s{n}` (a name that starts
that way, e.g. `t3s2` or `t3s2r1`, counts). Robot audio received before such a mark, and after
the previous mark, belongs to that mark's turn. `t{turn}s0` is different: the robot sends it
*before* a turn's first audio, so it names what follows it, never what came before (that is the
previous turn's tail, e.g. the robot's "drain-N" pad, or a cut-off turn's last audio). Audio
that no sentence mark follows (cut by a killAudio, followed by another mark such as "drain-N" or
an `s0`, or at the end) belongs to the turn of the turn mark before it if it came in the same
stream (no pause in sending between) or that mark was `t{turn}s0`, else to no known turn. So
audio is never given to a turn whose first mark came after it. Audio of one turn need not be
contiguous: a robot that resumes an interrupted turn sends the rest with marks of the same turn.

From what the playout played (`Playout.runs`: when each stretch of stream positions was heard)
this module finds, per turn, the stretches heard and:

- starvation gaps: the caller heard nothing between two stretches of the same turn, no other
  audio in between and no killAudio (the playout ran dry while the turn was not finished),
  however long (an answer split at 300 ms gaps into two `answers` is still one turn here);
  silence samples the TTS put into the audio are audio, not gaps;
- cuts and resumes: a killAudio while the turn was heard, then its audio heard again after it
  (a resume); the time from the end of the cut audio to the resumed audio is the resume gap.

Sans-I/O and free of the report models (`report.py` imports from here).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from voiceplat.simulator.playout_records import Kill

TURN_MARK = re.compile(r"t(\d+)s(\d+)")
"""The robot's mark names (`voiceplat/sessions/turn_audio.py`): `t{turn idx}s{sentence n}`."""
EPS_S = 1e-6


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def mark_turn(name: str) -> int | None:
    """The turn a mark names, or None for a name that is not the robot's `t{idx}s{n}`."""
    match = TURN_MARK.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Run:
    """Stream bytes [pos, pos + nbytes) heard from `start`, at real time, without a break."""

    start: float
    pos: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class Heard:
    """One stretch of one turn's audio as heard (turn None: audio no turn mark followed)."""

    turn: int | None
    start: float
    end: float
    pos: int = 0
    end_pos: int = 0
    """Stream positions [pos, end_pos) it played."""


class RobotTurnReport(BaseModel):
    """One robot turn as the caller heard it (ms from call start)."""

    turn: int
    """The robot's turn index (from its marks)."""
    start_ms: float
    end_ms: float
    heard_ms: float
    """Audio of the turn that was heard."""
    gaps: int = 0
    starved_ms: float = 0.0
    """Silence heard inside the turn because the playout ran dry, in all."""
    starved_max_ms: float = 0.0
    """The longest such silence."""
    gaps_ms: list[float] = Field(default_factory=list)
    cut: bool = False
    """A killAudio flushed the turn while it was heard."""
    resumes: int = 0
    """Times its audio was heard again after a cut."""
    resume_gaps_ms: list[float] = Field(default_factory=list)
    """End of the cut audio -> start of the resumed audio, per resume."""


def _owners(
    marks: Sequence[tuple[str, int]], kills: Sequence[Kill], stream_starts: Sequence[int]
) -> tuple[list[int], list[int | None]]:
    """Who owns the received audio: ascending end positions and the turn of the audio up to
    each (from the previous one); the last one runs to the end of the stream."""
    # (position, kind, turn, s0); kind 0: a turn mark, 1: any other boundary. The sort is
    # stable, so turn marks at one position keep the order they came in (`t2s2` then `t4s0`).
    events: list[tuple[int, int, int | None, bool]] = []
    for name, pos in marks:
        match = TURN_MARK.match(name)
        if match:
            events.append((pos, 0, int(match.group(1)), match.group(2) == "0"))
        else:  # e.g. the robot's pad after a turn ("drain-N"): not a turn's sentence
            events.append((pos, 1, None, False))
    events += [(k.received, 1, None, False) for k in kills]
    # Where the robot began sending again after a pause: what came before belongs to the turn
    # that went before (e.g. a pad after a turn's last mark), not to the next turn's mark.
    events += [(p, 1, None, False) for p in stream_starts]
    events.sort(key=lambda e: (e[0], e[1]))
    ends: list[int] = []
    owners: list[int | None] = []
    prev_pos = 0
    last: tuple[int, int, bool] | None = None  # (turn, position, s0) of the last turn mark
    for pos, kind, turn, s0 in events:
        if kind == 0 and turn is not None and not s0:  # after a sentence: the audio is its turn's
            if pos > prev_pos:
                ends.append(pos)
                owners.append(turn)
                prev_pos = pos
            last = (turn, pos, False)
            continue
        # An `s0` comes before its turn's audio: what came before it is the tail of the turn
        # before (or no turn's), like audio before any other boundary.
        if pos > prev_pos:
            ends.append(pos)
            owners.append(_tail_owner(last, prev_pos, stream_starts))
            prev_pos = pos
        if turn is not None:
            last = (turn, pos, True)
    ends.append(2**62)
    owners.append(_tail_owner(last, prev_pos, stream_starts))
    return ends, owners


def _tail_owner(
    last: tuple[int, int, bool] | None, start: int, stream_starts: Sequence[int]
) -> int | None:
    """The turn of audio no turn mark followed (cut by a killAudio, followed by another mark,
    or the call ended): that of the turn mark before it when it came in the same stream of
    audio (a sentence cut short, a pad or filler) or when that mark is the turn's
    `t{turn}s0`; else no turn is known (e.g. a new turn's first sentence cut before its mark:
    the robot marks a sentence once it is queued whole)."""
    if last is None:
        return None
    turn, pos, s0 = last
    if s0:
        return turn
    i = bisect.bisect_left(stream_starts, pos)
    new_stream = i < len(stream_starts) and stream_starts[i] <= start
    return None if new_stream else turn


def heard_stretches(
    marks: Sequence[tuple[str, int]],
    runs: Sequence[Run],
    bytes_per_s: int,
    kills: Sequence[Kill] = (),
    stream_starts: Sequence[int] = (),
) -> list[Heard]:
    """Every stretch heard, in time order, cut where the turn changes. `marks`: (name, stream
    position when it arrived); `stream_starts`: positions where the robot began sending after
    a pause (`Playout.stream_starts`)."""
    ends, owners = _owners(marks, kills, stream_starts)
    out: list[Heard] = []
    for run in runs:
        pos, end = run.pos, run.pos + run.nbytes
        while pos < end:
            i = bisect.bisect_right(ends, pos)  # byte `pos` belongs to the first end > pos
            turn = owners[i]
            piece_end = min(end, ends[i])
            t0 = run.start + (pos - run.pos) / bytes_per_s
            t1 = run.start + (piece_end - run.pos) / bytes_per_s
            last = out[-1] if out else None
            if (
                last is not None
                and last.turn == turn
                and abs(last.end - t0) < EPS_S
                and last.end_pos == pos
            ):
                out[-1] = Heard(turn, last.start, t1, last.pos, piece_end)
            else:
                out.append(Heard(turn, t0, t1, pos, piece_end))
            pos = piece_end
    return out


def turn_reports(
    stretches: Sequence[Heard],
    kills: Sequence[Kill],
    marks: Sequence[tuple[str, int]],
    frame_s: float,
    stream_starts: Sequence[int] = (),
) -> list[RobotTurnReport]:
    """Per turn heard (in order of first hearing): its starvation gaps, cuts and resumes."""
    reports: dict[int, RobotTurnReport] = {}
    for piece in stretches:
        if piece.turn is None:
            continue
        report = reports.get(piece.turn)
        if report is None:
            report = reports[piece.turn] = RobotTurnReport(
                turn=piece.turn, start_ms=_ms(piece.start), end_ms=_ms(piece.end), heard_ms=0.0
            )
        report.heard_ms = round(report.heard_ms + (piece.end - piece.start) * 1000.0, 1)
        report.end_ms = _ms(piece.end)
    kill_times = sorted(k.at for k in kills)
    for previous, piece in itertools.pairwise(stretches):
        if piece.turn is None or previous.turn != piece.turn:
            continue
        if _killed_during(kill_times, previous.start, piece.start):
            continue  # cut and resumed: not starvation
        gap = piece.start - previous.end
        if gap > EPS_S:
            report = reports[piece.turn]
            report.gaps += 1
            report.gaps_ms.append(_ms(gap))
            report.starved_ms = round(report.starved_ms + gap * 1000.0, 1)
            report.starved_max_ms = max(report.starved_max_ms, _ms(gap))
    resumed_by: dict[int, Heard] = {}
    for kill in sorted(kills, key=lambda k: k.at):
        for turn in cut_turns(kill, stretches, marks, frame_s, kills, stream_starts):
            report = reports.get(turn)
            if report is None:
                continue  # flushed before any of it was heard
            report.cut = True
            before = [s for s in stretches if s.turn == turn and s.start <= kill.at]
            after = heard_after(stretches, turn, kill.at, kill.received)
            if after is None or not before:
                continue
            gap = _ms(max(0.0, after.start - before[-1].end))
            if resumed_by.get(turn) == after:  # cut again before it resumed: the later cut counts
                report.resume_gaps_ms[-1] = gap
            else:
                resumed_by[turn] = after
                report.resumes += 1
                report.resume_gaps_ms.append(gap)
    return list(reports.values())


def cut_turns(
    kill: Kill,
    stretches: Sequence[Heard],
    marks: Sequence[tuple[str, int]],
    frame_s: float,
    kills: Sequence[Kill] = (),
    stream_starts: Sequence[int] = (),
) -> set[int]:
    """The turns a killAudio cut: those whose audio it flushed, or that were being heard (the
    frame already handed to the line plays on, so up to one frame after a stretch's end)."""
    cut: set[int] = set()
    if kill.flushed_bytes:
        ends, owners = _owners(marks, kills, stream_starts)
        first = bisect.bisect_right(ends, kill.pos)
        last = bisect.bisect_right(ends, kill.pos + kill.flushed_bytes - 1)
        cut.update(t for t in owners[first : last + 1] if t is not None)
    for piece in stretches:
        if piece.turn is not None and piece.start <= kill.at <= piece.end + frame_s:
            cut.add(piece.turn)
    return cut


def _killed_during(kill_times: list[float], after: float, until: float) -> bool:
    """A killAudio at a time in (after, until]."""
    i = bisect.bisect_right(kill_times, after)
    return i < len(kill_times) and kill_times[i] <= until


def turn_at(stretches: Sequence[Heard], t: float, kills: Sequence[Kill]) -> int | None:
    """The turn the caller was hearing at `t`: one of its stretches played then, or `t` falls
    in a starvation gap inside it (the same turn before and after, no killAudio between)."""
    previous: Heard | None = None
    for piece in stretches:
        if piece.start > t:
            if previous is None or previous.turn is None or previous.turn != piece.turn:
                return None
            killed = any(previous.start < k.at <= piece.start for k in kills)
            return None if killed else piece.turn
        if t < piece.end:
            return piece.turn
        previous = piece
    return None


def heard_after(stretches: Sequence[Heard], turn: int, t: float, received: int = 0) -> Heard | None:
    """The first stretch of `turn` that started after `t` with audio from stream position
    `received` on (audio sent after a killAudio, not what the pre-buffer still held)."""
    return next(
        (s for s in stretches if s.turn == turn and s.start > t and s.end_pos > received), None
    )


def new_turn_after(stretches: Sequence[Heard], t: float) -> Heard | None:
    """The first stretch, started after `t`, of a turn not heard before `t` (the robot's next
    answer, as opposed to the rest of a turn it was already saying)."""
    old = {s.turn for s in stretches if s.start <= t}
    return next(
        (s for s in stretches if s.start > t and s.turn is not None and s.turn not in old), None
    )
