"""`form` in a robot's config.json: the fields a booking-like job collects before it calls its tool.

"form": {
  "tool": "book_visit",
  "triggers": ["записать", "запись", "записаться"],
  "fields": [
    {"name": "doctor", "ask": "К какому врачу вас записать?", "type": "choice",
     "options": ["терапевт", {"value": "лор", "synonyms": ["отоларинголог", "ухо горло нос"]}]},
    {"name": "date", "ask": "На какой день?", "type": "date"},
    {"name": "time", "ask": "На какое время?", "type": "time"},
    {"name": "phone", "ask": "Продиктуйте, пожалуйста, номер телефона.", "type": "phone"}
  ],
  "confirm_text": "Записываю вас: {doctor}, {date}, {time}. Всё верно?"
}
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

FieldType = Literal["date", "time", "phone", "text", "choice"]
_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

DEFAULT_LABELS: dict[str, str] = {"date": "дату", "time": "время", "phone": "телефон"}
"""How the change question names a field of the type when `label` is not set."""


class ChoiceOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, description='what the tool gets, e.g. "терапевт"')
    synonyms: list[str] = Field(
        default_factory=list,
        description='other words a caller says for it, matched by lemma ("отоларинголог", '
        '"ухо горло нос")',
    )
    say: str | None = Field(
        None, description="how the confirmation says it (default: value)", min_length=1
    )


class FormField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="the tool argument this field fills")
    ask: str = Field(min_length=1, description="the question that asks for it")
    type: FieldType = Field(
        description="date (YYYY-MM-DD), time (HH:MM), phone (E.164, region RU), text (the "
        "caller's words as they are), choice (one of options)"
    )
    options: list[str | ChoiceOption] = Field(
        default_factory=list, description="choice only: the values, strings or {value, synonyms}"
    )
    required: bool = Field(
        True,
        description="asked until given; a field that is not required is never asked, only "
        "filled when the caller says it",
    )
    label: str | None = Field(
        None,
        description='how "what should I change?" names it, e.g. "врача" (default by type: '
        "дату, время, телефон; else the name); the caller may answer with it",
    )

    @model_validator(mode="after")
    def _options_for_choice(self) -> FormField:
        if self.type == "choice" and not self.options:
            raise ValueError(f"field {self.name!r}: a choice needs options")
        if self.type != "choice" and self.options:
            raise ValueError(f"field {self.name!r}: options are for type choice only")
        return self

    def choice_options(self) -> list[ChoiceOption]:
        return [ChoiceOption(value=o) if isinstance(o, str) else o for o in self.options]

    def spoken_label(self) -> str:
        return self.label or DEFAULT_LABELS.get(self.type, self.name)


class FormSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str = Field(pattern=_NAME, description="the tool (in `tools`) the filled form calls")
    triggers: list[str] = Field(
        min_length=1,
        description='words or phrases that start the form, matched by lemma ("записать" '
        'matches "запишите")',
    )
    fields: list[FormField] = Field(min_length=1, description="what to collect, asked in order")
    confirm_text: str = Field(
        description="read back before the tool is called; {field_name} placeholders get the "
        'values as words ("четверг, третье декабря", "пятнадцать часов")'
    )
    done_text: str = Field(
        "Готово, записала вас: {summary}. Ждём вас!",
        description="said when the tool succeeded; {field_name} placeholders as in confirm_text, "
        "{summary}: every value said, in field order",
    )
    cancel_words: list[str] = Field(
        default_factory=lambda: ["отмена", "отменить", "передумать", "не надо", "не нужно"],
        description="words or phrases that cancel the form at any step, matched by lemma",
    )
    max_attempts: PositiveInt = Field(
        2,
        description="answers in a row that fill nothing for one question before the form gives "
        "up (a question of the caller's own goes to the LLM and does not count)",
    )
    retry_text: str = Field(
        "Повторите, пожалуйста. {ask}", description="said when an answer fills nothing"
    )
    confirm_retry_text: str = Field(
        "Скажите, пожалуйста, да или нет. {confirm}",
        description="said when the answer to the confirmation is neither yes nor no",
    )
    change_text: str = Field(
        "Что нужно исправить: {fields}?", description="after a no to the confirmation"
    )
    wait_text: str = Field(
        "Хорошо, жду.",
        description='said to "сейчас, минуту" while a field is asked (no failed answer)',
    )
    cancelled_text: str = Field(
        "Хорошо, не записываю.", description="said when the caller cancels the form"
    )
    gave_up_text: str = Field(
        "Извините, не получается разобрать. Могу соединить вас с администратором.",
        description="said when max_attempts answers in a row filled nothing",
    )
    pm_below: int = Field(
        8,
        ge=0,
        le=12,
        description='an hour under this said without "утра" is afternoon ("в три" = 15:00); '
        "0 turns the rule off",
    )

    @field_validator("fields")
    @classmethod
    def _unique_names(cls, fields: list[FormField]) -> list[FormField]:
        names = [f.name for f in fields]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field names must be unique: {', '.join(dup)}")
        return fields

    @model_validator(mode="after")
    def _placeholders_are_fields(self) -> FormSettings:
        names = {f.name for f in self.fields}
        checks = {
            "confirm_text": (self.confirm_text, names),
            "done_text": (self.done_text, names | {"summary"}),
            "retry_text": (self.retry_text, {"ask"}),
            "confirm_retry_text": (self.confirm_retry_text, {"confirm"}),
            "change_text": (self.change_text, {"fields"}),
        }
        for key, (text, allowed) in checks.items():
            try:
                used = {p[1] for p in string.Formatter().parse(text) if p[1] is not None}
            except ValueError as e:
                raise ValueError(f"{key}: {e}") from None
            unknown = sorted(used - allowed)
            if unknown:
                raise ValueError(
                    f"{key}: unknown placeholder {{{unknown[0]}}}; allowed: "
                    + ", ".join(f"{{{a}}}" for a in sorted(allowed))
                )
        return self
