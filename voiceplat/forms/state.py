"""One call's form: what is filled, what to ask next, the confirmation, the submit (pure, no I/O).

The dialog calls `hear(text)` with every caller turn and acts on the step it gets:

- `NotForm`: not the form's business (no trigger yet, the form is over, or the caller asked a
  question of their own mid-form): the LLM answers; `pending()` is the question to ask again after.
- `Ask(field, text)`: say `text` (field None: "what should I change?").
- `Confirm(text)`: read the values back and wait for yes or no.
- `Submit(arguments)`: call the form's tool with `arguments` (the form is done).
- `Cancelled(text, reason)`: say `text`; reason "caller" (a cancel word) or "attempts" (answers
  that filled nothing, `max_attempts` in a row).

Every utterance fills every field it gives ("к терапевту на завтра в три" fills three), whatever was
asked; a later value replaces an earlier one ("нет, в четыре" at the confirmation). Free-text fields
are filled only by an answer to their own question. Yes and no are read by lemma.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from voiceplat.forms.fields import Value, parse_field
from voiceplat.forms.match import says_any
from voiceplat.forms.numbers import Token, tokenize
from voiceplat.forms.settings import FormField, FormSettings


@dataclass(frozen=True)
class Ask:
    field: str | None
    text: str


@dataclass(frozen=True)
class Confirm:
    text: str


@dataclass(frozen=True)
class Submit:
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Cancelled:
    text: str
    reason: Literal["caller", "attempts"]


@dataclass(frozen=True)
class NotForm:
    pass


FormStep = Ask | Confirm | Submit | Cancelled | NotForm

YES = (
    "да", "верно", "правильно", "все так", "конечно", "ага", "угу", "подтверждаю", "записывайте",
    "давайте", "хорошо", "ок", "окей", "именно", "точно", "договорились", "отлично", "годится",
    "устраивает", "подходит",
)  # fmt: skip
NO = (
    "нет", "неверно", "неправильно", "не так", "не то", "не верно", "не правильно", "не совсем",
    "не подходит", "не устраивает", "ошибка", "ошиблись", "исправить", "изменить", "поменять",
)  # fmt: skip
HOLD = ("сейчас", "минуту", "минутку", "секунду", "секундочку", "подождите", "момент", "щас")
_QUESTION_WORDS = frozenset(
    "сколько где когда как какой почему зачем кто что можно ли чем куда откуда".split()
)
_LEAD_INS = frozenset(
    "а и ну так скажите подскажите извините простите здравствуйте алло слушайте девушка".split()
)
_INDEFINITE = frozenset("нибудь либо угодно то".split())
_INFO_QUESTION_WORDS = frozenset("сколько где почему зачем откуда".split())
_SCHEDULE_VERBS = frozenset("принимать работать бывать стоить платить".split())
"""In a question that names a doctor and a day, these ask about the schedule or the price."""
_TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "date": ("дата", "день", "число"),
    "time": ("время", "час"),
    "phone": ("телефон", "номер"),
}

Phase = Literal["idle", "asking", "confirming", "changing", "done"]


@dataclass
class FormState:
    settings: FormSettings
    now: dt.datetime
    """The call's local time: "завтра" is the day after it."""
    values: dict[str, Value] = field(default_factory=dict)
    phase: Phase = "idle"
    asking: str | None = None
    """The field whose question was asked last (None while confirming or changing)."""
    attempts: int = 0

    @property
    def active(self) -> bool:
        return self.phase in ("asking", "confirming", "changing")

    def triggered(self, text: str) -> bool:
        """The caller asks for what the form does ("запишите меня"), not about it ("сколько
        стоит запись?"), and does not cancel it in the same breath ("отменить запись")."""
        tokens = tokenize(text)
        words = [t for t in tokens if t.value is None and t.text not in _LEAD_INS]
        if words and words[0].forms & _INFO_QUESTION_WORDS:
            return False
        return says_any(tokens, self.settings.triggers) and not says_any(
            tokens, self.settings.cancel_words
        )

    def named(self, text: str) -> bool:
        """The caller names what the form collects without a trigger word: a choice and a day
        ("к неврологу на понедельник", "педиатру послезавтра"), and asks about
        nothing else ("сколько стоит кардиолог в среду?" is a question for the LLM)."""
        tokens = tokenize(text)
        words = [t for t in tokens if t.value is None and t.text not in _LEAD_INS]
        if words and words[0].forms & _INFO_QUESTION_WORDS:
            return False
        if says_any(tokens, self.settings.cancel_words):
            return False
        if is_question(text, tokens) and any(t.forms & _SCHEDULE_VERBS for t in tokens):
            return False  # "в понедельник кардиолог принимает?" asks when, not for a visit
        kinds = set()
        for f in self.settings.fields:
            # A day, not a time: "опаздываю минут на двадцать к терапевту" names a time.
            if f.type in ("choice", "date"):
                value = parse_field(
                    f, text, tokens, self.now, asked=False, pm_below=self.settings.pm_below
                )
                if value is not None:
                    kinds.add("choice" if f.type == "choice" else "when")
        return kinds == {"choice", "when"}

    def start(self, text: str = "") -> FormStep:
        """Begin (again) with the trigger sentence's values: "запишите меня к лору на пятницу"."""
        self.values, self.phase, self.attempts = {}, "asking", 0
        self._fill(text, tokenize(text))
        return self._next()

    def hear(self, text: str) -> FormStep:
        tokens = tokenize(text)
        if not self.active:
            return self.start(text) if self.triggered(text) or self.named(text) else NotForm()
        if says_any(tokens, self.settings.cancel_words):
            self.phase = "done"
            return Cancelled(self.settings.cancelled_text, "caller")
        if self.phase == "asking":
            return self._hear_answer(text, tokens)
        if self.phase == "confirming":
            return self._hear_confirmation(text, tokens)
        return self._hear_change(text, tokens)

    def pending(self) -> Ask | Confirm | None:
        """The question the form waits on (to ask again after the LLM answered a side question)."""
        if self.phase == "asking" and self.asking is not None:
            return Ask(self.asking, self._field(self.asking).ask)
        if self.phase == "confirming":
            return Confirm(self._confirm_text())
        if self.phase == "changing":
            return Ask(None, self._change_text())
        return None

    def arguments(self) -> dict[str, Any]:
        return {name: v.value for name, v in self.values.items()}

    # The phases.

    def _hear_answer(self, text: str, tokens: list[Token]) -> FormStep:
        if self._fill(text, tokens):
            return self._next()
        if is_question(text, tokens):
            return NotForm()
        if says_any(tokens, HOLD) and len(tokens) <= 4:
            # "Сейчас, минуту" (looking for the passport): no failed answer, the form waits.
            return Ask(self.asking, self.settings.wait_text)
        ask = self._field(self.asking).ask if self.asking else ""
        return self._retry(Ask(self.asking, self.settings.retry_text.format(ask=ask)))

    def _hear_confirmation(self, text: str, tokens: list[Token]) -> FormStep:
        said_no = says_any(tokens, NO)
        if self._fill(text, tokens):  # "нет, в четыре" / "да, только в четыре"
            return self._next()
        if said_no:
            self.phase, self.attempts = "changing", 0
            return Ask(None, self._change_text())
        if says_any(tokens, YES):
            self.phase = "done"
            return Submit(self.arguments())
        if is_question(text, tokens):
            return NotForm()
        confirm = self._confirm_text()
        return self._retry(Confirm(self.settings.confirm_retry_text.format(confirm=confirm)))

    def _hear_change(self, text: str, tokens: list[Token]) -> FormStep:
        if self._fill(text, tokens):
            return self._next()
        for f in self.settings.fields:
            if says_any(tokens, (f.spoken_label(), *_TYPE_WORDS.get(f.type, ()))):
                self.values.pop(f.name, None)
                self.phase, self.asking, self.attempts = "asking", f.name, 0
                return Ask(f.name, f.ask)
        if says_any(tokens, YES) and not says_any(tokens, NO):
            return self._next()  # nothing to change after all: confirm again
        if is_question(text, tokens):
            return NotForm()
        return self._retry(Ask(None, self._change_text()))

    # Helpers.

    def _fill(self, text: str, tokens: list[Token]) -> bool:
        """Fill every field the utterance gives; True if a value is new or changed."""
        filled = False
        for f in self.settings.fields:
            asked = self.phase == "asking" and f.name == self.asking
            value = parse_field(
                f, text, tokens, self.now, asked=asked, pm_below=self.settings.pm_below
            )
            if value is not None and self.values.get(f.name) != value:
                self.values[f.name] = value
                filled = True
        return filled

    def _next(self) -> FormStep:
        self.attempts = 0
        for f in self.settings.fields:
            if f.required and f.name not in self.values:
                self.phase, self.asking = "asking", f.name
                return Ask(f.name, f.ask)
        self.phase, self.asking = "confirming", None
        return Confirm(self._confirm_text())

    def _retry(self, step: Ask | Confirm) -> FormStep:
        self.attempts += 1
        if self.attempts >= self.settings.max_attempts:
            self.phase = "done"
            return Cancelled(self.settings.gave_up_text, "attempts")
        if isinstance(step, Ask) and step.field is not None:
            f = self._field(step.field)
            if f.type == "choice":
                said = ", ".join(o.say or o.value for o in f.choice_options())
                return Ask(step.field, f"{step.text} Можно выбрать: {said}.")
        return step

    def _field(self, name: str) -> FormField:
        return next(f for f in self.settings.fields if f.name == name)

    def done_text(self) -> str:
        """What the robot says once the form's tool succeeded."""
        return self._with_values(self.settings.done_text)

    def _confirm_text(self) -> str:
        return self._with_values(self.settings.confirm_text)

    def _with_values(self, template: str) -> str:
        spoken = {f.name: "" for f in self.settings.fields}
        spoken.update({name: v.spoken for name, v in self.values.items()})
        said = [self.values[f.name].spoken for f in self.settings.fields if f.name in self.values]
        text = template.format(**spoken, summary=", ".join(said))
        # An optional field left empty leaves "a, , b", ": , b" or "a, ." behind.
        text = re.sub(r"(,\s*)+(?=[.?!]|$)", "", text)
        text = re.sub(r"(,\s*){2,}", ", ", text)
        return re.sub(r":\s*,\s*", ": ", text)

    def _change_text(self) -> str:
        labels = [f.spoken_label() for f in self.settings.fields]
        said = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " или " + labels[-1]
        return self.settings.change_text.format(fields=said)


def is_question(text: str, tokens: list[Token]) -> bool:
    """The caller asks something of their own ("а сколько стоит приём?"): for the LLM.

    A question mark (ASR punctuates), or a question word first ("а"/"скажите" before it allowed),
    but not "как-нибудь" or "когда угодно", which answer.
    """
    if "?" in text:
        return True
    words = [t for t in tokens if t.value is None]
    while words and words[0].text in _LEAD_INS:
        words = words[1:]
    if not words or not words[0].forms & _QUESTION_WORDS:
        return False
    return not (len(words) > 1 and words[1].text in _INDEFINITE)
