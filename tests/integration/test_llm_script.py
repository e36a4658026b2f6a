"""llm_script calls over a real WebSocket: the simulated caller, fake ASR/LLM, tone tracks.

Each track is a tone of its own frequency written at 16 kHz; the robot resamples it to 8 kHz at load.
What the caller received is compared byte for byte with the track read the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tests.integration.test_calls import final_records
from tests.integration.test_openai_llm import FakeOpenAIServer, stream, tokens_then_done
from voiceplat.audio.pcm import Pcm
from voiceplat.audio.wav import read_wav, write_wav
from voiceplat.cli import main
from voiceplat.errors import RobotError
from voiceplat.robot import load_robot
from voiceplat.simulator import BargeIn, Pause, Say, run_call
from voiceplat.telephony.ingress.audio_fork.codec import without_markers

SPEECH = FIXTURES / "ru_aga.wav"  # short speech: the fake ASR decides what was said
STOP = FIXTURES / "ru_stop.wav"  # long speech, to talk over the robot
HELLO = FIXTURES / "ru_hello.wav"

LONG_TEXT = " ".join(f"Слово{i}" for i in range(40))
TRACKS: list[dict[str, Any]] = [
    {"id": "greeting", "text": "Здравствуйте!", "description": "greeting"},
    {"id": "hours", "text": "Мы работаем с восьми.", "description": "opening hours"},
    {"id": "prices", "text": "Приём стоит тысячу.", "description": "prices"},
    {"id": "goodbye", "text": "До свидания!", "description": "goodbye", "ends_call": True},
    {"id": "operator", "text": "Соединяю.", "description": "a person", "transfer": "1001"},
    {"id": "long", "text": LONG_TEXT, "description": "a long story"},
    {
        "id": "notice",
        "text": "Звонок записывается.",
        "description": "legal",
        "uninterruptible": True,
    },
    {"id": "fallback", "text": "Не расслышал.", "description": "unclear"},
]
SECONDS = {"long": 3.0, "notice": 2.0}
CHOICES = {
    "стоит": "prices",
    "работаете": "hours",
    "свидания": "goodbye",
    "оператор": "operator",
    "подробно": "long",
    "подождите": "hours",
    "правила": "notice",
    "погода": "weather",  # not a track
}


def tone(frequency: float, seconds: float, rate: int = 16000) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm((8000 * np.sin(2 * np.pi * frequency * t)).astype("<i2").tobytes(), rate)


@pytest.fixture
def make_script_robot(make_robot) -> Callable[..., Path]:
    """An llm_script robot in tmp: the echo robot's fake providers, tone tracks, tracks.json."""

    def make(tracks: list[dict[str, Any]] = TRACKS, **overrides: Any) -> Path:
        settings: dict[str, Any] = {
            "mode": "llm_script",
            "greeting_text": None,
            "llm": {"provider": "fake", "choices": CHOICES},
            "vad": {"silence_ms": 400},  # shorter calls; turn-taking is not what is tested here
            **overrides,
        }
        robot = make_robot(**settings)
        (robot / "tracks").mkdir()
        for index, track in enumerate(tracks):
            seconds = SECONDS.get(track["id"], 0.6)
            write_wav(robot / "tracks" / f"{track['id']}.wav", tone(400 + 100 * index, seconds))
        (robot / "tracks.json").write_text(
            json.dumps({"fallback": "fallback", "tracks": tracks}, ensure_ascii=False)
        )
        return robot

    return make


def track(robot: Path, track_id: str) -> bytes:
    """The track as the robot sends it: -1 samples as 0 (mod_audio_fork takes -1 for a mark)."""
    return without_markers(read_wav(robot / "tracks" / f"{track_id}.wav").data)


PAD = b"(?:\x00\x00){0,1280}"
"""After a turn the robot may send up to 160 ms of silence, which makes mod_audio_fork's
pre-buffer let the turn's end go (telephony/ingress/audio_fork/channel.py)."""


def sent(*tracks: bytes) -> re.Pattern[bytes]:
    """The audio the robot sends for these turns, in this order."""
    return re.compile(b"".join(re.escape(t) + PAD for t in tracks), re.S)


def ends_with(audio: bytes, last: bytes) -> bool:
    return re.search(re.escape(last) + PAD + b"\\Z", audio, re.S) is not None


def asr(*texts: str) -> dict[str, Any]:
    return {"provider": "fake", "texts": list(texts)}


def robot_turns(record: dict) -> list[tuple[str | None, str]]:
    return [(t["track"], t["text"]) for t in record["turns"] if t["role"] == "robot"]


