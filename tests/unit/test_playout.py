"""The simulator's playout buffer, driven by an injected clock (no sockets, no sleeps).

Most tests here are about the playout mechanics and use the ideal peer (`ideal()`: marks answered
where they were sent, no pre-buffer); the mod_audio_fork rules have their own tests at the end.
"""

from __future__ import annotations

import pytest

from voiceplat.simulator.peer_playout import Playout
from voiceplat.simulator.playout_records import Chunk

F = 0.02  # one frame


def frame(value: int, nbytes: int = 320) -> bytes:
    return bytes([value]) * nbytes


def ideal(keep_audio: bool = True) -> Playout:
    return Playout(marks="ideal", prebuffer=False, keep_audio=keep_audio)


def chunks(playout: Playout) -> list[Chunk]:
    assert playout.chunks is not None
    return playout.chunks


def received(playout: Playout) -> bytes:
    assert playout.received is not None
    return bytes(playout.received)


def test_plays_one_frame_per_tick_then_silence():
    playout = ideal()
    playout.push(frame(1) + frame(2), now=0.0)
    playout.push(frame(3), now=0.005)
    heard = [playout.tick(k * F)[0] for k in range(1, 6)]
    assert heard == [frame(1), frame(2), frame(3), frame(0), frame(0)]
    assert playout.buffered == 0
    assert playout.heard == heard
    assert received(playout) == frame(1) + frame(2) + frame(3)


def test_audio_is_not_played_before_it_arrives():
    playout = ideal()
    playout.push(frame(7), now=0.03)
    assert playout.tick(0.02)[0] == frame(0)
    assert playout.tick(0.04)[0] == frame(7)
    assert playout.answers[0].start == pytest.approx(0.04)
    assert playout.answers[0].first_arrival == pytest.approx(0.03)


def test_mark_is_answered_after_the_audio_before_it_has_played():
    playout = ideal()
    playout.push(frame(1) * 2, now=0.0)
    playout.mark("a", now=0.0)
    playout.push(frame(2), now=0.0)
    playout.mark("b", now=0.0)
    reached = [playout.tick(k * F)[1] for k in range(1, 6)]
    # Frames play at ticks 1-3; a mark is reached once the frame before it has finished.
    assert reached == [[], [], ["a"], ["b"], []]


def test_mark_on_empty_buffer_is_answered_at_the_next_tick():
    playout = ideal()
    playout.mark("now", now=0.01)
    assert playout.tick(0.02)[1] == ["now"]


def test_kill_audio_flushes_buffer_clears_pending_marks_and_cuts_the_answer():
    playout = ideal()
    playout.push(frame(1) * 5, now=0.0)
    playout.mark("end", now=0.0)
    playout.tick(0.02)
    playout.tick(0.04)
    cleared = playout.kill(now=0.05)
    assert cleared == ["end"]
    assert playout.buffered == 0
    answer = playout.answers[0]
    # The frame already handed to the line (0.04-0.06) plays out; nothing after it.
    assert answer.cut and answer.ended_by == "killAudio"
    assert answer.end == pytest.approx(0.06)
    assert answer.killed_at == pytest.approx(0.05)
    assert playout.tick(0.06) == (frame(0), [])
    assert playout.kills[0].flushed_bytes == 3 * 320


def test_kill_audio_keeps_marks_already_played():
    playout = ideal()
    playout.push(frame(1), now=0.0)
    playout.mark("played", now=0.0)
    playout.push(frame(1), now=0.0)
    playout.mark("pending", now=0.0)
    playout.tick(0.02)
    assert playout.kill(now=0.03) == ["pending"]
    assert playout.tick(0.04)[1] == ["played"]


def test_gap_inside_an_answer_is_an_underrun():
    playout = ideal()
    playout.push(frame(1), now=0.0)
    playout.tick(0.02)  # plays 0.02-0.04
    playout.tick(0.04)  # buffer empty: silence heard
    playout.push(frame(2), now=0.05)
    playout.tick(0.06)
    assert len(playout.answers) == 1
    assert playout.answers[0].underruns == 1
    assert playout.underruns[0].gap_s == pytest.approx(0.02)


def test_partial_frame_followed_by_more_audio_is_an_underrun():
    playout = ideal()
    playout.push(frame(1, 160), now=0.0)
    heard, _ = playout.tick(0.02)
    assert heard == frame(1, 160) + frame(0, 160)
    playout.push(frame(2), now=0.03)
    playout.tick(0.04)
    assert len(playout.underruns) == 1
    assert playout.underruns[0].gap_s == pytest.approx(0.01)


