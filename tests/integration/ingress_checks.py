"""The call checks every streaming ingress passes, through its simulated PBX (`simulator/peers`).

An ingress's test module gives a `start(robot_dir) -> url` coroutine function (starts the robot
with that ingress on 127.0.0.1 and returns the URL `voiceplat call` dials, e.g.
`audiosocket://127.0.0.1:<port>`) and calls each check with `make_robot`, `start` and the
`source` its call records carry:

    async def test_greeting_and_answer(make_robot, start) -> None:
        await ingress_checks.greeting_and_answer(make_robot, start, source="asterisk")

Every check asserts what the caller heard (the simulator's report) and what the robot recorded
(its JSON call record), never timing of the machine. Robots use fake providers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES, read_call_records
from voiceplat.simulator.driver import CallOptions
from voiceplat.simulator.peers.base import Dtmf, PeerStep
from voiceplat.simulator.peers.runner import run_peer_call
from voiceplat.simulator.report import CallResult
from voiceplat.simulator.script import BargeIn, Pause, Say

HELLO = FIXTURES / "ru_hello.wav"
STOP = FIXTURES / "ru_stop.wav"
AGA = FIXTURES / "ru_aga.wav"
GREETING = "Здравствуйте! Чем могу помочь?"  # the echo robot's
BYTES_PER_MS = 16  # 8 kHz, 16-bit

Start = Callable[[Path], Awaitable[str]]
MakeRobot = Callable[..., Path]


async def final_records(robot: Path, count: int = 1) -> list[dict[str, Any]]:
    """The JSON sink writes in its own task: wait until `count` calls are final (bounded, at a
    limit only a hang reaches)."""
    async with asyncio.timeout(60):
        while True:
            records = [r for r in read_call_records(robot) if r["call"]["status"] != "in_progress"]
            if len(records) >= count:
                return records
            await asyncio.sleep(0.05)


async def call(url: str, steps: list[PeerStep], **kwargs: Any) -> CallResult:
    """One call; keywords naming `CallOptions` fields go there, the rest to `run_peer_call`."""
    names = {f.name for f in fields(CallOptions)}
    options = CallOptions(**{"timeout_s": 60.0, **{k: v for k, v in kwargs.items() if k in names}})
    rest = {k: v for k, v in kwargs.items() if k not in names}
    return await run_peer_call(url, steps, options=options, **rest)


def robot_texts(record: dict[str, Any]) -> list[str]:
    return [t["text"] for t in record["turns"] if t["role"] == "robot"]


async def greeting_and_answer(
    make_robot: MakeRobot, start: Start, *, source: str, **call_kwargs: Any
) -> tuple[CallResult, dict[str, Any]]:
    """The greeting is heard whole before the caller speaks; the answer to a said WAV after it;
    the record says who, from where, and what was said. Returns both for more checks."""
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Хочу записаться к врачу"]},
        tts={"provider": "fake", "frequency": 500},
    )
    url = await start(robot)
    result = await call(url, [Say(HELLO)], **call_kwargs)

    assert result.ok, result.errors
    assert len(result.answers) == 2, result.answers  # the greeting, then the answer
    greeting_ms = len(GREETING) * 60  # the fake TTS: 60 ms per character
    assert greeting_ms - 20 <= result.answers[0].bytes / BYTES_PER_MS < greeting_ms + 200
    (utterance,) = result.utterances
    assert utterance.answered and utterance.v2v_ms is not None
    greeting_end, speech_start = result.answers[0].end_ms, utterance.speech_start_ms
    assert greeting_end is not None and speech_start is not None and greeting_end <= speech_start

    (record,) = await final_records(robot)
    info = record["call"]
    assert info["source"] == source
    assert info["call_id"] == result.call_id
    assert (info["status"], info["end_reason"]) == ("completed", "caller_hangup")
    assert [(t["role"], t["text"]) for t in record["turns"]] == [
        ("robot", GREETING),
        ("user", "Хочу записаться к врачу"),
        ("robot", "Вы сказали: Хочу записаться к врачу."),
    ]
    return result, record


async def barge_in(make_robot: MakeRobot, start: Start, *, source: str, **call_kwargs: Any) -> None:
    """Speaking over a long answer stops it: the caller hears only its start, and the record
    keeps the part heard and then the caller's words."""
    reply = "Первое предложение ответа. Второе предложение ответа. Третье предложение."
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите подробно", "Подождите"]},
        llm={"provider": "fake", "reply": reply},
        tts={"provider": "fake", "ms_per_char": 80},
    )
    url = await start(robot)
    result = await call(url, [Say(HELLO), BargeIn(STOP)], barge_in_after_s=1.0, **call_kwargs)

    assert result.ok, result.errors
    barge = result.utterances[1]
    assert barge.kind == "barge_in" and barge.robot_talking_at_start
    # The answer talked over was heard only in part: far less than its 80 ms per character.
    talked_over = [a for a in result.answers if a.start_ms < (barge.speech_start_ms or 0)][-1]
    assert talked_over.bytes / BYTES_PER_MS < len(reply) * 80 - 1000

    (record,) = await final_records(robot)
    assert record["call"]["source"] == source
    cut = next(t for t in record["turns"] if t["interrupted"])
    assert cut["role"] == "robot" and cut["text"] == reply
    assert cut["heard_text"] and len(cut["heard_text"]) < len(cut["text"])
    after = record["turns"][record["turns"].index(cut) + 1 :]
    assert [(t["role"], t["text"]) for t in after][:1] == [("user", "Подождите")]