async def test_the_chosen_tracks_are_what_the_caller_hears(make_script_robot, robot_server) -> None:
    robot = make_script_robot(asr=asr("Сколько стоит приём?", "Когда вы работаете?"))
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(SPEECH), Say(SPEECH)])

    assert result.ok, result.errors
    heard = [track(robot, "greeting"), track(robot, "prices"), track(robot, "hours")]
    assert sent(*heard).fullmatch(result.robot_audio)
    assert all(
        len(h) <= a.bytes <= len(h) + 2560 for a, h in zip(result.answers, heard, strict=True)
    )
    assert all(not a.cut_by_kill_audio for a in result.answers)

    (record,) = await final_records(robot)
    assert robot_turns(record) == [
        ("greeting", "Здравствуйте!"),
        ("prices", "Приём стоит тысячу."),
        ("hours", "Мы работаем с восьми."),
    ]
    answer = record["turns"][2]
    assert answer["llm_ttft_ms"] is not None and answer["v2v_ms"] > 0 and not answer["error"]
    chosen = [e["data"]["track"] for e in record["pipeline_log"] if e["event"] == "track_chosen"]
    assert chosen == ["prices", "hours"]


async def test_an_ends_call_track_hangs_up_after_it_was_heard(
    make_script_robot, robot_server
) -> None:
    robot = make_script_robot(asr=asr("Спасибо, до свидания"))
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(SPEECH), Pause(10)])

    assert result.robot_hung_up
    goodbye = result.answers[-1]
    assert goodbye.bytes == len(track(robot, "goodbye")) and not goodbye.cut_by_kill_audio
    assert ends_with(result.robot_audio, track(robot, "goodbye"))
    (disconnect,) = [e for e in result.events if e.type == "disconnect"]
    assert goodbye.end_ms is not None
    assert disconnect.t_ms >= goodbye.end_ms - 20  # within a frame of the playout's end
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "robot_goodbye"
    assert robot_turns(record)[-1] == ("goodbye", "До свидания!")


async def test_a_transfer_track_transfers_the_call_after_it_was_heard(
    make_script_robot, robot_server
) -> None:
    robot = make_script_robot(asr=asr("Соедините с оператором"))
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(SPEECH), Pause(10)])

    assert result.transferred and result.transfer_target == "1001"
    assert ends_with(result.robot_audio, track(robot, "operator"))
    assert not any(e.type == "disconnect" for e in result.events)
    (transfer,) = [e for e in result.events if e.type == "transfer"]
    operator = result.answers[-1]
    assert operator.end_ms is not None
    assert transfer.t_ms >= operator.end_ms - 20
    (record,) = await final_records(robot)
    assert record["call"]["end_reason"] == "transferred"
    assert robot_turns(record)[-1][0] == "operator"
    assert any(e["event"] == "transfer" for e in record["pipeline_log"])


async def test_barge_in_cuts_a_track(make_script_robot, robot_server) -> None:
    robot = make_script_robot(asr=asr("Расскажите подробно", "Подождите"))
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(SPEECH), BargeIn(STOP)], barge_in_after_s=1.0)

    assert result.ok, result.errors
    assert result.utterances[1].kill_audio is True
    long, cut_answer = track(robot, "long"), result.answers[1]
    start = result.robot_audio.index(long[:800], len(track(robot, "greeting")))
    assert cut_answer.cut_by_kill_audio and cut_answer.bytes < len(long)
    assert result.robot_audio[start : start + cut_answer.bytes] == long[: cut_answer.bytes]
    assert ends_with(result.robot_audio, track(robot, "hours"))

    (record,) = await final_records(robot)
    cut = next(t for t in record["turns"] if t["interrupted"])
    assert cut["track"] == "long" and cut["text"] == LONG_TEXT
    assert cut["heard_text"] and len(cut["heard_text"]) < len(LONG_TEXT)
    # then the caller was heard and answered with a track
    assert robot_turns(record)[-1][0] == "hours"


async def test_an_uninterruptible_track_is_not_cut(make_script_robot, robot_server) -> None:
    robot = make_script_robot(asr=asr("Какие правила?", "Подождите"))
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(SPEECH), BargeIn(STOP)], barge_in_after_s=0.3)

    assert result.ok, result.errors
    assert not any(e.type == "killAudio" for e in result.events)
    assert track(robot, "notice") in result.robot_audio
    (record,) = await final_records(robot)
    notice = next(t for t in record["turns"] if t["track"] == "notice")
    assert not notice["interrupted"]


