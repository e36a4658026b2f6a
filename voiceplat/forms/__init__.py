"""Forms: the fields a booking-like job collects, parsed from Russian speech (issue 12).

settings.FormSettings is the robot's `form`; state.FormState runs one call's form; fields.py has
the parsers (dates through dateparser, phones through phonenumbers, choices by lemma).
"""

from voiceplat.forms.fields import warm
from voiceplat.forms.settings import FormField, FormSettings
from voiceplat.forms.state import Ask, Cancelled, Confirm, FormState, FormStep, NotForm, Submit

__all__ = [
    "Ask",
    "Cancelled",
    "Confirm",
    "FormField",
    "FormSettings",
    "FormState",
    "FormStep",
    "NotForm",
    "Submit",
    "warm",
]
