"""Checks between sections of a robot's config: what one section names must exist in another.

A form fills one of the webhook tools; the `transfer` builtin hands calls to `transfer.target`.
Each mistake is a validation error at the section that names the missing thing, so `check` says
`form.tool: 'book' is not one of the webhook tools…` in the usual way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from voiceplat.tools.settings import BuiltinTool

if TYPE_CHECKING:
    from voiceplat.config import RobotConfig


def reference_problems(config: RobotConfig) -> None:
    """Raises ValidationError listing every broken reference (nothing when all hold)."""
    problems: list[InitErrorDetails] = []
    form = config.form
    if form is not None:
        webhooks = [t.name for t in config.tools if not isinstance(t, BuiltinTool)]
        if form.tool not in webhooks:
            error = PydanticCustomError(
                "form_tool",
                "'{tool}' is not one of the webhook tools in `tools` (they are: {known})",
                {"tool": form.tool, "known": ", ".join(webhooks) or "none"},
            )
            problems.append(InitErrorDetails(type=error, loc=("form", "tool"), input=form.tool))
    if config.transfer.target is None:
        for i, tool in enumerate(config.tools):
            if isinstance(tool, BuiltinTool) and tool.builtin == "transfer":
                error = PydanticCustomError(
                    "transfer_target", "the transfer builtin hands calls to transfer.target: set it"
                )
                problems.append(InitErrorDetails(type=error, loc=("tools", i), input="transfer"))
    if problems:
        raise ValidationError.from_exception_data("RobotConfig", problems)
