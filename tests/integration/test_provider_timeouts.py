"""Whose clock bounds a provider request: the session's, or the provider's own (issue 9, defect 11).

A local model shared by every call queues requests; its `timeout_s` starts when the model starts
on the request (`bounds_own_time`), so the session must not add a timeout that counts the queue.
"""

from __future__ import annotations

from tests.integration.test_calls import HELLO, final_records
from voiceplat.providers.asr.fake import FakeASR
from voiceplat.providers.base import register
from voiceplat.simulator import Say, run_call


@register("asr", "fake_own_clock")
class OwnClockASR(FakeASR):
    """The fake ASR, declaring (as the local engines do) that it applies timeout_s itself."""

    bounds_own_time = True


async def answers(make_robot, robot_server, provider: str) -> list[tuple[str, str]]:
    # The reply comes 300 ms after the request: six times the 50 ms timeout_s, as if it had
    # waited that long in a shared model's queue.
    robot = make_robot(
        asr={"provider": provider, "texts": ["Запишите меня"], "delay_ms": 300, "timeout_s": 0.05},
        tts={"provider": "fake"},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO)], metadata={"callId": provider})
    assert result.ok, result.errors
    (record,) = await final_records(robot)
    return [(t["role"], t["text"]) for t in record["turns"]]


async def test_the_session_adds_no_timeout_to_a_provider_that_bounds_its_own_work(
    make_robot, robot_server
) -> None:
    turns = await answers(make_robot, robot_server, "fake_own_clock")
    assert ("user", "Запишите меня") in turns
    assert ("robot", "Вы сказали: Запишите меня.") in turns


async def test_the_session_times_out_a_provider_that_does_not(make_robot, robot_server) -> None:
    turns = await answers(make_robot, robot_server, "fake")
    assert ("user", "Запишите меня") not in turns
    assert turns[-1][0] == "robot" and "Вы сказали" not in turns[-1][1]
