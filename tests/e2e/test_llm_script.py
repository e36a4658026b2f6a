"""robots/llm_script_russian with its real models: faster_whisper hears, llama.cpp picks a track
under a GBNF grammar, the track's audio is what the caller receives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.conftest import FIXTURES, ROOT
from tests.e2e.test_real_calls import CALL_S, HANG_S, record_of, serve_copy
from tests.integration.test_llm_script import sent, track
from voiceplat.cli import main
from voiceplat.providers.base import Message
from voiceplat.robot import Robot, load_robot
from voiceplat.simulator import Say, run_call

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(600)]

NAME = "llm_script_russian"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory) -> AsyncIterator[tuple[str, Path]]:
    async for pair in serve_copy(NAME, tmp_path_factory.mktemp("script")):
        yield pair


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def robot() -> AsyncIterator[Robot]:
    loaded = load_robot(ROOT / "robots" / NAME)
    if problems := loaded.problems():
        pytest.skip("; ".join(problems))
    await loaded.start()
    yield loaded
    await loaded.aclose()


async def test_check_passes(capsys) -> None:
    assert main(["check", str(ROOT / "robots" / NAME)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("said", "track"),
    [
        ("Сколько стоит приём терапевта?", "prices"),
        ("Во сколько вы работаете в субботу?", "hours"),
        ("Какой у вас адрес?", "address"),
        ("Я хочу записаться к кардиологу.", "booking"),
        ("Спасибо, до свидания.", "goodbye"),
    ],
)
async def test_llama_cpp_chooses_under_the_grammar(robot: Robot, said: str, track: str) -> None:
    assert robot.tracks is not None
    dialog = [*robot.opening(), Message("user", said)]
    assert await robot.llm.choose(dialog, robot.tracks.ids) == track


async def test_a_caller_asking_for_prices_hears_the_prices_track(served) -> None:
    url, robot_dir = served
    result = await run_call(
        url,
        [Say(FIXTURES / "ru_question.wav")],
        metadata={"callId": "script-e2e"},
        answer_timeout_s=HANG_S,
        timeout_s=CALL_S,
    )
    assert result.ok, result.errors
    greeting, prices = track(robot_dir, "greeting"), track(robot_dir, "prices")
    assert sent(greeting, prices).fullmatch(result.robot_audio)
    assert all(
        len(h) <= a.bytes <= len(h) + 2560
        for a, h in zip(result.answers, [greeting, prices], strict=True)
    )

    record = await record_of(robot_dir, "script-e2e")
    user, answer = record["turns"][1:]
    assert "стоит" in user["text"].lower()
    assert (answer["track"], answer["error"]) == ("prices", None)
    assert answer["v2v_ms"] > 0
