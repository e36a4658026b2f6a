"""Schema of the stores: PostgreSQL migrations and MongoDB indexes, kept in `migrations/`.

PostgreSQL: `migrations/NNN_name.sql`, applied in order, each in its own transaction, recorded in
`schema_migrations`. A session advisory lock serialises robots starting at once: the second one
waits, then finds everything applied. Editing an applied file is reported, never re-applied.

MongoDB: `migrations/mongo_indexes.json`; `create_index` is idempotent, so it runs every start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
MONGO_INDEXES = MIGRATIONS_DIR / "mongo_indexes.json"
LOCK_KEY = 7_640_905_326_142_771_200
"""pg_advisory_lock key of voiceplat migrations (any constant bigint shared by all robots)."""
_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def read_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(Path(directory).glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: a migration is named NNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{directory}: two migrations share a number: {versions}")
    return sorted(migrations, key=lambda m: m.version)


async def migrate_postgres(conn: Any, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Applies the migrations `conn` (asyncpg) lacks; returns the names applied now."""
    migrations = read_migrations(directory)
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    log.warning(
                        "migration %03d_%s changed after it was applied; add a new migration "
                        "instead of editing an applied one",
                        migration.version,
                        migration.name,
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(f"{migration.version:03d}_{migration.name}")
            log.info("postgres: applied migration %03d_%s", migration.version, migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now


def read_mongo_indexes(path: Path = MONGO_INDEXES) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text(encoding="utf-8"))["indexes"]


async def ensure_mongo_indexes(db: Any, path: Path = MONGO_INDEXES) -> list[str]:
    """Creates the indexes of `path` in `db` (pymongo async); returns the names present."""
    from pymongo.errors import OperationFailure

    names = []
    for spec in read_mongo_indexes(path):
        keys = [(field, direction) for field, direction in spec["keys"]]
        try:
            names.append(await db[spec["collection"]].create_index(keys, **spec["options"]))
        except OperationFailure as exc:
            if not spec.get("optional"):
                raise
            log.warning(
                "mongo: optional index %s not created: %s",
                spec["options"].get("name"),
                exc.details.get("errmsg", exc) if exc.details else exc,
            )
    return names


async def migrate(env: Mapping[str, str]) -> list[str]:
    """`voiceplat migrate`: the stores named by POSTGRES_DSN and MONGO_URI; returns report lines."""
    lines: list[str] = []
    if dsn := env.get("POSTGRES_DSN"):
        import asyncpg

        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            applied = await migrate_postgres(conn)
        finally:
            await conn.close()
        lines.append(
            f"postgres: applied {', '.join(applied)}" if applied else "postgres: up to date"
        )
    if uri := env.get("MONGO_URI"):
        from voiceplat.storage.mongo import open_database

        client, db = open_database(uri)
        try:
            names = await ensure_mongo_indexes(db)
        finally:
            await client.close()
        lines.append(f"mongo: indexes {', '.join(names)} in database {db.name}")
    return lines
