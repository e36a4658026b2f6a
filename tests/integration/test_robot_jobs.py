"""Whole calls to a clinic robot that does a job: a booking form whose tool is a real webhook on
127.0.0.1, an FAQ answer from its knowledge file, and the after-call summary and Telegram report.

The robot is tests/fixtures/robots/clinic_fake (fake ASR, LLM and TTS) copied into tmp_path with
the webhook's URL and the caller's words (the fake ASR's transcripts, one per utterance) written
into its config.json. The caller talks over a `FakeChannel` (tests/doubles); what they heard is
compared byte for byte with the fake TTS's audio of the expected text (noise seeded by the text).
Each utterance is sent once the robot's last answer has been queued; nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.doubles.channel import FakeChannel
from tests.doubles.fake_telegram import CHAT_ID, TOKEN, FakeTelegram
from tests.integration.fake_http import FakeServer, body, error
from tests.integration.test_dtmf_calls import HANG_S, Call, events
from voiceplat.audio.pcm import Pcm
from voiceplat.audio.resample import resample
from voiceplat.audio.wav import read_wav
from voiceplat.cli import _after_call
from voiceplat.config_sources import deep_merge
from voiceplat.forms.fields import spoken_date
from voiceplat.robot import load_robot
from voiceplat.sessions.pipeline import PipelineSession
from voiceplat.storage.jsonfile import JsonFileSink
from voiceplat.storage.recorder import Recorder
from voiceplat.telephony.server import session_class

CLINIC = FIXTURES / "robots" / "clinic_fake"
GREETING = "Клиника «Здоровье», здравствуйте! Чем могу помочь?"
FILLER = "Минутку, записываю…"  # book_visit's own filler_text
FAILED = "Извините, записать не получилось. Могу соединить вас с администратором."
GOODBYE = "Спасибо за звонок! До свидания!"
PARKING = "Да, во дворе клиники есть бесплатная парковка для пациентов. Въезд с улицы Гагарина."
SUMMARY = "Клиент спросил про парковку и попрощался."

BOOKING_WORDS = [
    "Здравствуйте, хочу записаться на приём.",
    "К терапевту.",
    "Завтра в три часа.",
    "Анна Петрова",
    "Плюс семь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь",
    "Да, всё верно.",
]
PHONE = "+79161234567"


def speech() -> bytes:
    """One utterance at the call's rate, then a second of silence that ends it."""
    pcm = resample(read_wav(FIXTURES / "ru_aga.wav"), 8000)
    return pcm.data + Pcm(bytes(16000), 8000).data


class ClinicCall(Call):
    async def last_heard(self, text: str) -> None:
        """Waits until the last sentence the robot queued is `text` (a sentence is said as one
        chunk or more; a short one without commas, as these are, is always one)."""
        expected = await self.spoken(text)
        channel = self.channel
        async with asyncio.timeout(HANG_S):
            while not channel.sentences or channel.sentences[-1] != expected:
                channel.sentence_queued.clear()
                await channel.sentence_queued.wait()

    async def says(self, reply_ends: str) -> None:
        """The caller says their next scripted words, then waits for the answer's last sentence."""
        self.channel.say(speech())
        await self.last_heard(reply_ends)

    async def heard_chunks(self, turn_idx: int) -> list[str]:
        """The texts the turn sent to TTS, after checking that the caller heard them, in order."""
        log = self.session.call.log
        marker = self.robot.config.end_call_marker  # no words: it ends the call
        chunks = [
            e.data["text"]
            for e in log
            if e.event == "tts_chunk" and e.data["turn"] == turn_idx and e.data["text"] != marker
        ]
        heard = bytearray()
        for chunk in chunks:
            heard += await self.spoken(chunk)
        assert chunks and bytes(heard) in self.channel.played
        return chunks


