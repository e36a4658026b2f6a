"""The `tools` of a robot's config.json: webhooks the LLM may call, and the built-in actions.

    "tools": [
      {"name": "book_visit", "description": "Записать на приём", "url": "https://crm.example/visits",
       "parameters": {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]},
       "headers_env": {"Authorization": "CRM_TOKEN"}, "outcome": "booked"},
      {"builtin": "transfer"},
      {"builtin": "end_call"}
    ]

An entry with `builtin` is a `BuiltinTool` (the session acts: transfer, hang up); any other is a
`WebhookTool`. The LLM only ever chooses a tool's name and its arguments: the URL, the method and
the headers come from here, and the arguments are checked against `parameters` before a request.
`ToolList` is the field type for RobotConfig: `parse_tools` turns every bad entry into an error at
`tools[<i>].<field>`, in the words of `voiceplat.config_errors`.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# RFC 9110 token characters: httpx refuses anything else in a header name.
HEADER_NAME_CHARS = set(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}

Builtin = Literal["transfer", "end_call"]
BUILTIN_DESCRIPTIONS: dict[str, str] = {
    "transfer": (
        "Соединить звонящего с администратором (живым человеком). Вызывай, когда звонящий просит "
        "соединить его с человеком, администратором или врачом, или когда ты не можешь помочь."
    ),
    "end_call": (
        "Завершить звонок. Вызывай, когда звонящий прощается или сказал, что больше ничего не нужно."
    ),
}
BUILTIN_PARAMETERS: dict[str, dict[str, Any]] = {
    "transfer": {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "description": "Коротко: зачем звонящему нужен человек"}
        },
    },
    "end_call": NO_ARGUMENTS,
}


def _problem(kind: str, message: str) -> PydanticCustomError:
    # config_errors prints an unknown error type's message lower-cased after the bad value.
    return PydanticCustomError(kind, message)


def check_parameters(schema: Any) -> dict[str, Any]:
    """A JSON schema of an object (what every LLM's function calling takes), or an error."""
    if not isinstance(schema, dict):
        raise _problem("tool_parameters", 'must be a JSON schema object, e.g. {"type": "object"}')
    if schema.get("type") != "object":
        raise _problem(
            "tool_parameters",
            'must describe an object: "type": "object", with the arguments in "properties"',
        )
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = exc.json_path.removeprefix("$").removeprefix(".") or "the schema"
        raise _problem(
            "tool_parameters", f"is not a valid JSON schema at {where}: {exc.message}"
        ) from None
    return schema


def _check_headers(headers: dict[str, str], what: str) -> None:
    for name, value in headers.items():
        if not name or not set(name) <= HEADER_NAME_CHARS:
            raise _problem("tool_header", f"header name {name!r} is not a valid HTTP header name")
        if "\r" in value or "\n" in value:
            raise _problem("tool_header", f"{what} of header {name!r} must be one line")


class ToolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ...,
        min_length=1,
        description="What the LLM calls the tool: latin letters, digits, _ (up to 64).",
    )
    description: str = Field(
        ..., min_length=1, description="What the tool does and when to call it, for the LLM."
    )
    parameters: dict[str, Any] = Field(
        default_factory=lambda: dict(NO_ARGUMENTS),
        description="JSON schema of the arguments (an object); checked before every call.",
    )
    offer_to_llm: bool = Field(
        True,
        description="offered to the LLM; false: only the robot uses it (a form's webhook, the "
        "transfer of transfer.caller_phrases, the goodbye of goodbye_text) — a small model "
        "offered tools may talk about them instead of answering",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # An empty name is a BuiltinTool's "use the builtin's name".
        if value and not re.fullmatch(NAME_PATTERN, value):
            raise _problem(
                "tool_name",
                "must be latin letters, digits and _ (up to 64), not starting with a digit",
            )
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters_are_a_schema(cls, value: Any) -> Any:
        return check_parameters(value)


class WebhookTool(ToolSettings):
    """An HTTP request the LLM may ask for; its result goes back to the LLM."""

    url: str = Field(..., description="http:// or https:// URL; the LLM can never change it.")
    method: Literal["POST", "GET", "PUT", "PATCH"] = Field(
        "POST", description="POST/PUT/PATCH send the arguments as JSON; GET as query parameters."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Static headers (no secrets: use headers_env)."
    )
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description='Header → env variable holding its value, e.g. {"Authorization": "CRM_TOKEN"} '
        "(the robot's .env or the root .env).",
    )
    timeout_s: float = Field(
        5.0, description="Seconds for the whole request, connect to last byte (over 0, up to 60)."
    )
    filler_text: str | None = Field(
        None, min_length=1, description="Spoken while the tool runs (default: the robot's filler)."
    )
    outcome: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description='The call\'s outcome when this tool succeeds, e.g. "booked".',
    )

    @field_validator("method", mode="before")
    @classmethod
    def _method_upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("timeout_s")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if not 0 < value <= 60:
            raise _problem("tool_timeout", "must be a number of seconds over 0 and at most 60")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise _problem("tool_url", "must be an http:// or https:// URL with a host")
        if parts.password:
            # A password in config.json would be a secret outside the env files.
            raise _problem("tool_url", "must not hold a password: use headers_env for credentials")
        return value.strip()

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        _check_headers(value, "the value")
        return value

    @field_validator("headers_env")
    @classmethod
    def _valid_headers_env(cls, value: dict[str, str]) -> dict[str, str]:
        _check_headers(value, "the variable name")
        for header, variable in value.items():
            if not re.fullmatch(ENV_NAME_PATTERN, variable):
                raise _problem(
                    "tool_header",
                    f"{variable!r} (for header {header!r}) is not an env variable name",
                )
        return value


