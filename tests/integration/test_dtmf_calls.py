"""Whole pipeline calls with the caller's keys and transfers: the robot's fake providers, a
`FakeChannel` (tests/doubles) in place of any protocol, the JSON record read back.

What the caller heard is compared byte for byte with the fake TTS's audio of the expected text
(noise seeded by the text, so two texts never sound alike; made at 8 kHz, so nothing resamples it). Ordering comes from the channel's
events; the only time that passes is the inter-digit pause the robot waits for (100 ms).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import read_call_records
from tests.doubles.channel import FakeChannel
from voiceplat.providers.base import Message
from voiceplat.providers.llm.fake import FakeLLM
from voiceplat.robot import Robot, load_robot
from voiceplat.sessions.base import Session
from voiceplat.storage.jsonfile import JsonFileSink
from voiceplat.storage.recorder import Recorder
from voiceplat.telephony.events import TransferResult
from voiceplat.telephony.server import session_class

HANG_S = 60.0
GREETING = "Здравствуйте! Чем могу помочь?"  # the echo robot's
TRANSFER_TEXT = "Соединяю с оператором."
FAILED_TEXT = "Не получилось соединить. Продолжим."
OPERATOR = "sip:operator@pbx.local"


@dataclass
class Call:
    robot: Robot
    channel: FakeChannel
    session: Session
    recorder: Recorder
    task: asyncio.Task[str]

    async def sentences(self, count: int) -> list[bytes]:
        """The audio of the first `count` sentences the robot queued, once it has."""
        channel = self.channel
        async with asyncio.timeout(HANG_S):
            while len(channel.sentences) < count:
                channel.sentence_queued.clear()
                await channel.sentence_queued.wait()
        return channel.sentences[:count]

    async def ended(self) -> str:
        async with asyncio.timeout(HANG_S):
            return await self.task

    async def record(self) -> dict[str, Any]:
        """The call's JSON record once the call has ended and every item was written."""
        await self.ended()
        await self.recorder.aclose()
        (record,) = read_call_records(self.robot.directory)
        return record

    async def spoken(self, text: str) -> bytes:
        """What the robot's TTS makes of `text` (at the call's 8 kHz)."""
        audio = bytearray()
        async for chunk in self.robot.tts.synthesize(text):
            assert chunk.rate == 8000
            audio += chunk.data
        return bytes(audio)

    @property
    def llm(self) -> FakeLLM:
        llm = self.robot.llm
        assert isinstance(llm, FakeLLM)
        return llm


def events(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e["data"] for e in record["pipeline_log"] if e["event"] == name]


def robot_texts(record: dict[str, Any]) -> list[str]:
    return [t["text"] for t in record["turns"] if t["role"] == "robot"]


CALL_CONFIG: dict[str, Any] = {
    # At the call's rate: soxr's output varies by an LSB or two from run to run.
    "tts": {"noise": True, "ms_per_char": 10, "min_ms": 50, "sample_rate": 8000},
    "dtmf_inter_digit_ms": 100,
}


@pytest.fixture
async def start_call(make_robot: Callable[..., Path]) -> AsyncIterator[Callable[..., Any]]:
    calls: list[Call] = []

    async def start(
        channel: FakeChannel | None = None, *, robot_dir: Path | None = None, **config: Any
    ) -> Call:
        """A call to the echo robot with CALL_CONFIG and `config`, or to the robot `robot_dir`."""
        robot = load_robot(robot_dir or make_robot(**{**CALL_CONFIG, **config}))
        await robot.start()
        recorder = Recorder([JsonFileSink(robot.logs_dir)])
        await recorder.start()
        channel = channel or FakeChannel()
        session = session_class(robot.config.mode)(robot, channel, recorder)
        call = Call(robot, channel, session, recorder, asyncio.create_task(session.run()))
        calls.append(call)
        return call

    yield start
    for call in calls:
        if not call.task.done():
            call.channel.release_playout()
            call.channel.hang_up()
        await call.ended()
        await call.recorder.aclose()
        await call.robot.aclose()


async def test_a_transfer_key_says_the_phrase_then_transfers_and_the_record_says_where(
    start_call,
) -> None:
    call = await start_call(dtmf={"0": {"transfer": OPERATOR}})
    await call.sentences(1)  # the greeting
    call.channel.hold_playout()
    call.channel.press("0")
    phrase = (await call.sentences(2))[1]
    assert phrase == await call.spoken(TRANSFER_TEXT)
    assert call.channel.transfers == []  # not while the caller is still hearing the phrase
    call.channel.release_playout()

    assert await call.ended() == "transferred"
    assert call.channel.transfers == [OPERATOR]
    assert call.channel.closed and not call.channel.disconnected  # the peer carries the call on
    record = await call.record()
    assert record["call"]["end_reason"] == "transferred"
    assert record["call"]["transfer_target"] == OPERATOR
    assert record["call"]["dtmf"] == "0"
    assert events(record, "transfer") == [{"target": OPERATOR, "by": "dtmf"}]


async def test_a_refused_transfer_is_explained_and_the_call_goes_on(start_call) -> None:
    refusal = TransferResult(accepted=False, status=486, reason="Busy Here")
    call = await start_call(
        FakeChannel(transfer_answer=refusal),
        dtmf={"0": {"transfer": OPERATOR}},
        llm={"reply": "Нажато {text}."},
    )
    call.channel.press("0")
    greeting, phrase, failed = await call.sentences(3)
    assert greeting == await call.spoken(GREETING)
    assert phrase == await call.spoken(TRANSFER_TEXT)
    assert failed == await call.spoken(FAILED_TEXT)
    assert not call.task.done()
    call.channel.press("7")  # the call goes on: a key the LLM answers
    answer = (await call.sentences(4))[3]
    assert answer == await call.spoken("Нажато [DTMF 7].")
    call.channel.hang_up()

    record = await call.record()
    assert record["call"]["end_reason"] == "caller_hangup"
    assert record["call"]["transfer_target"] is None
    assert events(record, "transfer_failed") == [
        {"target": OPERATOR, "status": 486, "reason": "Busy Here"}
    ]
    assert record["call"]["dtmf"] == "07"


