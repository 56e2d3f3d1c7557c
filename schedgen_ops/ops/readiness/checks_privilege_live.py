"""Live least privilege: ask the running Postgres and Redis what the service's own credentials may do.

Nothing here changes data: Postgres answers from its catalogs, and Redis is asked inside MULTI, which
refuses a forbidden command when it is queued (NOPERM) and runs nothing because the transaction is
discarded.
"""

from __future__ import annotations

import contextlib
from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable, check

PG_PRIVILEGES_SQL = """
SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
       pg_has_role(current_user, 'pg_execute_server_program', 'USAGE'),
       pg_has_role(current_user, 'pg_read_server_files', 'USAGE'),
       pg_has_role(current_user, 'pg_write_server_files', 'USAGE'),
       has_database_privilege(current_database(), 'CREATE'),
       (SELECT count(*) FROM pg_database d WHERE d.datdba = r.oid),
       ARRAY(SELECT n.nspname::text FROM pg_namespace n WHERE n.nspowner = r.oid ORDER BY 1)
  FROM pg_roles r WHERE r.rolname = current_user
"""
#: (column, what it grants) in PG_PRIVILEGES_SQL order; each must be false for the service.
_PG_FORBIDDEN = (
    ("superuser", "SUPERUSER"),
    ("createrole", "CREATEROLE (create and alter roles)"),
    ("createdb", "CREATEDB"),
    ("replication", "REPLICATION"),
    ("bypassrls", "BYPASSRLS"),
    ("server_program", "pg_execute_server_program (COPY ... PROGRAM)"),
    ("read_files", "pg_read_server_files"),
    ("write_files", "pg_write_server_files"),
    ("create_in_db", "CREATE on the database (new schemas)"),
)
#: Commands the service's Redis user must be refused (probed inside a discarded MULTI).
REDIS_PROBES = (("FLUSHALL",), ("CONFIG", "SET", "maxmemory-policy", "noeviction"))


def postgres_privileges(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """What the role of ``url`` may do, from the catalogs (no statement is attempted)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
        row = conn.execute(PG_PRIVILEGES_SQL).fetchone()
        user = conn.info.user
    assert row is not None
    facts = dict(zip([name for name, _ in _PG_FORBIDDEN], row[:9], strict=True))
    return {"user": user, **facts, "databases_owned": int(row[9]), "schemas_owned": list(row[10])}


def redis_refuses(url: str, command: tuple[str, ...], timeout_s: float = 5.0) -> bool:
    """True when the user of ``url`` is refused ``command`` (NOPERM when queued in MULTI; never run)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        conn = client.connection_pool.get_connection()
        try:
            conn.send_command("MULTI")
            conn.read_response()
            conn.send_command(*command)
            try:
                conn.read_response()
                refused = False
            except redis.ResponseError as exc:
                refused = "NOPERM" in str(exc) or "no permissions" in str(exc)
            conn.send_command("DISCARD")
            with contextlib.suppress(redis.ResponseError):
                conn.read_response()
        finally:
            client.connection_pool.release(conn)
    finally:
        client.close()
    return refused


@check(
    "live-least-privilege",
    title="The running service's credentials are least privilege",
    category="security",
    severity="danger",
    kind="live",
    why="The rendered config can say one thing and the server another (a role created by hand, a volume from "
    "before the roles split): only the servers know what the service's credentials may really do.",
    fix="Redeploy (postgres-init / the local bootstrap re-applies roles.sql); for an old volume whose "
    "superuser is the app, see docs/OPERATIONS.md, 'Roles and users'.",
)
def live_least_privilege(ctx: Context) -> list[Finding]:
    live = ctx.need_live()
    if not live.database_url and not live.redis_url:
        raise NotApplicable("no database or Redis URL of the service (--database-url, or the local runtime)")
    out: list[Finding] = []
    if live.database_url:
        facts = postgres_privileges(live.database_url, live.timeout_s)
        ev = Evidence("postgres", f"role {facts['user']}", {k: v for k, v in facts.items() if k != "user"})
        for name, what in _PG_FORBIDDEN:
            out.append(Finding(not facts[name], f"postgres: {facts['user']} has no {what}", ev))
        out.append(Finding(facts["databases_owned"] == 0, f"postgres: {facts['user']} owns no database", ev))
        schemas = facts["schemas_owned"]
        out.append(
            Finding(len(schemas) == 1, f"postgres: {facts['user']} owns only its schema ({schemas})", ev)
        )
    if live.redis_url:
        from urllib.parse import urlsplit

        user = urlsplit(live.redis_url).username or "default"
        out.append(
            Finding(
                user != "default", f"redis: the service logs in as {user!r}", Evidence("redis", "user", user)
            )
        )
        for command in REDIS_PROBES:
            refused = redis_refuses(live.redis_url, command, live.timeout_s)
            out.append(
                Finding(
                    refused,
                    f"redis: {user} {'is refused' if refused else 'may run'} {' '.join(command[:2])}",
                    Evidence("redis", " ".join(command[:2]), "NOPERM" if refused else "QUEUED"),
                )
            )
    return out