def test_gap_longer_than_300_ms_starts_a_new_answer():
    playout = ideal()
    playout.push(frame(1), now=0.0)
    for k in range(1, 20):
        playout.tick(k * F)
    playout.push(frame(2), now=0.39)
    playout.tick(0.40)
    assert [a.index for a in playout.answers] == [0, 1]
    assert playout.answers[0].end == pytest.approx(0.04)
    assert playout.answers[0].ended_by == "natural"
    assert playout.underruns == []


def test_continuous_stream_has_no_underruns():
    playout = ideal()
    for k in range(1, 51):
        playout.push(frame(k % 250), now=(k - 1) * F + 0.001)
        playout.tick(k * F)
    assert playout.underruns == []
    assert len(playout.answers) == 1
    assert playout.answers[0].bytes_heard == 50 * 320


def test_jitter_measures_lateness_against_a_real_time_stream():
    playout = ideal()
    for arrival in [0.0, 0.02, 0.05, 0.06]:
        playout.push(frame(1), now=arrival)
    jitter = [c.jitter_s for c in chunks(playout)]
    assert jitter[0] is None
    assert jitter[1:] == pytest.approx([0.0, 0.01, 0.0])


def test_without_keep_audio_statistics_stay():
    playout = ideal(keep_audio=False)
    for arrival in [0.0, 0.02, 0.05]:
        playout.push(frame(1), now=arrival)
    playout.tick(0.06)
    assert playout.chunks is None and playout.received is None and playout.heard is None
    assert playout.chunk_count == 3 and playout.received_bytes == 960
    assert playout.jitter == pytest.approx([0.0, 0.01])


def test_jitter_ignores_a_lead_sent_ahead_of_real_time():
    playout = ideal()
    # A 100 ms burst (the robot's lead), then paced frames: never late.
    for _ in range(5):
        playout.push(frame(1), now=0.0)
    for k in range(1, 6):
        playout.push(frame(1), now=k * F)
        playout.tick(k * F)
    assert all(c.jitter_s == pytest.approx(0.0) for c in chunks(playout)[1:])
    assert playout.max_buffered == 6 * 320


def test_jitter_reference_restarts_after_a_pause_and_after_kill_audio():
    playout = ideal()
    playout.push(frame(1), now=0.0)
    for k in range(1, 25):
        playout.tick(k * F)
    playout.push(frame(1), now=0.5)  # > 300 ms after the last audio: a new stream
    playout.kill(now=0.51)
    playout.push(frame(1), now=0.52)  # after killAudio: a new stream
    assert [c.jitter_s for c in chunks(playout)] == [None, None, None]


def test_quiet_needs_empty_buffer_and_settle_time():
    playout = ideal()
    assert playout.quiet(0.0, 0.6)
    playout.push(frame(1), now=0.0)
    assert not playout.quiet(0.0, 0.0)
    playout.tick(0.02)  # heard until 0.04
    assert not playout.quiet(0.5, 0.6)
    assert playout.quiet(0.64, 0.6)


def test_odd_byte_is_carried_to_the_next_message():
    playout = ideal()
    playout.push(b"\x01\x02\x03", now=0.0)
    playout.push(b"\x04", now=0.0)
    assert received(playout) == b"\x01\x02\x03\x04"
    assert playout.tick(0.02)[0][:4] == b"\x01\x02\x03\x04"


def test_close_marks_an_answer_cut_by_hangup():
    playout = ideal()
    playout.push(frame(1) * 10, now=0.0)
    playout.tick(0.02)
    playout.close(0.03)
    assert playout.answers[0].ended_by == "hangup"
    assert playout.answers[0].end == pytest.approx(0.03)


def test_answer_started_after():
    playout = ideal()
    playout.push(frame(1), now=0.0)
    playout.tick(0.02)
    assert playout.answer_started_after(0.0) is playout.answers[0]
    assert playout.answer_started_after(0.02) is None


# --- mod_audio_fork's own rules (lws_glue.cpp), the default peer ------------------------------


def ticks(playout: Playout, first: int, last: int) -> list[list[str]]:
    """The marks answered at ticks first..last."""
    return [playout.tick(k * F)[1] for k in range(first, last + 1)]


