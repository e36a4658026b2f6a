"""Where a robot's settings come from besides its config.json's schema: the .env files, the
`VOICEPLAT_*` variables that override config keys, and config.json read as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from voiceplat.config_errors import format_value
from voiceplat.errors import RobotError

ENV_PREFIX = "VOICEPLAT_"


def read_env_files(robot_dir: Path, root_dir: Path | None = None) -> dict[str, str]:
    """Merged env: root .env < robot .env < process environment."""
    merged: dict[str, str] = {}
    for path in ((root_dir or Path.cwd()) / ".env", robot_dir / ".env"):
        if path.is_file():
            merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(os.environ)
    return merged


PROCESS_VARIABLES = frozenset(
    {"VOICEPLAT_MODELS_DIR", "VOICEPLAT_WEB_TOKEN", "VOICEPLAT_SCREENSHOTS", "VOICEPLAT_CHROMIUM"}
)
"""VOICEPLAT_* variables that set up the process (models, the web service's token, the page
tests), not a robot's config key."""


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """`VOICEPLAT_A__B=v` → {"a": {"b": v}}; values that parse as JSON are taken as JSON."""
    tree: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key in PROCESS_VARIABLES:
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = value
    return tree


def deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobotError(f"{path}: missing; a robot folder needs a config.json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RobotError(f"{path}: cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RobotError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise RobotError(f"{path}: nested too deeply to read (thousands of levels)") from None
    if not isinstance(data, dict):
        raise RobotError(f"{path}: must hold a JSON object {{...}}, not {format_value(data)}")
    return data