@pytest.mark.parametrize(
    ("llm", "error"),
    [
        ({"provider": "fake", "choices": CHOICES}, "'weather'"),  # a choice that is not a track
        ({"provider": "fake", "fail": "raise"}, "ProviderError"),
        ({"provider": "fake", "fail": "hang", "timeout_s": 0.3}, "ProviderTimeout"),
    ],
)
async def test_a_failed_or_unknown_choice_plays_the_fallback(
    make_script_robot, robot_server, llm, error
) -> None:
    robot = make_script_robot(asr=asr("Какая погода?"), llm=llm)
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(SPEECH)])

    assert result.ok, result.errors
    assert sent(track(robot, "greeting"), track(robot, "fallback")).fullmatch(result.robot_audio)
    (record,) = await final_records(robot)
    last = record["turns"][-1]
    assert (last["role"], last["track"], last["text"]) == ("robot", "fallback", "Не расслышал.")
    assert error in last["error"]


async def test_an_asr_failure_plays_the_fallback(make_script_robot, robot_server) -> None:
    robot = make_script_robot(asr=asr("@raise"))
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(SPEECH)])
    assert ends_with(result.robot_audio, track(robot, "fallback"))
    (record,) = await final_records(robot)
    assert record["turns"][-1]["track"] == "fallback"
    assert "fake ASR failed" in record["turns"][-1]["error"]


async def test_without_a_greeting_track_greeting_text_is_spoken(
    make_script_robot, robot_server
) -> None:
    tracks = [t for t in TRACKS if t["id"] != "greeting"]
    robot = make_script_robot(tracks, greeting_text="Добрый день", asr=asr("стоит"))
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(SPEECH)])
    assert result.ok, result.errors
    assert ends_with(result.robot_audio, track(robot, "prices"))
    (record,) = await final_records(robot)
    assert robot_turns(record) == [(None, "Добрый день"), ("prices", "Приём стоит тысячу.")]


async def test_openai_choice_sees_the_menu_and_track_ids(make_script_robot, robot_server) -> None:
    """The whole path with the `openai` provider: the request the LLM gets, its JSON answer."""
    server = FakeOpenAIServer(stream(tokens_then_done('{"id"', ': "pri', 'ces"}')))
    async with server:
        robot = make_script_robot(
            asr=asr("Сколько стоит?"),
            llm={"provider": "openai", "model": "m", "base_url": server.base_url},
        )
        url, _, _ = await robot_server(robot)
        result = await run_call(url, [Say(SPEECH)])

    assert result.ok, result.errors
    assert ends_with(result.robot_audio, track(robot, "prices"))
    (request,) = server.requests
    body = request.json()
    system, *dialog = body["messages"]
    assert "- prices: prices" in system["content"] and "fallback" in system["content"]
    assert dialog == [
        {"role": "assistant", "content": "greeting"},  # robot turns are track ids
        {"role": "user", "content": "Сколько стоит?"},
    ]
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["id"]["enum"] == [t["id"] for t in TRACKS]


# -- robot loading: precise errors for authors ---------------------------------------------------


def problems_of(robot: Path) -> list[str]:
    with pytest.raises(RobotError) as caught:
        load_robot(robot)
    return caught.value.problems


def test_the_shipped_robot_loads(capsys) -> None:
    """Its folder is valid (tracks, WAVs, prompt); `check` with the models is in tests/e2e."""
    from tests.conftest import ROOT

    folder = ROOT / "robots" / "llm_script_russian"
    robot = load_robot(folder)
    assert robot.tracks is not None and robot.tracks.greeting is not None
    assert {"hours", "prices", "address", "booking", "goodbye", "fallback"} <= set(robot.tracks.ids)
    assert robot.tracks.tracks["booking"].transfer and robot.tracks.tracks["goodbye"].ends_call
    wavs = list((folder / "tracks").glob("*.wav"))
    assert sum(w.stat().st_size for w in wavs) < 1 << 20
    for wav in wavs:
        assert read_wav(wav, rate=None).rate == 8000
    for spec in json.loads((folder / "tracks.json").read_text())["tracks"]:
        # Festival's Russian voice reads Cyrillic words only (make_tracks.sh)
        assert re.fullmatch(r"[А-Яа-яЁё ,.!?]+", spec["text"]), spec["text"]


def test_tracks_json_that_is_not_json(make_script_robot, capsys) -> None:
    robot = make_script_robot()
    (robot / "tracks.json").write_text('{"tracks": [}')
    assert main(["check", str(robot)]) == 1
    err = capsys.readouterr().err
    assert f"{robot / 'tracks.json'}: not valid JSON: Expecting value at line 1 column 13" in err


def test_missing_tracks_json(make_script_robot) -> None:
    robot = make_script_robot()
    (robot / "tracks.json").unlink()
    (line,) = problems_of(robot)
    assert line.startswith(f"{robot / 'tracks.json'}: missing; an llm_script robot lists")


