"""SipChannel: what a session sees of a SIP call, driven here by a stand-in for PJSIP's clock."""

from __future__ import annotations

import asyncio

import pytest

from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import CallMetadata, DtmfIn
from voiceplat.telephony.ingress.sip.channel import SipChannel, SipControl
from voiceplat.telephony.ingress.sip.media import FRAME_BYTES, PlayoutBuffer

HANG_S = 60


class Control:
    """Records what the channel asked of PJSIP."""

    def __init__(self) -> None:
        self.hangups = 0
        self.refers: list[str] = []
        self.refer_error: Exception | None = None
        self.referred = asyncio.Event()

    async def hangup(self) -> None:
        self.hangups += 1

    async def refer(self, target: str) -> None:
        if self.refer_error is not None:
            raise self.refer_error
        self.refers.append(target)
        self.referred.set()


def make_channel(
    transfer_timeout_s: float = 15.0, hangup_tail_s: float = 0.0
) -> tuple[SipChannel, PlayoutBuffer, Control]:
    control = Control()
    channel = SipChannel(
        CallMetadata(call_id="c1", source="sip"),
        SipControl(control.hangup, control.refer, transfer_timeout_s),
        hangup_tail_s=hangup_tail_s,
    )
    return channel, channel.playout, control


def clock_ticks(buffer: PlayoutBuffer, frames: int) -> None:
    """What PJSIP's media clock does every 20 ms."""
    for _ in range(frames):
        buffer.take(FRAME_BYTES)


async def test_positions_follow_what_the_clock_took() -> None:
    channel, buffer, _ = make_channel()
    assert channel.play(b"\x01" * 1600) == (0.0, 100.0)  # 1600 bytes = 100 ms at 8 kHz
    assert channel.speaking()
    clock_ticks(buffer, 2)
    assert channel.heard_ms() == 40.0
    assert channel.queued_ms == 100.0
    clock_ticks(buffer, 3)
    assert not channel.speaking()
    assert channel.heard_ms() == 100.0


async def test_a_mark_is_answered_when_the_audio_before_it_was_played() -> None:
    channel, buffer, _ = make_channel()
    channel.play(b"\x01" * 960)
    mark = channel.mark("sentence-1")
    channel.play(b"\x01" * 960)
    clock_ticks(buffer, 2)
    await asyncio.sleep(0)  # let the inbox run (no wall-clock: one loop pass)
    assert not mark.done()
    clock_ticks(buffer, 1)
    async with asyncio.timeout(HANG_S):
        assert await mark == "playout"


async def test_barge_in_clears_marks_and_queued_audio() -> None:
    channel, buffer, _ = make_channel()
    channel.play(b"\x01" * 3200)
    mark = channel.mark("end")
    clock_ticks(buffer, 1)
    heard = await channel.clear()
    assert heard == 20.0
    assert await mark == "cleared"
    assert buffer.take(FRAME_BYTES) is None  # the caller hears silence at the next tick
    assert channel.queued_ms == 20.0


async def test_wait_heard_returns_once_played_and_raises_hangup_if_the_caller_left() -> None:
    channel, buffer, _ = make_channel()
    channel.play(b"\x01" * 640)
    waiting = asyncio.create_task(channel.wait_heard(HANG_S))
    await asyncio.sleep(0)
    assert not waiting.done()
    clock_ticks(buffer, 2)
    async with asyncio.timeout(HANG_S):
        await waiting

    channel.play(b"\x01" * 6400)
    waiting = asyncio.create_task(channel.wait_heard(HANG_S))
    await asyncio.sleep(0)
    channel.on_disconnected()
    with pytest.raises(Hangup):
        async with asyncio.timeout(HANG_S):
            await waiting


async def test_caller_hangup_ends_audio_and_closing_then_sends_no_bye() -> None:
    channel, _, control = make_channel()
    channel.on_audio(b"\x00" * 320)
    channel.on_disconnected()
    assert (await channel.audio()).data == b"\x00" * 320  # what arrived first is still read
    with pytest.raises(Hangup):
        await channel.audio()
    await channel.close()
    assert control.hangups == 0  # the caller's BYE ended it: nothing to hang up


async def test_robot_hangup_sends_bye_once() -> None:
    channel, _, control = make_channel()
    await channel.disconnect()
    await channel.close()
    assert control.hangups == 1
    assert channel.closed
    async with asyncio.timeout(HANG_S):
        await channel.run_pacer()  # the call's media life is over


