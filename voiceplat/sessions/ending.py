"""How a task of a call ends the call on purpose, and which of a TaskGroup's errors counts."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


class CallEnded(Exception):
    """Raised inside the call's TaskGroup to end the call on purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def first_error(group: BaseExceptionGroup[E]) -> E:
    """The first exception of a (possibly nested) exception group."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first
