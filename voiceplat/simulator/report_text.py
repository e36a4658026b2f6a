"""The call report as tables for people (`voiceplat call` without --json)."""

from __future__ import annotations

from voiceplat.simulator.report import CallResult, MultiResult, Stats


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def format_call(call: CallResult) -> str:
    lines = [
        f"call {call.call_id}  {call.url}",
        f"ended: {call.end_reason} after {call.duration_ms / 1000:.1f} s"
        + (f" (transfer to {call.transfer_target})" if call.transferred else "")
        + ("" if call.disconnect_ms is None else f" (disconnect at {call.disconnect_ms:g} ms)"),
        "",
        "caller utterances",
    ]
    rows = [
        [
            str(u.index),
            u.kind,
            u.source,
            f"{_fmt(u.speech_start_ms)}-{_fmt(u.speech_end_ms)}",
            _fmt(u.v2v_ms),
            _fmt(u.talk_over_ms),
            "-" if u.kill_audio is None else ("yes" if u.kill_audio else "no"),
        ]
        for u in call.utterances
    ]
    header = ["#", "kind", "audio", "speech ms", "v2v ms", "talk-over ms", "killAudio"]
    lines += _table(header, rows)
    lines += ["", "robot answers"]
    rows = [
        [
            str(a.index),
            f"{_fmt(a.start_ms)}-{_fmt(a.end_ms)}",
            _fmt(a.duration_ms),
            str(a.underruns),
            a.ended_by,
        ]
        for a in call.answers
    ]
    lines += _table(["#", "heard ms", "duration ms", "underruns", "ended by"], rows)
    if call.robot_turns:
        lines += ["", "robot turns (by marks)"]
        rows = [
            [
                str(t.turn),
                f"{t.start_ms:g}-{t.end_ms:g}",
                f"{t.heard_ms:g}",
                str(t.gaps),
                f"{t.starved_ms:g}",
                f"{t.starved_max_ms:g}",
                "yes" if t.cut else "no",
                str(t.resumes),
            ]
            for t in call.robot_turns
        ]
        header = ["turn", "heard ms", "audio ms", "gaps", "starved ms", "longest", "cut", "resumed"]
        lines += _table(header, rows)
    q = call.quality
    counts: dict[str, int] = {}
    for event in call.events:
        counts[event.type] = counts.get(event.type, 0) + 1
    marks = sum(1 for m in call.marks if m.event == "playout")
    cleared = sum(1 for m in call.marks if m.event == "cleared")
    dropped = sum(1 for m in call.marks if m.event == "dropped")
    pending = sum(1 for m in call.marks if m.event == "pending")
    lines += [
        "",
        f"audio: {q.chunks} chunks, {q.robot_audio_ms / 1000:.1f} s received, "
        f"underruns {q.underruns}, max buffered {q.max_buffered_ms:g} ms, "
        f"flushed {q.flushed_ms:g} ms",
        f"jitter ms: {q.jitter_ms.brief()}",
        f"starvation ms (longest gap per turn): {call.starvation_ms.brief()}",
        "events: " + (", ".join(f"{k} x{v}" for k, v in counts.items()) or "-"),
        f"marks: {marks} played, {cleared} cleared, {pending} unanswered"
        + (f", {dropped} dropped (over 30 held)" if dropped else ""),
        f"caller frames sent: {call.frames_sent}"
        + (f" ({q.dropped_caller_frames} dropped)" if q.dropped_caller_frames else ""),
    ]
    lines += [f"warning: {w}" for w in call.warnings]
    lines += [f"ERROR: {e}" for e in call.errors]
    return "\n".join(lines)


def format_multi(multi: MultiResult) -> str:
    lines = [
        f"{multi.calls_total} calls in {multi.wall_s:g} s: "
        f"{multi.completed} completed, {multi.errored} errored",
        "",
    ]
    rows: list[tuple[str, Stats]] = [
        ("v2v ms", multi.v2v_ms),
        ("talk-over ms", multi.talk_over_ms),
        ("jitter ms", multi.jitter_ms),
        ("starvation ms (per turn)", multi.starvation_ms),
        ("simulator lag ms", multi.sim_lag_ms),
    ]
    lines += _table(
        ["metric", "n", "p50", "p95", "p99", "max"],
        [
            [name, str(s.count), _fmt(s.p50), _fmt(s.p95), _fmt(s.p99), _fmt(s.max)]
            for name, s in rows
        ],
    )
    lines += [
        "",
        f"underruns: {multi.underruns} in {multi.calls_with_underruns} calls",
    ]
    lines += [f"ERROR: {e}" for e in multi.errors[:20]]
    if len(multi.errors) > 20:
        lines.append(f"... and {len(multi.errors) - 20} more errors")
    return "\n".join(lines)
