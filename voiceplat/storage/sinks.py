"""Which sinks a robot records to: the JSON file always, and each store its environment names.

    POSTGRES_DSN=postgresql://user:pass@host:5432/voiceplat    -> PostgresSink (asyncpg)
    MONGO_URI=mongodb://host:27017/voiceplat                   -> MongoSink (pymongo asyncio)
    REDIS_URL=redis://host:6379/0                              -> RedisSink (redis.asyncio)

The variables come from the robot's merged env (process environment > robot .env > root .env).
Store sinks spool to `<spool_dir>/<sink>.jsonl` (see spooled_sink.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from voiceplat.errors import RobotError
from voiceplat.storage.jsonfile import JsonFileSink
from voiceplat.storage.recorder import Sink
from voiceplat.storage.spooled_sink import RetryPolicy

STORES = {
    # env variable: (module that must be importable, pip package)
    "POSTGRES_DSN": ("asyncpg", "asyncpg"),
    "MONGO_URI": ("pymongo", "pymongo"),
    "REDIS_URL": ("redis", "redis"),
}


def _require(variable: str) -> None:
    module, package = STORES[variable]
    if importlib.util.find_spec(module) is None:
        raise RobotError(
            f"{variable} is set but the {package} package is not installed; "
            "install the stores extra: pip install -e '.[stores]'"
        )


def sinks_from_env(
    env: Mapping[str, str],
    logs_dir: Path,
    spool_dir: Path,
    *,
    retry: RetryPolicy | None = None,
) -> list[Sink]:
    """The JSON file sink, then a sink for each store configured in `env` (empty = not set)."""
    sinks: list[Sink] = [JsonFileSink(logs_dir)]
    if dsn := env.get("POSTGRES_DSN"):
        _require("POSTGRES_DSN")
        from voiceplat.storage.postgres import PostgresSink

        sinks.append(PostgresSink(dsn, spool_dir, retry))
    if uri := env.get("MONGO_URI"):
        _require("MONGO_URI")
        from voiceplat.storage.mongo import MongoSink

        sinks.append(MongoSink(uri, spool_dir, retry))
    if url := env.get("REDIS_URL"):
        _require("REDIS_URL")
        from voiceplat.storage.redis import RedisSink

        sinks.append(RedisSink(url, spool_dir, retry))
    return sinks