async def test_unmapped_keys_are_one_caller_message_the_llm_answers(start_call) -> None:
    call = await start_call(llm={"reply": "Нажато {text}."})
    await call.sentences(1)
    call.channel.press("123", method="sip_info")
    answer = (await call.sentences(2))[1]
    assert answer == await call.spoken("Нажато [DTMF 1 2 3].")
    assert call.llm.streamed[-1][-1] == Message("user", "[DTMF 1 2 3]")
    call.channel.hang_up()

    record = await call.record()
    assert record["call"]["dtmf"] == "123"
    keyed = [t for t in record["turns"] if t["role"] == "user"]
    assert [t["text"] for t in keyed] == ["[DTMF 1 2 3]"]
    keys = [e for e in record["pipeline_log"] if e["event"] == "dtmf"]
    assert [(e["data"]["digit"], e["data"]["method"]) for e in keys] == [
        ("1", "sip_info"),
        ("2", "sip_info"),
        ("3", "sip_info"),
    ]
    assert all(e["at"] for e in keys)  # each key with its time


async def test_repeat_says_the_last_answer_again(start_call) -> None:
    call = await start_call(dtmf={"9": "repeat"}, llm={"reply": "Нажато {text}."})
    await call.sentences(1)
    call.channel.press("5")
    answer = (await call.sentences(2))[1]
    call.channel.press("9")
    again = (await call.sentences(3))[2]
    assert again == answer == await call.spoken("Нажато [DTMF 5].")
    call.channel.hang_up()
    record = await call.record()
    assert robot_texts(record) == [GREETING, "Нажато [DTMF 5].", "Нажато [DTMF 5]."]


async def test_the_hangup_key_ends_the_call_at_once_with_the_robot_hanging_up(start_call) -> None:
    channel = FakeChannel()
    channel.hold_playout()  # the greeting is still playing when the key comes
    call = await start_call(channel, dtmf={"#": "hangup"})
    await call.sentences(1)
    channel.press("#")
    assert await call.ended() == "dtmf_hangup"
    assert channel.disconnected  # the robot hangs up (SIP: BYE), not just closes
    record = await call.record()
    assert record["call"]["end_reason"] == "dtmf_hangup"
    (greeting,) = record["turns"]
    assert greeting["interrupted"]


async def test_a_key_cuts_what_the_robot_is_saying(start_call) -> None:
    channel = FakeChannel()
    channel.hold_playout()
    call = await start_call(channel, llm={"reply": "Нажато {text}."})
    await call.sentences(1)
    channel.press("4")
    answer = (await call.sentences(2))[1]
    assert answer == await call.spoken("Нажато [DTMF 4].")
    assert channel.cleared == 1  # the greeting's queued audio was flushed
    channel.release_playout()
    channel.hang_up()
    record = await call.record()
    assert record["turns"][0]["interrupted"] and events(record, "barge_in")


async def test_a_key_waits_for_a_turn_that_must_be_heard(start_call) -> None:
    channel = FakeChannel()
    channel.hold_playout()
    call = await start_call(
        channel, greeting_interruptible=False, dtmf={"0": {"transfer": OPERATOR}}
    )
    await call.sentences(1)
    channel.press("0")
    channel.release_playout()  # the greeting has been heard: now the transfer
    assert await call.ended() == "transferred"
    assert channel.cleared == 0
    record = await call.record()
    assert robot_texts(record) == [GREETING, TRANSFER_TEXT]
    assert not record["turns"][0]["interrupted"]


async def test_the_llm_transfers_with_its_marker_after_the_words_before_it(start_call) -> None:
    call = await start_call(
        llm={"reply": "Передаю вас специалисту. [TRANSFER] Это не прозвучит. И это тоже."},
        transfer={"target": OPERATOR},
    )
    call.channel.press("5")
    assert await call.ended() == "transferred"
    greeting, words = call.channel.sentences  # nothing after the marker, no transfer.text
    assert greeting == await call.spoken(GREETING)
    assert words == await call.spoken("Передаю вас специалисту.")
    assert call.channel.transfers == [OPERATOR]
    record = await call.record()
    assert record["call"]["transfer_target"] == OPERATOR
    assert events(record, "transfer") == [{"target": OPERATOR, "by": "llm"}]
    assert robot_texts(record)[-1] == "Передаю вас специалисту."


async def test_the_marker_without_a_transfer_target_is_not_spoken_and_recorded(start_call) -> None:
    call = await start_call(llm={"reply": "Передаю вас специалисту. [TRANSFER] Минуту."})
    call.channel.press("5")
    greeting, words, rest = await call.sentences(3)
    assert greeting == await call.spoken(GREETING)
    assert words == await call.spoken("Передаю вас специалисту.")
    assert rest == await call.spoken("Минуту.")
    call.channel.hang_up()
    record = await call.record()
    assert record["call"]["end_reason"] == "caller_hangup" and call.channel.transfers == []
    assert events(record, "transfer_marker_ignored")[0]["reason"] == "transfer.target is not set"