async def dtmf(make_robot: MakeRobot, start: Start, *, source: str, **call_kwargs: Any) -> None:
    """Keys the caller presses reach the session: answered, and in the record's dtmf."""
    robot = make_robot()
    url = await start(robot)
    result = await call(url, [Dtmf("12#")], **call_kwargs)

    assert result.ok, result.errors
    (keys,) = result.utterances
    assert keys.source == "dtmf 12#" and keys.answered
    (record,) = await final_records(robot)
    assert record["call"]["source"] == source
    assert record["call"]["dtmf"] == "12#"
    assert robot_texts(record) == [GREETING, "Вы сказали: [DTMF 1 2 #]."]


async def caller_hangs_up(
    make_robot: MakeRobot, start: Start, *, source: str, **call_kwargs: Any
) -> None:
    """The caller hanging up mid-call ends the robot's call as a caller hangup."""
    robot = make_robot()
    url = await start(robot)
    # Without the hangup this script would take 40 s.
    result = await call(url, [Pause(40)], hangup_after_s=1.0, **call_kwargs)

    assert result.end_reason == "caller_hung_up" and not result.robot_hung_up
    assert result.answers and result.answers[0].bytes > 0  # the greeting had begun
    (record,) = await final_records(robot)
    assert record["call"]["source"] == source
    assert record["call"]["end_reason"] == "caller_hangup"


async def robot_hangs_up(
    make_robot: MakeRobot, start: Start, *, source: str, **call_kwargs: Any
) -> None:
    """The robot hanging up (its hangup key) ends the call on the PBX's side too."""
    robot = make_robot(dtmf={"#": "hangup"})
    url = await start(robot)
    result = await call(url, [Dtmf("#"), Pause(30)], **call_kwargs)

    assert result.robot_hung_up, (result.end_reason, result.errors)
    assert result.end_reason in ("robot_hung_up", "robot_closed")
    assert result.duration_ms < 30_000
    (record,) = await final_records(robot)
    assert record["call"]["source"] == source
    assert record["call"]["end_reason"] == "dtmf_hangup"


async def backchannel(
    make_robot: MakeRobot, start: Start, *, source: str, **call_kwargs: Any
) -> None:
    """ "ага" over the answer: the robot pauses, hears a backchannel and says the rest; all of
    the answer reaches the caller and the turn counts as heard, not cut."""
    reply = "Это довольно длинный ответ робота о ценах и часах работы."
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите подробно", "ага"]},
        llm={"provider": "fake", "reply": reply},
        tts={"provider": "fake", "ms_per_char": 80},
    )
    url = await start(robot)
    result = await call(url, [Say(HELLO), BargeIn(AGA)], barge_in_after_s=1.0, **call_kwargs)

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    assert record["call"]["source"] == source
    answer = next(t for t in record["turns"] if t["role"] == "robot" and t["text"] == reply)
    assert not answer["interrupted"] and answer["resumed"] == 1
    assert [t["text"] for t in record["turns"] if t["role"] == "user"] == ["Расскажите подробно"]
    heard_after_greeting = sum(a.bytes for a in result.answers[1:]) / BYTES_PER_MS
    assert heard_after_greeting >= len(reply) * 80 - 20


async def goodbye_heard_then_hangup(
    make_robot: MakeRobot, start: Start, *, source: str, **call_kwargs: Any
) -> None:
    """The robot's goodbye is heard to its end before the robot hangs up."""
    goodbye = "Всего доброго!"
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Спасибо, до свидания"]},
        llm={"provider": "fake", "reply": goodbye, "end_call_on": ["свидания"]},
    )
    url = await start(robot)
    result = await call(url, [Say(HELLO), Pause(10)], **call_kwargs)

    assert result.robot_hung_up, (result.end_reason, result.errors)
    heard = result.answers[-1]
    assert heard.bytes / BYTES_PER_MS >= len(goodbye) * 60 - 20  # all of it (fake TTS: 60 ms/char)
    (record,) = await final_records(robot)
    assert record["call"]["source"] == source
    assert record["call"]["end_reason"] == "robot_goodbye"