@pytest.fixture
def clinic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """The clinic robot in tmp_path with its webhook's URL and the caller's words."""
    monkeypatch.chdir(tmp_path)  # the root .env is the current directory's

    def make(
        webhook_url: str, words: list[str], *, env: dict[str, str] | None = None, **overrides: Any
    ) -> Path:
        robot = tmp_path / "robots" / "clinic"
        shutil.copytree(CLINIC, robot)
        config = json.loads((robot / "config.json").read_text(encoding="utf-8"))
        config["tools"][0]["url"] = webhook_url
        config["asr"]["texts"] = words
        config = deep_merge(config, overrides)
        (robot / "config.json").write_text(json.dumps(config, ensure_ascii=False), "utf-8")
        if env:
            (robot / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        return robot

    return make


@pytest.fixture
async def call_clinic() -> AsyncIterator[Callable[..., Any]]:
    calls: list[ClinicCall] = []

    async def start(robot_dir: Path, *, after_call: bool = False) -> ClinicCall:
        """A call to the robot; `after_call`: with the after-call worker `serve` gives it."""
        robot = load_robot(robot_dir)
        await robot.start()
        recorder = Recorder([JsonFileSink(robot.logs_dir)])
        await recorder.start()
        if after_call:
            robot.after_call = _after_call(robot, recorder)
            await robot.after_call.start()
        channel = FakeChannel()
        session = session_class(robot.config.mode)(robot, channel, recorder)
        call = ClinicCall(robot, channel, session, recorder, asyncio.create_task(session.run()))
        calls.append(call)
        await call.last_heard(GREETING)
        return call

    yield start
    for call in calls:
        if not call.task.done():
            call.channel.hang_up()
        if not call.task.cancelled():  # a test that timed out leaves it cancelled
            await call.ended()
        if call.robot.after_call is not None:
            await call.robot.after_call.aclose()
        await call.recorder.aclose()
        await call.robot.aclose()


def robot_turns(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in record["turns"] if t["role"] == "robot"]


async def book(call: ClinicCall) -> dt.date:
    """The caller goes through the form; returns the day "завтра" is by the call's own clock."""
    await call.says("К какому врачу вас записать?")
    await call.says("На какой день?")
    await call.says("Как вас зовут?")  # "завтра в три часа" gave the day and the time
    await call.says("Продиктуйте номер телефона.")
    await call.says("Всё верно?")
    session = call.session
    assert isinstance(session, PipelineSession)
    form = session.answerer.form
    assert form is not None
    return form.now.date() + dt.timedelta(days=1)


async def test_a_booking_call_fills_the_form_and_the_webhook_gets_the_arguments(
    clinic, call_clinic
) -> None:
    async with FakeServer(body(200, {"visit_id": 41})) as crm:
        call = await call_clinic(clinic(f"{crm.url}/visits", BOOKING_WORDS))
        tomorrow = await book(call)
        await call.says("Ждём вас!")  # "да": the filler, the webhook, the done text
        call.channel.hang_up()
        record = await call.record()

    arguments = {
        "doctor": "терапевт",
        "date": tomorrow.isoformat(),
        "time": "15:00",
        "name": "Анна Петрова",
        "phone": PHONE,
    }
    (request,) = crm.requests
    assert (request.method, request.path) == ("POST", "/visits")
    assert request.json() == arguments

    today = tomorrow - dt.timedelta(days=1)
    day = spoken_date(tomorrow, today)
    done = f"Готово, вы записаны: терапевт, {day}, пятнадцать часов. Ждём вас!"
    turns = robot_turns(record)
    confirm, booked = turns[-2:]
    assert confirm["text"] == (
        f"Записываю вас: терапевт, {day}, пятнадцать часов, на имя Анна Петрова. Всё верно?"
    )
    chunks = await call.heard_chunks(booked["idx"])
    assert chunks[0] == FILLER  # said before the webhook was called, as a chunk of its own
    assert " ".join(chunks[1:]) == done
    assert booked["text"] == f"{FILLER} {done}"
    (tool,) = booked["tool_calls"]
    assert (tool["name"], tool["arguments"], tool["ok"]) == ("book_visit", arguments, True)
    assert tool["error"] is None and tool["result"] == {"visit_id": 41}
    assert isinstance(tool["ms"], int | float) and tool["ms"] >= 0
    assert all(t["tool_calls"] == [] for t in turns[:-1])
    assert not any(t["interrupted"] for t in turns)  # each answer was heard to its end
    assert record["call"]["outcome"] == "booked"
    assert call.llm.responded == []  # the form did it all: no LLM asked


async def test_a_webhook_that_fails_is_explained_and_recorded(clinic, call_clinic) -> None:
    async with FakeServer(error(500, "database is down")) as crm:
        call = await call_clinic(clinic(f"{crm.url}/visits", BOOKING_WORDS))
        await book(call)
        await call.says("Могу соединить вас с администратором.")  # tool_failed_text's end
        call.channel.hang_up()
        record = await call.record()

    assert len(crm.requests) == 1
    failed = robot_turns(record)[-1]
    chunks = await call.heard_chunks(failed["idx"])
    assert chunks[0] == FILLER and " ".join(chunks[1:]) == FAILED
    (tool,) = failed["tool_calls"]
    assert (tool["name"], tool["ok"]) == ("book_visit", False)
    assert tool["error"] == "HTTP 500 Internal Server Error: database is down"
    assert record["call"]["outcome"] == "no_answer_given"  # the booking did not go through
    (logged,) = events(record, "tool_call")
    assert (logged["ok"], logged["error"]) == (False, tool["error"])


async def test_an_faq_question_is_answered_from_the_knowledge_file_without_the_llm(
    clinic, call_clinic
) -> None:
    words = ["Скажите, есть ли у вас парковка?", "Спасибо, до свидания!"]
    call = await call_clinic(clinic("http://127.0.0.1:9/unused", words))
    await call.says("Въезд с улицы Гагарина.")  # the FAQ answer's end
    call.channel.say(speech())  # the goodbye: the robot says goodbye_text and hangs up
    assert await call.ended() == "robot_goodbye"
    record = await call.record()

    answer, goodbye = robot_turns(record)[-2:]
    assert " ".join(await call.heard_chunks(answer["idx"])) == PARKING
    assert answer["text"] == PARKING
    assert goodbye["text"] == GOODBYE
    assert " ".join(await call.heard_chunks(goodbye["idx"])) == GOODBYE
    assert call.channel.disconnected  # the robot hung up
    (direct,) = events(record, "direct_answer")
    assert direct["source"].startswith("knowledge.md")
    assert call.llm.responded == [] and call.llm.streamed == []  # the LLM was never asked
    assert record["call"]["outcome"] == "answered"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def test_after_the_call_the_summary_is_stored_and_the_report_reaches_telegram(
    clinic, call_clinic, telegram: FakeTelegram
) -> None:
    words = ["Скажите, есть ли у вас парковка?", "Спасибо, до свидания!"]
    env = {"TG_TOKEN": TOKEN, "TG_CHAT_ID": CHAT_ID, "TG_API_URL": telegram.url}
    robot_dir = clinic("http://127.0.0.1:9/unused", words, env=env, llm={"reply": SUMMARY})
    call = await call_clinic(robot_dir, after_call=True)
    await call.says("Въезд с улицы Гагарина.")
    call.channel.say(speech())
    assert await call.ended() == "robot_goodbye"
    after_call = call.robot.after_call
    assert after_call is not None
    async with asyncio.timeout(HANG_S):
        [sent] = await telegram.wait_delivered(1)
        await after_call.drained()
    record = await call.record()

    assert record["call"]["outcome"] == "answered"
    assert record["call"]["summary"] == SUMMARY  # amended into the finished record
    (asked,) = call.llm.streamed  # the summary, after the call: the only time the LLM was asked
    assert asked[-1].content.startswith("Расшифровка:\nРобот: " + GREETING)
    assert (sent.method, sent.token, sent.fields["chat_id"]) == ("sendMessage", TOKEN, CHAT_ID)
    text = sent.fields["text"]
    assert text.startswith("Звонок: clinic\n")
    assert "Итог: ответ дан (answered)" in text
    assert f"Кратко: {SUMMARY}" in text
    assert text.endswith(
        "Расшифровка:\n"
        f"Робот: {GREETING}\n"
        "Клиент: Скажите, есть ли у вас парковка?\n"
        f"Робот: {PARKING}\n"
        "Клиент: Спасибо, до свидания!\n"
        f"Робот: {GOODBYE}"
    )
    assert (after_call.summarized, after_call.reported, after_call.failed) == (1, 1, 0)
