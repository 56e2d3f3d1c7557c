"""SQL run through a target's psql: row counts, scratch databases, session termination.

Going through `Target.psql` (not a Python driver) keeps these working over ``docker compose exec`` and
``kubectl exec`` exactly as locally.
"""

from __future__ import annotations

from schedgen_ops.ops.backup.streaming import run_checked
from schedgen_ops.ops.backup.targets import Target

#: Exact row count of every ordinary table, in one statement (query_to_xml runs a count per table).
COUNT_SQL = (
    "SELECT n.nspname || '.' || c.relname || '|' || "
    "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), "
    "false, true, '')))[1]::text "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1"
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def psql(target: Target, sql: str, *, dbname: str | None = None, what: str = "psql") -> str:
    command = target.psql(sql, dbname=dbname)
    return run_checked(command.argv, what=what, env=command.env)


def table_counts(target: Target, *, dbname: str | None = None) -> dict[str, int]:
    """``schema.table`` -> exact row count in the database."""
    out = psql(target, COUNT_SQL, dbname=dbname, what="counting rows")
    counts: dict[str, int] = {}
    for line in out.splitlines():
        if "|" in line:
            name, _, value = line.rpartition("|")
            counts[name] = int(value)
    return counts


def create_database(target: Target, name: str, *, maintenance_db: str = "postgres") -> None:
    psql(
        target,
        f"CREATE DATABASE {quote_ident(name)}",
        dbname=maintenance_db,
        what="creating a scratch database",
    )


def drop_database(target: Target, name: str, *, maintenance_db: str = "postgres") -> None:
    psql(
        target,
        f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)",
        dbname=maintenance_db,
        what="dropping a database",
    )


def terminate_sessions(target: Target, dbname: str, *, maintenance_db: str = "postgres") -> int:
    """End every other session on ``dbname`` (pg_restore --clean would wait on their locks)."""
    literal = "'" + dbname.replace("'", "''") + "'"
    out = psql(
        target,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = {literal} AND pid <> pg_backend_pid()",
        dbname=maintenance_db,
        what="terminating sessions",
    )
    return int(out.strip() or 0)


def rename_database(target: Target, old: str, new: str, *, maintenance_db: str = "postgres") -> None:
    psql(
        target,
        f"ALTER DATABASE {quote_ident(old)} RENAME TO {quote_ident(new)}",
        dbname=maintenance_db,
        what="renaming a database",
    )
