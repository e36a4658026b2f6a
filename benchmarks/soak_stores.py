"""The soak's stores: real PostgreSQL and Redis started by the script (tests/storage_servers.py),
outages on a schedule (SIGKILL, down a while, restart on the same port and data), and the call
records each store holds at the end.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis

from tests.storage_servers import PostgresServer, RedisServer, missing_servers

StoreName = Literal["postgres", "redis"]
STORES: tuple[StoreName, ...] = ("postgres", "redis")
DATABASE = "voiceplat_soak"


@dataclass
class Outage:
    store: StoreName
    started_s: float
    ended_s: float | None = None


@dataclass
class Stores:
    """The servers the robot writes to; `names` may be empty (JSON records only)."""

    names: tuple[StoreName, ...]
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="voiceplat-soak-")))
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    outages: list[Outage] = field(default_factory=list)

    def start(self) -> None:
        missing = [m for m in missing_servers() if m.split()[0] in self.names]
        if missing:
            raise RuntimeError(f"not installed: {', '.join(missing)} (scripts/setup.sh test)")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # PostgreSQL runs as `postgres` when we are root
        if "postgres" in self.names:
            self.postgres = PostgresServer(self.root / "postgres")
            self.postgres.init()
            self.postgres.start()
            self.postgres.psql(f"CREATE DATABASE {DATABASE}")
        if "redis" in self.names:
            self.redis = RedisServer(self.root / "redis")
            self.redis.start()

    def env(self) -> dict[str, str]:
        """The robot's .env for these stores."""
        env = {}
        if self.postgres is not None:
            env["POSTGRES_DSN"] = self.postgres.dsn(DATABASE)
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url(0)
        return env

    def stop(self) -> None:
        for server in (self.postgres, self.redis):
            if server is not None:
                server.stop()

    def _server(self, name: StoreName) -> PostgresServer | RedisServer:
        server = self.postgres if name == "postgres" else self.redis
        assert server is not None, name
        return server

    async def outage(self, name: StoreName, down_s: float, clock_zero: float) -> None:
        """SIGKILLs the store (a crash, not a shutdown), keeps it down `down_s`, restarts it."""
        server = self._server(name)
        outage = Outage(name, time.monotonic() - clock_zero)
        self.outages.append(outage)
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(server.start)
        outage.ended_s = time.monotonic() - clock_zero

    def is_up(self, name: StoreName) -> bool:
        return not any(o.store == name and o.ended_s is None for o in self.outages)

    # --- what the stores hold --------------------------------------------------------------

    def postgres_calls(self) -> dict[str, tuple[str, int]] | None:
        """call_id -> (status, turn rows) for every call row; None while PostgreSQL is down."""
        if self.postgres is None or not self.is_up("postgres"):
            return None
        try:
            out = self.postgres.psql(
                "SELECT c.call_id, c.status, count(t.idx) FROM calls c "
                "LEFT JOIN turns t ON t.call_id = c.call_id GROUP BY c.call_id, c.status",
                DATABASE,
            )
        except Exception:  # restarting: the soak's row says "-", the final count retries
            return None
        rows = {}
        for line in out.splitlines():
            call_id, status, turns = line.split("|")
            rows[call_id] = (status, int(turns))
        return rows

    def redis_calls(self) -> dict[str, tuple[str, int]] | None:
        """call_id -> (state, history length) for every `call:<id>` hash; None while down."""
        if self.redis is None or not self.is_up("redis"):
            return None
        try:
            client = redis.Redis.from_url(self.redis.url(0), socket_timeout=30)
            with client:
                ids = [
                    key.decode()[len("call:") :]
                    for key in client.scan_iter("call:*", count=1000)
                    if not key.endswith(b":history")
                ]
                pipe = client.pipeline(transaction=False)
                for call_id in ids:
                    pipe.hget(f"call:{call_id}", "state")
                    pipe.llen(f"call:{call_id}:history")
                replies = pipe.execute()
        except redis.RedisError:
            return None
        return {
            call_id: ((replies[2 * i] or b"").decode(), int(replies[2 * i + 1]))
            for i, call_id in enumerate(ids)
        }

    def counts(self) -> dict[str, int | None]:
        """Call rows per store now (None: down), for the periodic report."""
        out: dict[str, int | None] = {}
        for name in self.names:
            rows = self.postgres_calls() if name == "postgres" else self.redis_calls()
            out[name] = None if rows is None else len(rows)
        return out
