"""FormState, one transition at a time, with the clinic's booking form.

The call's now is Wednesday 2 December 2026, 10:00.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from voiceplat.forms import Ask, Cancelled, Confirm, FormSettings, FormState, NotForm, Submit

NOW = dt.datetime(2026, 12, 2, 10, 0)
CLINIC: dict[str, Any] = {
    "tool": "book_visit",
    "triggers": ["записать", "запись", "записаться", "к врачу"],
    "fields": [
        {
            "name": "doctor",
            "ask": "К какому врачу вас записать?",
            "type": "choice",
            "label": "врача",
            "options": ["терапевт", {"value": "лор", "synonyms": ["отоларинголог"]}],
        },
        {"name": "date", "ask": "На какой день?", "type": "date"},
        {"name": "time", "ask": "На какое время?", "type": "time"},
        {"name": "phone", "ask": "Продиктуйте номер телефона.", "type": "phone"},
    ],
    "confirm_text": "Записываю вас: {doctor}, {date}, {time}. Всё верно?",
}
PHONE = "восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь"
CONFIRM = "Записываю вас: терапевт, четверг, третье декабря, пятнадцать часов. Всё верно?"
ARGUMENTS = {"doctor": "терапевт", "date": "2026-12-03", "time": "15:00", "phone": "+79161234567"}


def form(**changes: Any) -> FormState:
    return FormState(FormSettings.model_validate({**CLINIC, **changes}), NOW)


def at_confirmation() -> FormState:
    state = form()
    assert state.hear("Запишите меня к терапевту на завтра в три") == Ask(
        "phone", "Продиктуйте номер телефона."
    )
    assert state.hear(PHONE) == Confirm(CONFIRM)
    return state


@pytest.mark.parametrize(
    "text",
    [
        "Здравствуйте, сколько стоит приём?",
        "Сколько стоит запись к терапевту?",  # about booking, not a booking
        "Как отменить запись?",
        "Где вы находитесь?",
    ],
)
def test_words_without_a_booking_request_are_not_the_forms(text: str) -> None:
    state = form()
    assert state.hear(text) == NotForm()
    assert not state.active and state.pending() is None


def test_a_trigger_starts_the_form_with_the_first_question() -> None:
    state = form()
    assert state.hear("Здравствуйте, я хочу записаться") == Ask(
        "doctor", "К какому врачу вас записать?"
    )
    assert state.active


def test_the_trigger_sentence_fills_every_field_it_gives() -> None:
    state = form()
    assert state.hear("Запишите меня к терапевту на завтра в три") == Ask(
        "phone", "Продиктуйте номер телефона."
    )
    assert state.arguments() == {"doctor": "терапевт", "date": "2026-12-03", "time": "15:00"}


def test_one_question_at_a_time_to_the_confirmation_and_submit() -> None:
    state = form()
    assert state.start("Хочу записаться") == Ask("doctor", "К какому врачу вас записать?")
    assert state.hear("к терапевту") == Ask("date", "На какой день?")
    assert state.hear("третьего декабря") == Ask("time", "На какое время?")
    assert state.hear("три") == Ask("phone", "Продиктуйте номер телефона.")  # bare: it was asked
    assert state.hear(PHONE) == Confirm(CONFIRM)
    assert state.hear("Да, всё верно.") == Submit(ARGUMENTS)
    assert not state.active
    assert state.hear("Спасибо!") == NotForm()


def test_an_answer_fills_the_fields_it_gives_beyond_the_one_asked() -> None:
    state = form()
    state.start("Хочу к врачу")
    state.hear("к лору")
    assert state.hear("послезавтра в десять утра") == Ask("phone", "Продиктуйте номер телефона.")
    assert state.arguments() == {"doctor": "лор", "date": "2026-12-04", "time": "10:00"}


def test_an_answer_that_fills_nothing_asks_again_then_the_form_gives_up() -> None:
    state = form(max_attempts=3)
    state.start("Хочу записаться")
    state.hear("к терапевту")
    assert state.hear("ну как-нибудь") == Ask("date", "Повторите, пожалуйста. На какой день?")
    assert state.hear("на следующей неделе") == Ask("date", "Повторите, пожалуйста. На какой день?")
    step = state.hear("не помню")
    assert step == Cancelled(
        "Извините, не получается разобрать. Могу соединить вас с администратором.", "attempts"
    )
    assert not state.active


def test_a_choice_asked_again_names_its_options() -> None:
    state = form()
    state.start("Хочу записаться")
    assert state.hear("к хорошему") == Ask(
        "doctor",
        "Повторите, пожалуйста. К какому врачу вас записать? Можно выбрать: терапевт, лор.",
    )


def test_a_question_of_the_callers_own_goes_to_the_llm_and_the_form_waits() -> None:
    state = form(max_attempts=1)
    state.start("Хочу записаться к терапевту")
    assert state.hear("А сколько стоит приём?") == NotForm()
    assert state.hear("когда вы работаете") == NotForm()
    assert state.active  # max_attempts=1: a question did not count as a failed answer
    assert state.pending() == Ask("date", "На какой день?")
    assert state.hear("завтра") == Ask("time", "На какое время?")


def test_a_cancel_word_at_any_step_cancels() -> None:
    state = form()
    state.start("Хочу записаться")
    assert state.hear("Ой, я передумала") == Cancelled("Хорошо, не записываю.", "caller")
    assert not state.active and state.hear("к терапевту") == NotForm()
    confirming = at_confirmation()
    assert confirming.hear("Нет, не надо") == Cancelled("Хорошо, не записываю.", "caller")


def test_a_new_trigger_after_the_form_ended_starts_afresh() -> None:
    state = form()
    state.start("Запишите к лору на завтра")
    state.hear("отмена")
    assert state.hear("Запишите меня, пожалуйста, к терапевту") == Ask("date", "На какой день?")
    assert state.arguments() == {"doctor": "терапевт"}


@pytest.mark.parametrize("yes", ["да", "Да, всё так", "ага", "верно", "Правильно, записывайте"])
def test_yes_at_the_confirmation_submits(yes: str) -> None:
    assert at_confirmation().hear(yes) == Submit(ARGUMENTS)


def test_repeating_a_value_at_the_confirmation_is_still_a_yes() -> None:
    assert at_confirmation().hear("да, к терапевту") == Submit(ARGUMENTS)


@pytest.mark.parametrize("no", ["нет", "Не верно", "неправильно", "нет, ошиблись"])
def test_no_at_the_confirmation_asks_what_to_change(no: str) -> None:
    state = at_confirmation()
    assert state.hear(no) == Ask(None, "Что нужно исправить: врача, дату, время или телефон?")
    assert state.pending() == Ask(None, "Что нужно исправить: врача, дату, время или телефон?")


def test_the_field_named_is_asked_again_and_confirmed_with_the_new_value() -> None:
    state = at_confirmation()
    state.hear("нет")
    assert state.hear("время") == Ask("time", "На какое время?")
    assert state.hear("в четыре") == Confirm(CONFIRM.replace("пятнадцать", "шестнадцать"))
    assert state.hear("да") == Submit({**ARGUMENTS, "time": "16:00"})


def test_the_label_names_a_choice_field() -> None:
    state = at_confirmation()
    state.hear("нет")
    assert state.hear("врача поменяйте") == Ask("doctor", "К какому врачу вас записать?")


def test_a_new_value_with_the_no_is_taken_at_once() -> None:
    state = at_confirmation()
    assert state.hear("Нет, давайте в пятницу") == Confirm(
        CONFIRM.replace("четверг, третье", "пятница, четвёртое")
    )
    assert state.hear("да") == Submit({**ARGUMENTS, "date": "2026-12-04"})


def test_a_new_value_when_asked_what_to_change_is_confirmed() -> None:
    state = at_confirmation()
    state.hear("нет")
    assert state.hear("к лору") == Confirm(CONFIRM.replace("терапевт", "лор"))


def test_yes_when_asked_what_to_change_reads_the_values_back_again() -> None:
    state = at_confirmation()
    state.hear("нет")
    assert state.hear("да всё правильно") == Confirm(CONFIRM)


def test_neither_yes_nor_no_asks_for_a_yes_or_a_no() -> None:
    state = at_confirmation()
    assert state.hear("ммм") == Confirm("Скажите, пожалуйста, да или нет. " + CONFIRM)
    assert state.hear("да") == Submit(ARGUMENTS)


def test_an_optional_field_is_not_asked_and_leaves_no_gap_in_the_confirmation() -> None:
    fields = [*CLINIC["fields"][:3], {**CLINIC["fields"][3], "required": False}]
    state = form(fields=fields, confirm_text="Записываю: {doctor}, {date}, {time}, {phone}.")
    assert state.hear("Запишите к терапевту на завтра в три") == Confirm(
        "Записываю: терапевт, четверг, третье декабря, пятнадцать часов."
    )
    assert state.hear("да") == Submit({"doctor": "терапевт", "date": "2026-12-03", "time": "15:00"})


def test_a_text_field_takes_the_answer_to_its_question_as_said() -> None:
    fields = [{"name": "name", "ask": "Как вас зовут?", "type": "text"}, CLINIC["fields"][1]]
    state = form(fields=fields, confirm_text="{name}, {date}?")
    assert state.start("Хочу записаться на завтра") == Ask("name", "Как вас зовут?")
    assert state.hear("Мария Петровна") == Confirm("Мария Петровна, четверг, третье декабря?")


def test_a_booking_asked_as_a_question_starts_the_form() -> None:
    state = form()
    assert state.hear("Можно записаться к терапевту на завтра?") == Ask("time", "На какое время?")


def test_a_caller_who_asks_to_wait_is_waited_for_without_a_failed_answer() -> None:
    state = form(max_attempts=1)
    state.start("Запишите к терапевту на завтра в три")
    assert state.hear("Сейчас, минуту") == Ask("phone", "Хорошо, жду.")
    assert state.hear("Записывайте: " + PHONE) == Confirm(CONFIRM)


def test_a_doctor_and_a_day_start_the_form_without_a_trigger_word() -> None:
    state = form()
    step = state.hear("Мне бы к терапевту на пятницу, с утра если можно.")
    assert state.active and not isinstance(step, NotForm)
    assert state.values["doctor"].value == "терапевт"
    # A question about them is the LLM's; so is a doctor without a day.
    assert isinstance(form().hear("Сколько стоит приём терапевта в пятницу?"), NotForm)
    assert isinstance(form().hear("Терапевт у вас хороший?"), NotForm)
    assert isinstance(form().hear("Я к терапевту минут на двадцать опаздываю."), NotForm)
    assert isinstance(form().hear("А терапевт в пятницу принимает?"), NotForm)
    assert isinstance(form().hear("Терапевт в пятницу, а платить сколько?"), NotForm)
    assert not isinstance(form().hear("К терапевту на пятницу можно?"), NotForm)
