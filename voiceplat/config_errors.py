"""Turns pydantic validation errors into lines a robot author understands."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


def field_path(loc: Sequence[str | int]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _allowed(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "greater_than" and ctx.get("gt") == 0:
        number = (
            "integer" if isinstance(ctx["gt"], int) and "int" in error.get("msg", "") else "number"
        )
        return f"must be a positive {number}"
    simple = {
        "greater_than": "must be greater than {gt}",
        "greater_than_equal": "must be at least {ge}",
        "less_than": "must be less than {lt}",
        "less_than_equal": "must be at most {le}",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_type": "must be a string (in double quotes)",
        "list_type": 'must be a list, e.g. ["a", "b"]',
        "dict_type": 'must be an object, e.g. {{"provider": "..."}}',  # (braces: .format)
        "model_type": "must be an object",
        "string_too_short": "must not be empty",
        "too_short": "must have at least {min_length} item(s)",
        "string_too_long": "must be at most {max_length} characters",
    }
    if kind == "literal_error":
        return f"must be one of: {ctx.get('expected', '')}"
    if kind in simple:
        return simple[kind].format(**ctx)
    return str(error.get("msg", "is not allowed")).lower()


def _positive_int_hint(error: Mapping[str, Any], model: type[BaseModel] | None) -> str | None:
    """PositiveInt fields fail with greater_than 0: say 'positive integer' rather than a bound."""
    ctx = error.get("ctx") or {}
    if error["type"] == "greater_than" and ctx.get("gt") == 0:
        return "must be a positive integer" if isinstance(error.get("input"), int) else None
    return None


def _known_keys(model: type[BaseModel] | None, loc: Sequence[str | int]) -> list[str]:
    """Field names allowed at `loc`'s parent, walking nested models."""
    current: Any = model
    for item in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(item))
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def describe_errors(
    exc: ValidationError, *, prefix: Sequence[str | int] = (), model: type[BaseModel] | None = None
) -> list[str]:
    """One line per error: `<path>: <value> is not allowed; <what is allowed>`."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [*prefix, *error["loc"]]
        path = field_path(loc)
        if error["type"] == "extra_forbidden":
            known = _known_keys(model, error["loc"]) if model else []
            lines.append(unknown_key(path, str(error["loc"][-1]), known))
        elif error["type"] == "missing":
            lines.append(f"{path}: is required but missing")
        else:
            allowed = _positive_int_hint(error, model) or _allowed(error)
            lines.append(f"{path}: {format_value(error.get('input'))} is not allowed; {allowed}")
    return lines


def unknown_key(path: str, key: str, known: Sequence[str], *, list_known: bool = True) -> str:
    """`<path>: unknown key (a typo?); did you mean '<closest known key>'? Known keys here: ...`"""
    guess = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean '{guess[0]}'?" if guess else ""
    listing = f" Known keys here: {', '.join(known)}." if known and list_known else ""
    return f"{path}: unknown key (a typo?){hint}{listing}".rstrip()


def missing_provider(
    kind: str, section: Mapping[str, Any], settings_of: Mapping[str, type[BaseModel]]
) -> list[str]:
    """`<kind>.provider` is absent: that, after the key that looks like a misspelt `provider`.

    Without a provider there is no settings model to check the other keys against; a key no
    provider of this kind knows that is close to "provider" ("provder", "Provider") is the likely
    reason the provider is missing, so it is named first, as any other typo would be.
    """
    everyone_knows = {name for model in settings_of.values() for name in model.model_fields}
    lines = [
        unknown_key(f"{kind}.{key}", key, ["provider"], list_known=False)
        for key in section
        if key not in everyone_knows and difflib.get_close_matches(key, ["provider"], n=1)
    ]
    lines.append(f"{kind}.provider: is required; known: {', '.join(sorted(settings_of))}")
    return lines


def format_value(value: Any) -> str:
    import json

    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def prefixed(file: str, lines: Iterable[str]) -> list[str]:
    return [f"{file}: {line}" for line in lines]