class BuiltinTool(ToolSettings):
    """An action of the session itself (no request): `transfer` to transfer.target, `end_call`."""

    builtin: Builtin = Field(..., description="transfer | end_call")
    name: str = Field("", description="Defaults to the builtin's name.")
    description: str = Field("", description="Defaults to a Russian description of the builtin.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Defaults to the builtin's own (transfer: reason)."
    )

    def model_post_init(self, context: Any) -> None:
        # Defaults that depend on `builtin`; an author's own values are kept.
        self.name = self.name or self.builtin
        self.description = self.description or BUILTIN_DESCRIPTIONS[self.builtin]
        self.parameters = self.parameters or dict(BUILTIN_PARAMETERS[self.builtin])

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters_are_a_schema(cls, value: Any) -> Any:
        return check_parameters(value) if value != {} else value


Tool = WebhookTool | BuiltinTool
KNOWN_ERROR_TYPES = frozenset(typing.get_args(ErrorType))


def _relocated(error: Any, prefix: tuple[str | int, ...]) -> InitErrorDetails:
    """One of a tool's own errors, at `tools[i].<field>` of the whole config."""
    loc = (*prefix, *error["loc"])
    if error["type"] in KNOWN_ERROR_TYPES:
        details = InitErrorDetails(type=error["type"], loc=loc, input=error["input"])
        if "ctx" in error:
            details["ctx"] = error["ctx"]
        return details
    message = str(error["msg"]).replace("{", "{{").replace("}", "}}")
    return InitErrorDetails(
        type=PydanticCustomError(error["type"], message), loc=loc, input=error["input"]
    )


def parse_tools(value: Any) -> Any:
    """The `tools` list as WebhookTool/BuiltinTool; every problem is one error at its entry.

    Not a list: returned as is, for pydantic to say it must be one."""
    if not isinstance(value, list):
        return value
    tools: list[Tool] = []
    problems: list[InitErrorDetails] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(value):
        if not isinstance(entry, dict) or not ("builtin" in entry or "url" in entry):
            error = _problem(
                "tool_kind",
                'must be a webhook {"name", "description", "url", ...} '
                'or a built-in {"builtin": "transfer" | "end_call"}',
            )
            problems.append(InitErrorDetails(type=error, loc=(index,), input=entry))
            continue
        model: type[WebhookTool] | type[BuiltinTool] = (
            BuiltinTool if "builtin" in entry else WebhookTool
        )
        try:
            tool = model.model_validate(entry)
        except ValidationError as exc:
            problems += [_relocated(error, (index,)) for error in exc.errors(include_url=False)]
            continue
        if tool.name in first_index:
            error = _problem(
                "tool_name",
                f"is used by tools[{first_index[tool.name]}] too; each tool needs its own name",
            )
            problems.append(InitErrorDetails(type=error, loc=(index, "name"), input=tool.name))
            continue
        first_index[tool.name] = index
        tools.append(tool)
    if problems:
        raise ValidationError.from_exception_data("tools", problems)
    return tools


ToolList = Annotated[list[Tool], BeforeValidator(parse_tools)]
"""RobotConfig's field: `tools: ToolList = Field(default_factory=list, description=...)`."""
