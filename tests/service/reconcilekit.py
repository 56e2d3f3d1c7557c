"""Helpers for reconciler tests and the reconcile benchmark: a ServiceContext on given servers, and
ledger rows seeded in bulk with SQL (the api's insert is one round trip per job; a backlog is not)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pydantic import SecretStr

from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.settings import ServiceSettings

SEED_SQL = """
INSERT INTO jobs (id, status, priority, client_id, filename, size_bytes, pages, sha256, storage_key,
                  attempts, max_attempts, created_at, updated_at, started_at, finished_at, expires_at)
SELECT md5(%(tag)s || g), %(status)s, %(priority)s, 'ip:127.0.0.1', 't.pdf', 10, 1, md5('bytes' || g),
       md5(%(tag)s || g), %(attempts)s, 3,
       now() - %(age)s::interval, now() - %(age)s::interval,
       CASE WHEN %(status)s = 'queued' THEN NULL ELSE now() - %(age)s::interval END,
       CASE WHEN %(status)s IN ('completed', 'failed') THEN now() - %(age)s::interval END,
       CASE WHEN %(status)s IN ('completed', 'failed') THEN now() - %(age)s::interval + %(ttl)s::interval END
FROM generate_series(1, %(n)s) AS g
RETURNING id
"""


def seed_jobs(
    conn: psycopg.Connection,
    n: int,
    *,
    tag: str,
    status: str = "queued",
    age: str = "3 days",
    priority: str = "default",
    attempts: int = 0,
    ttl: str = "1 day",
) -> list[str]:
    """Insert ``n`` jobs created (and last changed) ``age`` ago; finished ones expire ``ttl`` after."""
    rows = conn.execute(
        SEED_SQL,
        {
            "tag": tag,
            "status": status,
            "priority": priority,
            "attempts": attempts,
            "age": age,
            "ttl": ttl,
            "n": n,
        },
    ).fetchall()
    return [row[0] for row in rows]


def settings_for(database_url: str, redis_url: str, uploads: Path, **extra: object) -> ServiceSettings:
    return ServiceSettings(
        database_url=SecretStr(database_url),
        redis_url=SecretStr(redis_url),
        storage_url=f"file://{uploads}",
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def service_context(
    database_url: str, redis_url: str, uploads: Path, **extra: object
) -> Iterator[ServiceContext]:
    """A ServiceContext (pool, Redis client, file storage) like the reconciler's, closed afterwards."""
    uploads.mkdir(parents=True, exist_ok=True)
    ctx = ServiceContext.create(settings_for(database_url, redis_url, uploads, **extra), name="test")
    try:
        yield ctx
    finally:
        ctx.close()


def migrate_to(database_url: str, version: int) -> None:
    """Apply the migrations up to ``version`` only (a database as an older release left it)."""
    from schedgen_ops.service import db

    with db.connect(database_url) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in db.migrations():
            if migration.version > version:
                break
            conn.execute(migration.sql.encode())
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (migration.version, migration.name))