async def test_digits_before_the_session_listens_are_delivered_in_order() -> None:
    channel, _, _ = make_channel()
    channel.on_dtmf_digit(DtmfIn("1"))
    channel.on_dtmf_digit(DtmfIn("#", "sip_info"))
    seen: list[DtmfIn] = []
    channel.on_dtmf(seen.append)
    channel.on_dtmf_digit(DtmfIn("2"))
    assert seen == [DtmfIn("1"), DtmfIn("#", "sip_info"), DtmfIn("2")]


async def test_transfer_accepted_only_by_a_final_2xx_notify() -> None:
    channel, _, control = make_channel()
    transfer = asyncio.create_task(channel.transfer("sip:operator@pbx"))
    async with asyncio.timeout(HANG_S):
        await control.referred.wait()
    channel.on_transfer_status(100, "Trying", False)
    await asyncio.sleep(0)
    assert not transfer.done()
    channel.on_transfer_status(200, "OK", True)
    async with asyncio.timeout(HANG_S):
        result = await transfer
    assert result.accepted and result.status == 200
    assert control.refers == ["sip:operator@pbx"]


async def test_transfer_refused_or_unanswered_is_a_result_not_an_error() -> None:
    channel, _, control = make_channel(transfer_timeout_s=0.01)
    transfer = asyncio.create_task(channel.transfer("sip:operator@pbx"))
    async with asyncio.timeout(HANG_S):
        await control.referred.wait()
    channel.on_transfer_status(603, "Decline", True)
    result = await transfer
    assert not result.accepted and result.status == 603

    unanswered = await channel.transfer("sip:operator@pbx")  # a peer that never NOTIFYs
    assert not unanswered.accepted and "no answer to REFER" in unanswered.reason

    control.refer_error = ValueError("bad URI")
    refused = await channel.transfer("not a uri")
    assert not refused.accepted and "bad URI" in refused.reason


async def test_a_refer_accepted_and_still_ringing_at_the_timeout_counts_as_transferred() -> None:
    channel, _, control = make_channel(transfer_timeout_s=0.01)
    transfer = asyncio.create_task(channel.transfer("sip:operator@pbx"))
    async with asyncio.timeout(HANG_S):
        await control.referred.wait()
    channel.on_transfer_status(100, "Trying", False)  # NOTIFY 100: the PBX rings the operator
    result = await transfer
    assert result.accepted and "REFER accepted" in result.reason


async def test_a_bare_extension_is_referred_on_the_calling_pbx() -> None:
    control = Control()
    channel = SipChannel(
        CallMetadata(call_id="c", source="sip", extra={"source_address": "10.0.0.5"}),
        SipControl(control.hangup, control.refer),
    )
    assert channel.refer_uri("1000") == "sip:1000@10.0.0.5"
    assert channel.refer_uri("operator@pbx.local") == "sip:operator@pbx.local"
    assert channel.refer_uri("sip:1000@pbx") == "sip:1000@pbx"
    assert channel.refer_uri("tel:+74951234567") == "tel:+74951234567"
    v6 = SipChannel(
        CallMetadata(call_id="c", source="sip", extra={"source_address": "fd00::5"}),
        SipControl(control.hangup, control.refer),
    )
    assert v6.refer_uri("1000") == "sip:1000@[fd00::5]"


async def test_audio_queued_before_pjsip_takes_frames_waits_in_the_buffer() -> None:
    """The greeting is queued the moment the session starts, before the port is on the bridge."""
    channel, buffer, _ = make_channel()
    channel.play(b"\x01" * 640)
    heard = channel.mark("greeting")
    assert not heard.done()  # nothing was taken yet: not heard
    clock_ticks(buffer, 2)
    async with asyncio.timeout(HANG_S):
        assert await heard == "playout"


async def test_the_robot_hangs_up_only_after_a_tail_for_the_phones_jitter_buffer() -> None:
    channel, buffer, control = make_channel(hangup_tail_s=0.05)
    channel.play(b"\x01" * 320)
    clock_ticks(buffer, 1)
    closing = asyncio.create_task(channel.disconnect())
    await asyncio.sleep(0)
    assert control.hangups == 0  # the goodbye's last frames are still playing at the phone
    async with asyncio.timeout(HANG_S):
        await closing
    assert control.hangups == 1
