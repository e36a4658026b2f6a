"""Errors meant for people: one line, naming the file, the field, the bad value and what is allowed."""

from __future__ import annotations


class RobotError(Exception):
    """A robot that cannot run as configured. `str(error)` is the whole message for the author."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
