"""The caller's keys in the other modes, over a `FakeChannel`: realtime (the fake realtime service
of test_realtime.py on 127.0.0.1) and llm_script (tone tracks, test_llm_script.py's robot)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tests.doubles.channel import FakeChannel
from tests.integration.test_dtmf_calls import (  # noqa: F401 (start_call is a fixture)
    CALL_CONFIG,
    HANG_S,
    OPERATOR,
    TRANSFER_TEXT,
    events,
    start_call,
)
from tests.integration.test_llm_script import make_script_robot  # noqa: F401 (a fixture)
from tests.integration.test_realtime import (  # noqa: F401 (fixtures)
    Script,
    fake_realtime,
    frequency,
    realtime_robot,
)
from voiceplat.audio.pcm import Pcm
from voiceplat.audio.resample import resample
from voiceplat.audio.wav import read_wav
from voiceplat.telephony.events import TransferResult

Fixtures = tuple[Callable[..., Any], ...]


@pytest.fixture
def realtime(fake_realtime, realtime_robot, start_call) -> Fixtures:  # noqa: F811 (imported)
    return fake_realtime, realtime_robot, start_call


@pytest.fixture
def script(make_script_robot, start_call) -> Fixtures:  # noqa: F811 (imported fixtures)
    return make_script_robot, start_call


async def until(condition: Callable[[], object]) -> None:
    """Polls `condition` (state of another process's making), bounded: only a hang reaches it."""
    async with asyncio.timeout(HANG_S):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def turns(call: Any) -> list[str]:
    """The roles of the turns recorded so far (none before the call's record opens)."""
    record = getattr(call.session, "call", None)
    return [turn.role for turn in record.turns] if record is not None else []


def user_texts(connection: Any) -> list[str]:
    items = connection.of_type("conversation.item.create")
    return [i["item"]["content"][0]["text"] for i in items if i["item"]["role"] == "user"]


# -- realtime ---------------------------------------------------------------------------------
async def test_realtime_keys_go_to_the_model_as_a_user_item_and_it_answers(
    realtime: Fixtures,
) -> None:
    serve_realtime, make_robot, call_robot = realtime
    server, url = await serve_realtime(Script(reply_hz=1000.0))
    call = await call_robot(robot_dir=make_robot(url, dtmf_inter_digit_ms=100))
    await until(lambda: turns(call))  # the greeting, said by the model
    heard_before = len(call.channel.played)
    call.channel.press("123")
    await until(lambda: turns(call)[-2:] == ["user", "robot"])

    (connection,) = server.connections
    assert user_texts(connection) == ["[DTMF 1 2 3]"]
    created = connection.of_type("response.create")
    assert not (created[-1].get("response") or {}).get("instructions")  # an answer, not a phrase
    answer = bytes(call.channel.played[heard_before:])
    assert abs(frequency(answer, 8000) - 1000.0) < 30  # the model's answer reached the caller
    call.channel.hang_up()
    record = await call.record()
    assert record["call"]["dtmf"] == "123"
    user, robot = record["turns"][-2:]
    assert (user["role"], user["text"]) == ("user", "[DTMF 1 2 3]")
    assert robot["text"] == "Ответ робота номер 1 про запись."


async def test_realtime_transfer_key_has_the_model_say_the_phrase_then_transfers(
    realtime: Fixtures,
) -> None:
    serve_realtime, make_robot, call_robot = realtime
    server, url = await serve_realtime()
    robot_dir = make_robot(url, dtmf_inter_digit_ms=100, dtmf={"0": {"transfer": OPERATOR}})
    call = await call_robot(robot_dir=robot_dir)
    await until(lambda: turns(call))
    call.channel.press("0")
    assert await call.ended() == "transferred"
    (connection,) = server.connections
    phrases = [
        e["response"]["instructions"].rsplit("\n", 1)[-1]
        for e in connection.of_type("response.create")
        if (e.get("response") or {}).get("instructions")
    ]
    assert phrases[-1] == TRANSFER_TEXT
    assert call.channel.transfers == [OPERATOR] and not call.channel.disconnected
    record = await call.record()
    assert record["call"]["transfer_target"] == OPERATOR
    assert [t["text"] for t in record["turns"]][-1] == TRANSFER_TEXT


# -- llm_script -------------------------------------------------------------------------------
def speech() -> bytes:
    """A short utterance at the call's rate, then a second of silence that ends it."""
    pcm = resample(read_wav(FIXTURES / "ru_aga.wav"), 8000)
    return pcm.data + Pcm(bytes(16000), 8000).data


async def test_llm_script_repeat_plays_the_last_track_again(script: Fixtures) -> None:
    make_robot, call_robot = script
    robot_dir = make_robot(**CALL_CONFIG, dtmf={"9": "repeat"})
    call = await call_robot(robot_dir=robot_dir)
    (greeting,) = await call.sentences(1)
    call.channel.press("9")
    again = (await call.sentences(2))[1]
    assert again == greeting == call.session.tracks.tracks["greeting"].audio.data
    call.channel.press("1")  # no action: llm_script gives keys to no model
    await until(lambda: any(e.event == "dtmf_unanswered" for e in call.session.call.log))
    call.channel.hang_up()
    record = await call.record()
    assert [t["track"] for t in record["turns"]] == ["greeting", "greeting"]
    assert events(record, "dtmf_unanswered")[0]["text"] == "[DTMF 1]"


async def test_llm_script_refused_track_transfer_says_failed_text_and_goes_on(
    script: Fixtures,
) -> None:
    make_robot, call_robot = script
    robot_dir = make_robot(
        **CALL_CONFIG, asr={"provider": "fake", "texts": ["Соедините с оператором"]}
    )
    channel = FakeChannel(transfer_answer=TransferResult(accepted=False, status=603))
    call = await call_robot(channel, robot_dir=robot_dir)
    await call.sentences(1)
    channel.say(speech())
    _, operator, failed = await call.sentences(3)
    assert operator == call.session.tracks.tracks["operator"].audio.data
    assert failed == await call.spoken("Не получилось соединить. Продолжим.")
    assert channel.transfers == ["1001"]
    channel.hang_up()
    record = await call.record()
    assert record["call"]["end_reason"] == "caller_hangup"
    assert events(record, "transfer") == [{"target": "1001", "by": "track"}]
    assert events(record, "transfer_failed")[0]["status"] == 603
    assert np.count_nonzero(np.frombuffer(failed, "<i2"))  # audio, not silence