def test_module_prebuffers_160_ms_then_plays_once_80_ms_are_held():
    playout = Playout()
    for _ in range(7):
        playout.push(frame(1), now=0.0)  # 140 ms: below the first threshold
    assert playout.tick(F)[0] == frame(0) and playout.held == 7 * 320
    playout.push(frame(1), now=0.03)  # 160 ms: all of it plays
    assert playout.held == 0 and playout.buffered == 8 * 320
    for k in range(2, 10):
        playout.tick(k * F)
    assert playout.buffered == 0
    for _ in range(3):
        playout.push(frame(2), now=0.2)  # 60 ms: waits for more, however long that takes
    assert [playout.tick(k * F)[0] for k in range(10, 40)] == [frame(0)] * 30
    playout.push(frame(2), now=0.8)  # 80 ms
    assert playout.tick(0.82)[0] == frame(2)


def test_module_mark_waits_for_the_next_audio_and_is_placed_before_it():
    playout = Playout(prebuffer=False)
    playout.push(frame(1) * 2, now=0.0)
    playout.mark("a", now=0.0)  # in the inventory: the buffer is not empty, nothing follows
    assert ticks(playout, 1, 1) == [[]]
    playout.push(frame(2), now=0.025)  # "a" goes before this audio
    # The frame that takes the marker (the first after the audio before it) reports it.
    assert ticks(playout, 2, 4) == [[], ["a"], []]


def test_module_answers_a_mark_after_the_last_audio_once_the_buffer_is_empty():
    playout = Playout(prebuffer=False)
    playout.push(frame(1) * 2, now=0.0)
    playout.mark("end", now=0.0)
    assert ticks(playout, 1, 4) == [[], [], ["end"], []]


def test_module_holds_at_most_30_marks():
    playout = Playout(prebuffer=False)
    for i in range(32):
        playout.mark(f"m{i}", now=0.0)
    assert playout.dropped_marks == ["m30", "m31"]
    playout.push(frame(1), now=0.0)
    assert ticks(playout, 1, 1) == [[f"m{i}" for i in range(30)]]


def test_module_kill_audio_leaves_names_behind_and_later_replies_name_an_earlier_mark():
    playout = Playout(prebuffer=False)
    playout.push(frame(1) * 5, now=0.0)
    playout.mark("a", now=0.0)
    playout.push(frame(1) * 5, now=0.0)  # "a" in use, its marker 100 ms into the buffer
    playout.tick(F)
    assert playout.kill(now=0.03) == ["a"]  # its marker is flushed, its name kept as cleared
    playout.mark("b", now=0.04)
    playout.push(frame(2), now=0.04)
    playout.mark("c", now=0.04)
    playout.push(frame(2), now=0.04)
    playout.mark("d", now=0.04)  # after the last audio: waits in the inventory
    # b's marker consumes the left-over "a" silently; c's marker reports "b"; "c" and "d" stay.
    assert ticks(playout, 3, 8) == [[], ["b"], [], [], [], []]


def test_module_takes_a_minus_one_sample_for_a_marker():
    playout = Playout(prebuffer=False)
    playout.mark("a", now=0.0)
    early = b"\x00\x00" * 10 + b"\xff\xff" + b"\x00\x00" * 149
    playout.push(frame(3) + early + frame(3), now=0.0)  # marker at 0, a -1 sample at 20 ms
    playout.mark("b", now=0.0)
    playout.push(frame(4), now=0.0)  # marker for "b" after 60 ms
    # The marker of "a" reports "a"; the -1 sample reports "b", 40 ms early; b's own marker
    # finds no name left.
    assert ticks(playout, 1, 5) == [["a"], ["b"], [], [], []]


def test_module_kill_audio_keeps_the_prebuffer():
    playout = Playout()
    for _ in range(8):
        playout.push(frame(1), now=0.0)  # 160 ms: plays
    playout.push(frame(5), now=0.0)  # 20 ms: waits in the pre-buffer
    playout.tick(F)
    playout.kill(now=0.03)
    assert playout.held == 320 and playout.buffered == 0
    for _ in range(3):
        playout.push(frame(6), now=0.04)
    # The tail of the flushed answer is heard first, before the next one.
    assert [playout.tick(k * F)[0] for k in range(3, 7)] == [frame(5)] + [frame(6)] * 3


def test_no_marks_peer_never_answers():
    playout = Playout(marks="none")
    playout.mark("a", now=0.0)
    for _ in range(8):
        playout.push(frame(1), now=0.0)
    assert ticks(playout, 1, 12) == [[]] * 12
    assert playout.kill(now=0.3) == []
