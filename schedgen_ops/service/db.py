"""Postgres access for the ledger: a connection pool from settings and versioned migrations.

Migrations are the numbered ``migrations/NNNN_name.sql`` files, applied in order inside one transaction
each, under a cluster-wide advisory lock so that several api/worker processes starting at once apply
each version exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
POOL_RECONNECT_TIMEOUT_S = 10.0
MIGRATION_LOCK_KEY = 0x5C4ED6E1  # any constant: "schedgen migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class DatabaseUnavailable(SchedgenError):
    """Postgres could not be reached or did not answer in time."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"database unavailable: {detail}",
            code="database_unavailable",
            hint="check SCHEDGEN_DATABASE_URL and that Postgres is running",
        )


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """All migrations shipped with this version, oldest first."""
    found: list[Migration] = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise RuntimeError(f"badly named migration {path.name}")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    return found


def connect(
    url: str, *, timeout_s: float = 5.0, statement_timeout_ms: int | None = None
) -> psycopg.Connection:
    """One autocommit connection (CLI commands, migrations, the reconciler's lock checks)."""
    options = f"-c statement_timeout={statement_timeout_ms}" if statement_timeout_ms else None
    try:
        return psycopg.connect(
            url, autocommit=True, connect_timeout=max(1, int(timeout_s)), options=options or ""
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        ) from exc


def migrate(url: str) -> list[Migration]:
    """Apply pending migrations under the advisory lock; return those applied by this call."""
    applied: list[Migration] = []
    with connect(url, timeout_s=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in migrations():
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied


def current_version(url: str) -> int:
    """The newest applied migration version (0 when none)."""
    with connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(row[0]) if row else 0


def make_pool(
    settings: ServiceSettings, *, name: str = "schedgen", max_size: int | None = None
) -> ConnectionPool:
    """A pool sized and timed from settings; opened without waiting so start-up survives a Postgres outage.
    ``max_size`` caps it below ``db_pool_max`` (the api gives a share to its status pool)."""
    url = settings.database_url.get_secret_value()
    size = settings.db_pool_max if max_size is None else max_size
    pool = ConnectionPool(
        url,
        min_size=min(settings.db_pool_min, size),
        max_size=size,
        timeout=settings.db_acquire_timeout_s,
        name=name,
        open=False,
        kwargs={
            "autocommit": True,
            "connect_timeout": max(1, int(settings.db_acquire_timeout_s)),
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
        # psycopg_pool retries a failed connection with unbounded exponential backoff until this timeout,
        # so 3600 s meant waits of 17+ minutes after a long Postgres outage. Giving up after 10 s keeps
        # every retry delay under ~8 s; afterwards the next request starts a fresh attempt at once.
        reconnect_timeout=POOL_RECONNECT_TIMEOUT_S,
        # Every checkout is checked (one round trip): skipping the check for recently returned
        # connections handed dead ones out after a Postgres restart, one failed request each.
        check=ConnectionPool.check_connection,
    )
    pool.open(wait=False)
    return pool
