"""Caller numbers out of log lines: `+79161234567` is logged as `+7***67`.

A log line does not say which of its parts is a caller number (a SIP From header, a metadata
dump, an error text quoting a URI), so the filter masks anything shaped like a phone number: a
run of 7 to 15 digits, optionally after a `+`, with single spaces, dashes, dots or parentheses
between the digits, that is not part of a longer word (so `20261202_143347` in a file name, a
call id's hex run or an IP address stay as they are). A false positive costs a few digits of
log text; a false negative would leak a number, so the pattern leans to masking.
"""

from __future__ import annotations

import logging
import re

# Digits with at most two separators (space, dash, parenthesis) between them, 7-15 digits in all
# (E.164 has at most 15), not inside a longer word or a dotted run (an IP address, a decimal).
_NUMBER = re.compile(r"(?<![\w.+\-])\+?\d(?:[ ()\-]{0,2}\d){6,14}(?![\w\-]|\.\d)")
_PLAIN = re.compile(r"(?<!\d)\d{7,15}(?!\d)")
_DIGITS = re.compile(r"\d")


def mask_number(number: str) -> str:
    """`+79161234567` -> `+7***67`: the country's first digit and the last two stay."""
    digits = _DIGITS.findall(number)
    if len(digits) < 4:
        return "***"
    plus = "+" if number.lstrip().startswith("+") else ""
    return f"{plus}{digits[0]}***{''.join(digits[-2:])}"


def _masked(match: re.Match[str]) -> str:
    text = match.group()
    if not text.startswith("+") and " " in text and not re.search(r"[()\-]", text):
        # Numbers separated by spaces only, with no + or phone punctuation ("ports 5060 5061"):
        # a list of numbers rather than one phone number; only long runs in it are masked.
        return _PLAIN.sub(lambda plain: mask_number(plain.group()), text)
    return mask_number(text)


def mask_numbers(text: str) -> str:
    """The text with every phone-number-shaped run masked."""
    return _NUMBER.sub(_masked, text)


class MaskCallerFilter(logging.Filter):
    """Masks numbers in a record's message and traceback text before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # What Formatter would write for the exception, masked; it uses exc_text when set.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_numbers(record.stack_info)
        return True


def mask_caller_numbers_in_logs(logger: logging.Logger | None = None) -> int:
    """Installs the filter on every handler of `logger` (default: the root logger), where records
    from every module's logger pass (a logger's own filters see only its own records); returns
    how many handlers mask now."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, MaskCallerFilter) for f in handler.filters):
            handler.addFilter(MaskCallerFilter())
    return len(target.handlers)
