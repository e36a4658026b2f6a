"""PeerMarks on its own: which marks go to the peer, and when the peer stops being trusted.

No channel, no sockets: the tests play the channel's part (what is sent, what comes back). Turn
ends are placed in the past, so no wait reaches real time.
"""

from __future__ import annotations

import asyncio

from voiceplat.telephony.events import MarkReply
from voiceplat.telephony.ingress.audio_fork import codec as audio_fork
from voiceplat.telephony.marks import MARK_SLACK_S, PeerMarks


def sent(
    marks: PeerMarks, name: str, *, ends_turn: bool = False
) -> tuple[bool, asyncio.Future[str]]:
    mark = marks.new(name, ends_turn=ends_turn)
    return marks.on_reached(mark, now=0.0, playout_end=0.0), mark.reply


async def test_an_answered_mark_resolves_with_the_peers_word() -> None:
    marks = PeerMarks(asyncio.get_running_loop().time)
    go, reply = sent(marks, "t0s1")
    assert go
    marks.on_reply(MarkReply("t0s1", "playout"))
    assert reply.result() == "playout"


async def test_no_more_than_max_marks_unanswered_are_sent() -> None:
    marks = PeerMarks(asyncio.get_running_loop().time)
    for i in range(audio_fork.MAX_MARKS):
        assert sent(marks, f"m{i}")[0]
    go, reply = sent(marks, "one-too-many")
    assert not go and reply.result() == "unsent"


async def test_a_peer_that_never_answered_is_not_sent_marks_after_a_slack_ran_out() -> None:
    loop = asyncio.get_running_loop()
    marks = PeerMarks(loop.time)
    turn_end = marks.new("drain-1", ends_turn=True)
    # Reached long ago: the playout clock and the slack have both passed already.
    assert marks.on_reached(turn_end, now=loop.time() - 10 * MARK_SLACK_S, playout_end=0.0)
    async with asyncio.timeout(5):  # only a hang gets there
        await marks.wait_heard(turn_end, loop.create_future())
    assert not turn_end.reply.done()  # the wait gave up on the mark; the peer never answered
    go, reply = sent(marks, "t1s1")
    assert not go and reply.result() == "unsent"


async def test_a_peer_that_answered_once_keeps_being_sent_marks_after_a_slack() -> None:
    loop = asyncio.get_running_loop()
    marks = PeerMarks(loop.time)
    sent(marks, "t0s1")
    marks.on_reply(MarkReply("t0s1", "playout"))
    turn_end = marks.new("drain-1", ends_turn=True)
    marks.on_reached(turn_end, now=loop.time() - 10 * MARK_SLACK_S, playout_end=0.0)
    async with asyncio.timeout(5):
        await marks.wait_heard(turn_end, loop.create_future())
    assert sent(marks, "t1s1")[0]


async def test_kill_audio_that_flushes_a_mark_in_use_stops_marks() -> None:
    marks = PeerMarks(asyncio.get_running_loop().time)
    _, reply = sent(marks, "t0s1")
    # Enough audio after it that the module plays: the mark's marker is in its playing buffer.
    marks.on_binary(audio_fork.PREBUFFER_FIRST_SAMPLES)
    marks.on_kill_audio()
    assert reply.result() == "cleared"
    go, later = sent(marks, "t1s1")
    assert not go and later.result() == "unsent"


async def test_kill_audio_of_a_mark_still_in_the_prebuffer_keeps_marks() -> None:
    marks = PeerMarks(asyncio.get_running_loop().time)
    _, reply = sent(marks, "t0s1")
    marks.on_binary(160)  # its marker waits in the pre-buffer, which the module keeps in step
    marks.on_kill_audio()
    assert reply.result() == "cleared"
    assert sent(marks, "t1s1")[0]
