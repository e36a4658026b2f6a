"""Scenarios: a robot's named scripts and configuration blobs, kept in PostgreSQL (`scenarios`)
and read through a Redis cache (`scenario:<name>`, 5 min TTL).

Reads are hot (a scenario may be looked up at every call start) and changes rare, so a cached
copy may be up to 5 minutes old, except after `put`, which drops it at once. Without Redis, or
while it is down, reads go to PostgreSQL directly.

    store = await ScenarioStore.open(env)          # POSTGRES_DSN, REDIS_URL (optional)
    scenario = await store.get_scenario("dental_booking")
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

CACHE_TTL_S = 300


def cache_key(name: str) -> str:
    return f"scenario:{name}"


class Scenario(BaseModel):
    name: str
    robot: str | None = None
    description: str = ""
    body: dict[str, Any] = Field(default_factory=dict)
    version: int = 1
    enabled: bool = True
    updated_at: datetime | None = None


class ScenarioStore:
    """Scenario reads and writes; `redis` may be None (no cache)."""

    def __init__(self, pool: Any, redis: Any | None = None) -> None:
        self.pool = pool  # asyncpg.Pool
        self.redis = redis  # redis.asyncio.Redis

    @classmethod
    async def open(cls, env: Mapping[str, str]) -> ScenarioStore:
        import asyncpg

        dsn = env.get("POSTGRES_DSN")
        if not dsn:
            raise ValueError("scenarios live in PostgreSQL: set POSTGRES_DSN")
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        cache = None
        if url := env.get("REDIS_URL"):
            import redis.asyncio as aioredis

            cache = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return cls(pool, cache)

    async def get_scenario(self, name: str) -> Scenario | None:
        """The scenario called `name` (cached up to 5 min), or None if there is none."""
        cached = await self._cache_get(name)
        if cached is not None:
            return Scenario.model_validate_json(cached)
        row = await self.pool.fetchrow(
            "SELECT name, robot, description, body::text AS body, version, enabled, updated_at "
            "FROM scenarios WHERE name = $1",
            name,
        )
        if row is None:
            return None
        scenario = Scenario.model_validate({**dict(row), "body": json.loads(row["body"])})
        await self._cache_set(name, scenario.model_dump_json())
        return scenario

    async def put(self, scenario: Scenario) -> None:
        """Creates or replaces a scenario (its version goes up) and drops the cached copy."""
        await self.pool.execute(
            """INSERT INTO scenarios (name, robot, description, body, version, enabled)
               VALUES ($1, $2, $3, $4::jsonb, 1, $5)
               ON CONFLICT (name) DO UPDATE SET robot = EXCLUDED.robot,
                   description = EXCLUDED.description, body = EXCLUDED.body,
                   enabled = EXCLUDED.enabled, version = scenarios.version + 1,
                   updated_at = now()""",
            scenario.name,
            scenario.robot,
            scenario.description,
            json.dumps(scenario.body, ensure_ascii=False),
            scenario.enabled,
        )
        await self.invalidate(scenario.name)

    async def invalidate(self, name: str) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.delete(cache_key(name))
        except Exception as exc:  # the cache then expires on its own within CACHE_TTL_S
            log.warning("scenarios: cannot drop the cached %s: %s", name, exc)

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        await self.pool.close()

    async def _cache_get(self, name: str) -> bytes | None:
        if self.redis is None:
            return None
        try:
            return await self.redis.get(cache_key(name))
        except Exception as exc:
            log.warning("scenarios: Redis cache unavailable (%s); reading PostgreSQL", exc)
            return None

    async def _cache_set(self, name: str, value: str) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.set(cache_key(name), value, ex=CACHE_TTL_S)
        except Exception as exc:
            log.warning("scenarios: cannot cache %s: %s", name, exc)
