"""Answerer: what a call's turn says and does, seen from outside: the pieces it yields, the prompts
the (fake) LLM got, the requests the webhook got (httpx.MockTransport), the notes and the events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.unit.answerer_calls import (
    BOOK,
    FORM,
    PARKING_ANSWER,
    Call,
    Calls,
    Webhook,
    text,
)
from voiceplat.dialog.answerer import AnswerNotes, Hold, Unspeculative, offered_tools
from voiceplat.dialog.text_dialog import DRY_RUN_RESULT, TextDialog
from voiceplat.providers.base import Message
from voiceplat.providers.llm.fake import FakeLLM


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Calls]:
    calls = Calls(tmp_path)
    yield calls
    await calls.close()


@pytest.fixture
def call(make: Calls) -> Call:
    return make()


# -- knowledge ---------------------------------------------------------------------------------


async def test_an_faq_answer_is_said_as_written_without_the_llm(call: Call) -> None:
    pieces, notes = await call.say("Есть ли у вас парковка?")
    assert pieces == [PARKING_ANSWER]
    assert call.llm.responded == []
    assert notes.direct and notes.passages == ["knowledge.md:10"]
    assert call.event_names() == ["direct_answer"]
    assert call.events[0][1]["source"] == "knowledge.md:10"


async def test_the_faq_answer_waits_for_the_llm_when_direct_answers_are_off(
    make: Calls,
) -> None:
    call = make(knowledge={"direct_answers": False})
    pieces, notes = await call.say("Есть ли у вас парковка?")
    assert not notes.direct and len(call.llm.responded) == 1
    assert PARKING_ANSWER in text(pieces)  # the passage reached the LLM, which echoes it


async def test_only_the_last_user_message_is_grounded(call: Call) -> None:
    await call.say("Меня зовут Анна")
    dialog = call.dialog("Где вы находитесь?")
    notes = AnswerNotes()
    pieces = [p async for p in call.answerer.answer(dialog, notes)]

    prompt, _ = call.llm.responded[-1]
    grounded = prompt[-1]
    assert grounded.role == "user"
    assert grounded.content.startswith("Справка:\n")
    assert "улице Ленина, дом 5" in grounded.content
    assert grounded.content.endswith("Где вы находитесь?")
    assert "Цены" not in grounded.content  # only what retrieval found
    # Earlier turns go as the caller said them; the dialog itself is not rewritten.
    assert prompt[:-1] == dialog[:-1]
    assert next(m.content for m in prompt if m.role == "user") == "Меня зовут Анна"
    assert dialog[-1].content == "Где вы находитесь?"
    assert "улице Ленина" in text(pieces)


async def test_a_long_lookup_is_announced_before_the_llm_is_asked(make: Calls) -> None:
    lookup = {"lookup_text": "Сейчас посмотрю…", "lookup_min_chars": 10}
    call = make(knowledge={"direct_answers": False, **lookup})
    pieces, _ = await call.say("Где вы находитесь?")
    assert pieces[0] == Hold("Сейчас посмотрю…")
    assert "улице Ленина" in text(pieces[1:])
    quick = make(knowledge={"lookup_text": "Сейчас посмотрю…", "lookup_min_chars": 10000})
    pieces, _ = await quick.say("Где вы находитесь?")
    assert Hold("Сейчас посмотрю…") not in pieces


async def test_a_statement_that_matches_nothing_goes_as_it_is(call: Call) -> None:
    pieces, notes = await call.say("Меня зовут Анна")
    ((prompt, _),) = call.llm.responded
    assert prompt[-1] == Message("user", "Меня зовут Анна")
    assert text(pieces) == "Вы сказали: Меня зовут Анна."
    assert not notes.direct


async def test_without_knowledge_the_prompt_is_the_dialog(make: Calls) -> None:
    call = make(with_knowledge=False)
    dialog = call.dialog("Где вы находитесь?")
    assert call.answerer.prompt(dialog) == dialog


# -- webhooks ----------------------------------------------------------------------------------


async def test_a_webhook_runs_under_the_filler_and_the_llm_answers_from_its_result(
    call: Call,
) -> None:
    notes = AnswerNotes()
    answer = call.answerer.answer(call.dialog("Есть свободное время у терапевта?"), notes)
    first = await anext(answer)
    # The filler comes before the request: the caller hears it while the webhook runs.
    assert first == Hold("Минутку, проверяю…")
    assert call.webhook.requests == []
    rest = [p async for p in answer]

    (request,) = call.webhook.requests
    assert (request.method, request.url.path) == ("GET", "/slots")
    assert request.url.params.multi_items() == [("doctor", "терапевт")]  # the LLM's arguments
    result = '{"ok": true, "result": {"slots": ["10:00"]}}'
    assert text(rest) == f"Свободно: {result}."
    (first_prompt, offered), (second_prompt, _) = call.llm.responded
    assert "find_slots" in offered
    assert second_prompt[: len(first_prompt)] == first_prompt
    assistant, tool = second_prompt[len(first_prompt) :]
    assert assistant.role == "assistant" and [c.name for c in assistant.tool_calls] == [
        "find_slots"
    ]
    assert tool == Message("tool", result, tool_call_id=assistant.tool_calls[0].id)
    assert tool.tool_call_id == "fake_call_1"
    ((name, data),) = call.events
    assert name == "tool_call" and data["tool"] == "find_slots" and data["ok"] is True
    assert data["arguments"] == {"doctor": "терапевт"}
    (tool_result,) = notes.tool_results
    assert tool_result.ok and tool_result.result == {"slots": ["10:00"]}


async def test_a_failed_webhook_says_tool_failed_text(make: Calls) -> None:
    call = make(webhook=Webhook(lambda r: httpx.Response(503, json={"error": "down"})))
    pieces, notes = await call.say("Есть свободное время у терапевта?")
    assert pieces == [Hold("Минутку, проверяю…"), call.config.tool_failed_text]
    assert len(call.webhook.requests) == 1
    assert len(call.llm.responded) == 1  # no second round: the fallback is said as it is
    (result,) = notes.tool_results
    assert not result.ok and result.error == "HTTP 503 Service Unavailable"
    assert call.events[-1][1]["ok"] is False
    assert call.answerer.outcome is None


@pytest.mark.parametrize(
    ("words", "marker", "builtin"),
    [("Позовите администратора", "[TRANSFER]", "transfer"), ("Всё, хватит", "[END]", "end_call")],
)
async def test_builtins_end_the_answer_with_their_markers(
    call: Call, words: str, marker: str, builtin: str
) -> None:
    pieces, notes = await call.say(words)
    assert pieces == [marker]
    assert call.webhook.requests == []
    assert len(call.llm.responded) == 1
    (result,) = notes.tool_results
    assert (result.name, result.builtin, result.ok) == (builtin, builtin, True)
    assert call.event_names() == ["tool_call"]


# -- the form ----------------------------------------------------------------------------------


async def test_a_form_collects_confirms_and_books_with_the_parsed_arguments(
    make: Calls,
) -> None:
    webhook = Webhook(lambda r: httpx.Response(200, json={"id": 42}))
    call = make(form=FORM, webhook=webhook)

    assert (await call.say("Хочу записаться на приём"))[0] == ["К какому врачу вас записать?"]
    assert (await call.say("к терапевту"))[0] == ["На какой день?"]
    pieces, notes = await call.say("на завтра")
    assert notes.form_step == "Confirm"
    confirm = text(pieces)
    assert (
        len(pieces) == 1
        and confirm.startswith("Записываю вас: терапевт, ")
        and confirm.endswith("Всё верно?")
    )
    assert webhook.requests == []

    notes = AnswerNotes()
    answer = call.answerer.answer(call.dialog("да"), notes)
    assert await anext(answer) == Hold("Минутку, записываю…")  # the tool's own filler
    assert webhook.requests == []
    rest = [p async for p in answer]

    (request,) = webhook.requests
    assert request.method == "POST" and request.url.path == "/visits"
    assert json.loads(request.content) == {"doctor": "терапевт", "date": "2025-12-02"}
    done = text(rest)
    assert len(rest) == 1 and done.startswith("Готово, вы записаны: терапевт, ")
    assert notes.form_step == "Submit"
    assert notes.tool_results[0].arguments == {"doctor": "терапевт", "date": "2025-12-02"}
    assert call.answerer.outcome == "booked"
    assert call.llm.responded == []  # nothing of it was the LLM's
    steps = [data["step"] for name, data in call.events if name == "form_step"]
    assert steps == ["Ask", "Ask", "Confirm", "Submit"]


async def test_a_side_question_during_the_form_gets_the_llm_then_the_pending_question(
    make: Calls,
) -> None:
    call = make(form=FORM)
    await call.say("Запишите меня к терапевту")
    pieces, notes = await call.say("А где вы находитесь?")
    said = text(pieces)
    assert said.endswith(" На какой день?")
    assert "улице Ленина" in said.removesuffix(" На какой день?")  # the LLM's grounded answer
    assert len(call.llm.responded) == 1 and notes.form_step is None
    assert call.webhook.requests == []
    # The form goes on where it was.
    assert (await call.say("на завтра"))[1].form_step == "Confirm"


async def test_the_forms_tool_is_not_offered_to_the_llm(make: Calls) -> None:
    call = make(form=FORM)
    await call.say("Меня зовут Анна")
    ((_, offered),) = call.llm.responded
    assert offered == ["find_slots", "transfer", "end_call"]
    assert [s.name for s in call.answerer.tool_specs() or []] == offered
    assert offered_tools(call.tools, call.config) == call.answerer.tool_specs()


async def test_tools_kept_from_the_llm_are_not_offered(make: Calls) -> None:
    hidden = [{"builtin": "transfer", "offer_to_llm": False}, {"builtin": "end_call"}]
    call = make(tools=hidden)
    await call.say("Меня зовут Анна")
    ((_, offered),) = call.llm.responded
    assert offered == ["end_call"]


async def test_without_a_form_every_tool_is_offered(call: Call) -> None:
    await call.say("Меня зовут Анна")
    ((_, offered),) = call.llm.responded
    assert offered == ["book_visit", "find_slots", "transfer", "end_call"]


async def test_arguments_the_schema_refuses_never_reach_the_webhook(call: Call) -> None:
    pieces, notes = await call.say("Запишите меня, пожалуйста")
    assert pieces == [Hold("Минутку, записываю…"), call.config.tool_failed_text]
    assert call.webhook.requests == []  # the schema stopped it: no date
    assert "date" in (notes.tool_results[0].error or "")


# -- speculative answers -----------------------------------------------------------------------


async def test_a_speculative_answer_never_runs_a_tool(call: Call) -> None:
    with pytest.raises(Unspeculative):
        await call.say("Есть свободное время у терапевта?", speculative=True)
    assert call.webhook.requests == []
    assert call.events == []
    # The real turn then acts.
    await call.say("Есть свободное время у терапевта?")
    assert len(call.webhook.requests) == 1


async def test_a_speculative_answer_never_starts_a_form(make: Calls) -> None:
    call = make(form=FORM)
    with pytest.raises(Unspeculative):
        await call.say("Хочу записаться", speculative=True)
    assert call.answerer.form is not None and not call.answerer.form.active
    assert call.events == [] and call.llm.responded == []
    assert (await call.say("Хочу записаться"))[0] == ["К какому врачу вас записать?"]


async def test_a_speculative_answer_without_action_is_written(call: Call) -> None:
    pieces, _ = await call.say("Меня зовут Анна", speculative=True)
    assert text(pieces) == "Вы сказали: Меня зовут Анна."


# -- the text path -----------------------------------------------------------------------------


async def test_a_text_dialogs_seeded_history_restarts_its_form(tmp_path: Path) -> None:
    robot = tmp_path / "clinic"
    robot.mkdir()
    (robot / "prompt.txt").write_text("Ты администратор клиники.", encoding="utf-8")
    config = {
        "asr": {"provider": "fake"},
        "llm": {"provider": "fake"},
        "tts": {"provider": "fake"},
        "greeting_text": "Здравствуйте!",
        "tools": [BOOK],
        "form": FORM,
    }
    (robot / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    dialog = await TextDialog.open(robot)
    try:
        # The caller's seeded words started the form and filled the doctor, as in the call.
        dialog.seed([("user", "Запишите меня к терапевту"), ("assistant", "На какой день?")])
        reply = await dialog.say("на завтра")
        assert reply.form_step == "Confirm"
        assert reply.text.startswith("Записываю вас: терапевт, ")
        yes = await dialog.say("да")
        assert yes.form_step == "Submit" and yes.text.startswith("Минутку, записываю… Готово")
        (booked,) = yes.tool_calls  # the dry-run stand-in answered, with the form's arguments
        assert booked.ok and booked.result == DRY_RUN_RESULT
        assert booked.arguments["doctor"] == "терапевт"
        llm = dialog.robot.llm
        assert isinstance(llm, FakeLLM) and llm.responded == []
        assert [m.role for m in dialog.history] == ["assistant", *["user", "assistant"] * 3]
    finally:
        await dialog.close()
