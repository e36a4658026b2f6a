"""docker-compose.yml read the way `docker compose` reads it: YAML (merge keys included), then the
`${VAR}` interpolation from an env file (here .env.example, the file users copy to .env).

No container engine runs on the development machine, so the compose tests check the file itself:
what each service names (stores, robots, ports, volumes) against the rest of the project.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from dotenv import dotenv_values

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# $$ (a literal $), ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME
VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(ValueError):
    """A ${NAME:?error} whose variable is unset or empty: compose refuses to start."""


def example_env() -> dict[str, str]:
    return {k: v or "" for k, v in dotenv_values(ENV_EXAMPLE).items()}


def variables(text: str) -> dict[str, str]:
    """Every variable the text interpolates, with its operator ('' for a plain ${NAME})."""
    found: dict[str, str] = {}
    for match in VARIABLE.finditer(text):
        name = match["braced"] or match["bare"]
        if name:
            found[name] = found.get(name) or match["op"] or ""
    return found


def interpolate(value: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"] or "", match["arg"] or ""
        present = name in env and (env[name] != "" or ":" not in op)
        if op.endswith("?") and not present:
            raise MissingVariable(f"{name}: {arg}")
        if op.endswith("-") and not present:
            return arg
        return env.get(name, "")

    return VARIABLE.sub(replace, value)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(item, env) for key, item in node.items()}
    return node


def load(env: Mapping[str, str], text: str | None = None) -> dict[str, Any]:
    import yaml  # PyYAML; the tests importorskip it

    data = yaml.safe_load(COMPOSE.read_text() if text is None else text)
    resolved: dict[str, Any] = resolve(data, env)
    return resolved


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, from the mapping or the list form (NAME=value)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def url(value: str) -> SplitResult:
    return urlsplit(value)


def command(service: Mapping[str, Any]) -> list[str]:
    raw = service.get("command") or []
    return raw.split() if isinstance(raw, str) else [str(part) for part in raw]


def robot_dirs(service: Mapping[str, Any]) -> list[Path]:
    """The robot folders a `voiceplat serve` or `voiceplat web` service runs (relative to /app)."""
    words = command(service)
    if len(words) < 2 or not words[0].endswith("voiceplat") or words[1] not in {"serve", "web"}:
        return []
    return [ROOT / word for word in words[2:] if word.startswith("robots/")]


def container_ports(service: Mapping[str, Any]) -> set[int]:
    """The container side of each published port ("5200:5200", "5260:5260/udp", ranges)."""
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        spec = str(entry).split("/", 1)[0].rsplit(":", 1)[-1]
        first, _, last = spec.partition("-")
        ports.update(range(int(first), int(last or first) + 1))
    return ports


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> named volume (or host path) of a service's short-syntax volumes."""
    found: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        source, target = str(entry).split(":")[:2]
        found[target] = source
    return found
