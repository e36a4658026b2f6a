"""Runs the tools the LLM asks for: checks the arguments, calls the webhook, never raises.

`ToolBox.run(call)` always comes back with a `ToolResult`: an unknown tool, arguments that fail
the tool's JSON schema, a missing env variable, a connection error, a timeout, an error status or
a body that is not JSON are `ok=False` with an `error` a log reader (and the LLM) can act on. Only
cancellation (the caller hung up) goes through. Built-in tools make no request: their result
says which builtin it was and the session acts on it (transfer, hang up).

The LLM chooses only a tool's name and its arguments; URL, method and headers come from config.
One `ToolBox` per robot: its httpx client pools connections for every call of the robot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from voiceplat.providers.base import ROBOT_ENV_PLACEHOLDER, ToolCall, ToolSpec
from voiceplat.tools.settings import BuiltinTool, Tool, WebhookTool

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
"""A webhook's answer goes into the LLM's context: anything near this size is a mistake."""
MAX_TEXT_CHARS = 2000
"""A body that is not JSON is kept as text up to this length (an HTML error page, say)."""
MAX_ARGUMENT_ERRORS = 3
SECRET_HEADER_WORDS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "api-key",
    "apikey",
    "password",
)


@dataclass(frozen=True, slots=True)
class ToolResult:
    name: str
    arguments: dict[str, Any]
    ok: bool
    result: Any = None
    """The webhook's JSON answer (also of an error status), its text when not JSON, a builtin's
    {"builtin": ...}; None for an empty body."""
    error: str | None = None
    ms: float = 0.0
    builtin: str | None = None
    outcome: str | None = None
    """The tool's configured outcome (e.g. "booked"), only when it succeeded."""

    def for_llm(self) -> str:
        """The content of the `tool` message the LLM gets back."""
        reply: dict[str, Any] = {"ok": self.ok}
        if self.error is not None:
            reply["error"] = self.error
        if self.result is not None:
            reply["result"] = self.result
        return json.dumps(reply, ensure_ascii=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Failure(Exception):
    """A webhook's problem with the result known so far (an error status's JSON body)."""

    def __init__(self, error: str, result: Any = None) -> None:
        super().__init__(error)
        self.error = error
        self.result = result


def _argument_errors(validator: Validator, arguments: dict[str, Any]) -> list[str]:
    """What is wrong with the arguments, each naming the field: `date: '31.12' is not a 'date'`."""
    found = []
    errors = sorted(validator.iter_errors(arguments), key=lambda error: list(error.absolute_path))
    for error in errors[:MAX_ARGUMENT_ERRORS]:
        where = error.json_path.removeprefix("$").removeprefix(".")
        found.append(f"{where}: {error.message}" if where else error.message)
    return found


def _query_params(arguments: Mapping[str, Any]) -> list[tuple[str, str | int | float | bool]]:
    """GET arguments: scalars as they are, lists of scalars as repeated keys, the rest as JSON."""
    params: list[tuple[str, str | int | float | bool]] = []
    for key, value in arguments.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                continue
            if isinstance(item, str | int | float | bool):
                params.append((key, item))
            else:
                params.append((key, json.dumps(item, ensure_ascii=False)))
    return params


def _decode(body: bytes, response: httpx.Response) -> str:
    return body.decode(response.encoding or "utf-8", errors="replace")


def _parse(body: bytes, response: httpx.Response) -> tuple[bool, Any]:
    """(is JSON, the parsed value or the text cut to MAX_TEXT_CHARS); an empty body is JSON None."""
    if not body.strip():
        return True, None
    try:
        return True, json.loads(body)
    except ValueError:
        return False, _decode(body, response)[:MAX_TEXT_CHARS]


async def _read_limited(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise _Failure(f"the answer is larger than {MAX_BODY_BYTES // 1024} KiB")
    return bytes(data)


class ToolBox:
    def __init__(
        self,
        tools: Sequence[Tool],
        env: Mapping[str, str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.tools: dict[str, Tool] = {tool.name: tool for tool in tools}
        self.env = env
        self._transport = transport
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._validators: dict[str, Validator] = {}
        for tool in tools:
            cls = validator_for(tool.parameters, default=Draft202012Validator)
            # format: "date" and the like are checked too (the LLM writes "завтра" for a date).
            self._validators[tool.name] = cls(tool.parameters, format_checker=cls.FORMAT_CHECKER)

    def specs(self) -> list[ToolSpec]:
        """What the LLM is offered, in config order."""
        return [ToolSpec(t.name, t.description, t.parameters) for t in self.tools.values()]

    def builtin(self, name: str) -> str | None:
        """ "transfer" or "end_call" when `name` is a builtin: the session acts, no request."""
        tool = self.tools.get(name)
        return tool.builtin if isinstance(tool, BuiltinTool) else None

    def filler_text(self, name: str) -> str | None:
        """The webhook's own phrase for while it runs (None: the robot's `tool_filler_text`)."""
        tool = self.tools.get(name)
        return tool.filler_text if isinstance(tool, WebhookTool) else None

    def problems(self) -> list[str]:
        """What stops a tool from working as configured, for `voiceplat check`."""
        found = []
        for tool in self.tools.values():
            if not isinstance(tool, WebhookTool):
                continue
            for header, variable in tool.headers_env.items():
                if not self.env.get(variable):
                    found.append(
                        f"tools: {tool.name}: {variable} (the {header} header) is not set in "
                        f"{ROBOT_ENV_PLACEHOLDER} or the root .env"
                    )
            for header in tool.headers:
                if any(word in header.lower() for word in SECRET_HEADER_WORDS):
                    found.append(
                        f"tools: {tool.name}: headers.{header} looks like a secret, and secrets "
                        f'never go in config.json: put it in the .env and use "headers_env": '
                        f'{{"{header}": "<VARIABLE>"}}'
                    )
        return found

    async def run(self, call: ToolCall) -> ToolResult:
        """The tool's result; raises nothing but CancelledError."""
        start = self._clock()
        tool = self.tools.get(call.name)
        arguments = call.arguments if isinstance(call.arguments, dict) else {}

        def result(ok: bool, value: Any = None, error: str | None = None) -> ToolResult:
            ms = round((self._clock() - start) * 1000, 1)
            builtin = tool.builtin if isinstance(tool, BuiltinTool) else None
            outcome = tool.outcome if ok and isinstance(tool, WebhookTool) else None
            if error is not None:
                log.warning("tool %s failed after %.0f ms: %s", call.name, ms, error)
            return ToolResult(call.name, arguments, ok, value, error, ms, builtin, outcome)

        if tool is None:
            known = ", ".join(self.tools) or "none"
            return result(False, error=f"unknown tool {call.name!r}; the tools are: {known}")
        if not isinstance(call.arguments, dict):
            return result(False, error="the arguments must be a JSON object")
        problems = _argument_errors(self._validators[tool.name], arguments)
        if problems:
            return result(False, error="bad arguments: " + "; ".join(problems))
        if isinstance(tool, BuiltinTool):
            return result(True, {"builtin": tool.builtin})
        try:
            async with asyncio.timeout(tool.timeout_s):
                return result(True, await self._request(tool, arguments))
        except _Failure as failure:
            return result(False, failure.result, failure.error)
        except (TimeoutError, httpx.TimeoutException):
            return result(False, error=f"no answer within {tool.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return result(False, error=f"the request failed: {exc.__class__.__name__}: {exc}")
        except Exception as exc:  # never raise into the dialog: the caller hears a fallback
            log.exception("tool %s: unexpected error", tool.name)
            return result(False, error=f"the request failed: {exc.__class__.__name__}: {exc}")

    async def _request(self, tool: WebhookTool, arguments: dict[str, Any]) -> Any:
        headers = dict(tool.headers)
        for header, variable in tool.headers_env.items():
            value = self.env.get(variable)
            if not value:
                raise _Failure(f"{variable} (the {header} header) is not set in the env")
            headers[header] = value
        if tool.method == "GET":
            content: dict[str, Any] = {"params": _query_params(arguments)}
        else:
            content = {"json": arguments}
        async with self._http().stream(
            tool.method, tool.url, headers=headers, timeout=tool.timeout_s, **content
        ) as response:
            body = await _read_limited(response)
        is_json, value = _parse(body, response)
        if not response.is_success:
            excerpt = "" if is_json else f": {str(value)[:200]}"
            raise _Failure(f"HTTP {response.status_code} {response.reason_phrase}{excerpt}", value)
        if not is_json:
            content_type = response.headers.get("content-type", "no content type")
            raise _Failure(f"the answer is not JSON ({content_type})", value)
        return value

    def _http(self) -> httpx.AsyncClient:
        # Made on first use: a robot with only builtins never opens a client.
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
