"""`tools` in config.json: webhooks and builtins parsed, every mistake one line at its entry."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voiceplat.config_errors import describe_errors
from voiceplat.tools import BuiltinTool, ToolList, WebhookTool

BOOK: dict[str, Any] = {
    "name": "book_visit",
    "description": "Записать на приём",
    "url": "https://crm.example/visits",
    "parameters": {
        "type": "object",
        "properties": {"date": {"type": "string", "format": "date"}},
        "required": ["date"],
    },
}


class Config(BaseModel):
    """The tools field as RobotConfig holds it."""

    model_config = ConfigDict(extra="forbid")
    tools: ToolList = Field(default_factory=list)


def errors_of(tools: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Config.model_validate({"tools": tools})
    return describe_errors(caught.value, model=Config)


def test_a_webhook_with_defaults() -> None:
    (tool,) = Config.model_validate({"tools": [BOOK]}).tools
    assert isinstance(tool, WebhookTool)
    assert (tool.name, tool.method, tool.timeout_s, tool.outcome) == ("book_visit", "POST", 5, None)
    assert tool.parameters["required"] == ["date"]
    assert tool.headers == {} and tool.headers_env == {}


def test_method_is_case_insensitive_and_no_tools_is_the_default() -> None:
    (tool,) = Config.model_validate({"tools": [{**BOOK, "method": "get"}]}).tools
    assert isinstance(tool, WebhookTool) and tool.method == "GET"
    assert Config.model_validate({}).tools == []


def test_builtins_get_a_name_description_and_parameters() -> None:
    transfer, end_call = Config.model_validate(
        {"tools": [{"builtin": "transfer"}, {"builtin": "end_call"}]}
    ).tools
    assert isinstance(transfer, BuiltinTool) and isinstance(end_call, BuiltinTool)
    assert (transfer.name, end_call.name) == ("transfer", "end_call")
    assert "Соединить" in transfer.description and "Завершить" in end_call.description
    assert transfer.parameters["properties"]["reason"]["type"] == "string"
    assert end_call.parameters == {"type": "object", "properties": {}}


def test_a_builtin_keeps_the_authors_name_and_description() -> None:
    (tool,) = Config.model_validate(
        {"tools": [{"builtin": "transfer", "name": "call_doctor", "description": "К врачу"}]}
    ).tools
    assert (tool.name, tool.description) == ("call_doctor", "К врачу")


def test_names_must_be_unique_across_webhooks_and_builtins() -> None:
    lines = errors_of([{"builtin": "end_call", "name": "book_visit"}, BOOK])
    assert lines == [
        'tools[1].name: "book_visit" is not allowed; is used by tools[0] too; '
        "each tool needs its own name"
    ]


@pytest.mark.parametrize("name", ["book-visit", "1book", "запись", "a" * 65])
def test_bad_names(name: str) -> None:
    (line,) = errors_of([{**BOOK, "name": name}])
    assert line.startswith("tools[0].name: ") and "latin letters, digits and _" in line


@pytest.mark.parametrize(
    "url", ["ftp://crm.example/x", "crm.example/visits", "http:///nohost", "https://u:pw@crm.ex/x"]
)
def test_only_http_urls_without_passwords(url: str) -> None:
    (line,) = errors_of([{**BOOK, "url": url}])
    assert line.startswith("tools[0].url: ")
    assert "http:// or https://" in line or "password" in line


def test_a_schema_that_is_not_valid_is_named_where_it_breaks() -> None:
    bad = {"type": "object", "properties": {"date": {"type": "strin"}}}
    (line,) = errors_of([{**BOOK, "parameters": bad}])
    assert line.startswith("tools[0].parameters: ")
    assert "at properties.date.type" in line and "'strin'" in line


@pytest.mark.parametrize("schema", [{"type": "string"}, {"properties": {}}, "object"])
def test_parameters_must_describe_an_object(schema: Any) -> None:
    (line,) = errors_of([{**BOOK, "parameters": schema}])
    assert line.startswith("tools[0].parameters: ") and "object" in line


def test_every_mistake_of_every_entry_is_reported() -> None:
    lines = errors_of(
        [
            {"builtin": "transfr"},
            {**BOOK, "description": "", "timeout_s": 0, "methd": "POST"},
            {"name": "lookup"},
            5,
        ]
    )
    assert lines[0].startswith('tools[0].builtin: "transfr" is not allowed; must be one of:')
    assert 'tools[1].description: "" is not allowed; must not be empty' in lines
    assert "tools[1].timeout_s: 0 is not allowed; must be a number of seconds over 0" in lines[2]
    assert "tools[1].methd: unknown key (a typo?)" in lines
    assert lines[4].startswith('tools[2]: {"name": "lookup"} is not allowed; must be a webhook')
    assert lines[5].startswith("tools[3]: 5 is not allowed;")
    assert len(lines) == 6


def test_headers_env_names_a_variable_and_headers_are_one_line() -> None:
    (line,) = errors_of([{**BOOK, "headers_env": {"Authorization": "crm token"}}])
    assert line.startswith("tools[0].headers_env: ") and "not an env variable name" in line
    (line,) = errors_of([{**BOOK, "headers": {"X-Site": "a\r\nInjected: 1"}}])
    assert line.startswith("tools[0].headers: ") and "one line" in line
    (line,) = errors_of([{**BOOK, "headers": {"Bad Header": "1"}}])
    assert "not a valid http header name" in line


def test_tools_must_be_a_list() -> None:
    (line,) = errors_of({"book_visit": BOOK})
    assert line.startswith("tools: ") and "must be a list" in line