def test_every_track_problem_is_reported_at_once(make_script_robot) -> None:
    robot = make_script_robot()
    (robot / "tracks" / "hours.wav").unlink()
    (robot / "tracks" / "prices.wav").write_bytes(b"RIFF garbage")
    spec = json.loads((robot / "tracks.json").read_text())
    spec["fallback"] = "sorry"
    spec["tracks"][2]["file"] = "prices.wav"
    spec["tracks"][3].update(id="hours", file="goodbye.wav")  # a duplicate id
    spec["tracks"][4]["ends_call"] = True  # and a transfer
    spec["tracks"][5]["descripton"] = "typo"
    (robot / "tracks.json").write_text(json.dumps(spec))
    path = robot / "tracks.json"
    lines = problems_of(robot)
    assert (
        f"{path}: tracks[5].descripton: unknown key (a typo?); did you mean 'description'?"
        in (lines[0])
    )
    assert len(lines) == 1  # schema errors stop there: the rest needs a valid structure

    del spec["tracks"][5]["descripton"]
    (robot / "tracks.json").write_text(json.dumps(spec))
    lines = problems_of(robot)
    tracks_dir = robot / "tracks"
    assert lines[0] == (
        f'{path}: tracks[1].id: "hours.wav" (no file given: <id>.wav) is not in {tracks_dir}/; '
        "WAV files there: fallback.wav, goodbye.wav, greeting.wav, long.wav, notice.wav, "
        "operator.wav, prices.wav"
    )
    assert lines[1].startswith(f'{path}: tracks[2].file: "prices.wav": not a readable PCM WAV')
    assert lines[1].endswith("; tracks must be 16-bit PCM WAV files")
    assert lines[2] == (
        f'{path}: tracks[3].id: "hours" is already the id of tracks[1]; ids must be unique'
    )
    assert lines[3] == (
        f"{path}: tracks[4]: ends_call and transfer are both set; a track either hangs up or "
        "transfers the call"
    )
    assert lines[4].startswith(f'{path}: fallback: "sorry" is not a track id; known: greeting, ')
    assert len(lines) == 5


def test_schema_errors_name_the_field(make_script_robot) -> None:
    robot = make_script_robot()
    spec = {"tracks": [{"id": "a b", "description": ""}, {"file": "x.wav"}]}
    (robot / "tracks.json").write_text(json.dumps(spec))
    path = robot / "tracks.json"
    assert problems_of(robot) == [
        f'{path}: tracks[0].description: "" is not allowed; must not be empty',
        f"{path}: tracks[1].id: is required but missing",
        f"{path}: tracks[1].description: is required but missing",
    ]
    (robot / "tracks.json").write_text(json.dumps([]))
    assert problems_of(robot) == [
        f'{path}: must hold a JSON object {{"fallback": ..., "tracks": [...]}}, not []'
    ]


def test_bad_ids_and_paths(make_script_robot) -> None:
    robot = make_script_robot()
    spec = json.loads((robot / "tracks.json").read_text())
    spec["tracks"][1]["id"] = "opening hours"
    spec["tracks"][2]["file"] = "../config.json"
    (robot / "tracks.json").write_text(json.dumps(spec))
    path = robot / "tracks.json"
    lines = problems_of(robot)
    assert f'{path}: tracks[1].id: "opening hours" is not allowed; must be one word' in lines[0]
    assert lines[2] == (
        f'{path}: tracks[2].file: "../config.json" is not allowed; must be a file inside '
        f"{robot / 'tracks'}/"
    )


def test_a_greeting_track_beside_another_greeting(make_script_robot) -> None:
    robot = make_script_robot(greeting_text="Добрый день")
    (robot / "greeting.wav").write_bytes(HELLO.read_bytes())
    lines = problems_of(robot)
    assert lines == [
        f"{robot / 'greeting.wav'} is not allowed beside the track 'greeting' in "
        f"{robot / 'tracks.json'}, which is the greeting; keep one of them",
        f"{robot / 'config.json'}: greeting_text is not allowed beside the track 'greeting' in "
        f"{robot / 'tracks.json'}, which is the greeting; keep one of them",
    ]


def test_tracks_are_loaded_once_at_8_khz(make_script_robot) -> None:
    robot = load_robot(make_script_robot())
    assert robot.tracks is not None
    assert robot.tracks.ids == [t["id"] for t in TRACKS]
    assert robot.tracks.fallback.id == "fallback"
    prices = robot.tracks.tracks["prices"]
    assert prices.audio.rate == 8000 and len(prices.audio.data) == 2 * 4800  # 0.6 s
    assert "- prices: prices" in robot.prompt and robot.prompt.startswith("Ты")
