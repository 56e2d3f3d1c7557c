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


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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


def create_database(
    target: Target, name: str, *, like: str | None = None, maintenance_db: str = "postgres"
) -> None:
    """An empty database from template0 (what pg_restore expects), with ``like``'s encoding and locale."""
    options = ""
    if like is not None:
        out = psql(
            target,
            "SELECT pg_encoding_to_char(encoding) || '|' || datcollate || '|' || datctype FROM pg_database "
            f"WHERE datname = {quote_literal(like)}",
            dbname=maintenance_db,
            what="reading the database's encoding",
        ).strip()
        if out.count("|") == 2:
            encoding, collate, ctype = out.split("|")
            options = (
                f" ENCODING {quote_literal(encoding)} LC_COLLATE {quote_literal(collate)}"
                f" LC_CTYPE {quote_literal(ctype)}"
            )
    psql(
        target,
        f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0{options}",
        dbname=maintenance_db,
        what="creating a scratch database",
    )


def database_exists(target: Target, name: str, *, maintenance_db: str = "postgres") -> bool:
    out = psql(
        target,
        f"SELECT count(*) FROM pg_database WHERE datname = {quote_literal(name)}",
        dbname=maintenance_db,
        what="looking up a database",
    )
    return out.strip() == "1"


def swap_blocker(target: Target, live: str, *, maintenance_db: str = "postgres") -> str | None:
    """Why the connected role cannot restore into a new database and rename it over ``live`` (None: it can).

    CREATE DATABASE needs CREATEDB; ALTER DATABASE ... RENAME needs CREATEDB, the privileges of the
    database's owner (being it, or a member of it) and no other session on it, so every session there
    must be one this role may end; superusers need none of this.
    """
    out = psql(
        target,
        "SELECT r.rolsuper::text || '|' || r.rolcreatedb::text || '|' || "
        "pg_has_role(current_user, d.datdba, 'USAGE')::text || '|' || pg_get_userbyid(d.datdba) || '|' || "
        f"current_user FROM pg_roles r, pg_database d WHERE r.rolname = current_user "
        f"AND d.datname = {quote_literal(live)}",
        dbname=maintenance_db,
        what="reading the restoring role's privileges",
    ).strip()
    if out.count("|") != 4:
        return f"database {live} was not found on the server"
    superuser, createdb, owns, owner, user = out.split("|")
    if superuser == "true":
        return None
    missing = []
    if createdb != "true":
        missing.append("CREATEDB")
    if owns != "true":
        missing.append(f"the privileges of {live}'s owner {owner} (own it, or be a member of {owner})")
    if missing:
        return f"role {user} lacks {' and '.join(missing)}"
    holders = unendable_sessions(target, live, maintenance_db=maintenance_db)
    if holders:
        return (
            f"role {user} may not end the sessions of {', '.join(holders)} on {live} (the rename needs none "
            "left: GRANT pg_signal_backend, or stop them)"
        )
    return None


#: Statements that give ``dest`` the owner and database-level grants (CONNECT, TEMP, CREATE) of ``source``:
#: pg_restore without --create restores neither.
_ACCESS_SQL = """
SELECT stmt FROM (
  SELECT 1 AS n, format('REVOKE ALL ON DATABASE %I FROM PUBLIC', {dest}) AS stmt
    FROM pg_database WHERE datname = {source} AND datacl IS NOT NULL
  UNION ALL
  SELECT 2, format('GRANT %s ON DATABASE %I TO %s%s', a.privilege_type, {dest},
      CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
      CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = {source}
  UNION ALL
  SELECT 3, format('ALTER DATABASE %I OWNER TO %I', {dest}, pg_get_userbyid(datdba))
    FROM pg_database WHERE datname = {source}
) s ORDER BY n
"""


def copy_access(target: Target, source: str, dest: str, *, maintenance_db: str = "postgres") -> None:
    """Give ``dest`` the owner and database-level grants of ``source``."""
    sql = _ACCESS_SQL.format(source=quote_literal(source), dest=quote_literal(dest))
    out = psql(target, sql, dbname=maintenance_db, what="reading the database's owner and grants")
    statements = [line.strip() for line in out.splitlines() if line.strip()]
    if statements:
        psql(target, ";\n".join(statements), dbname=maintenance_db, what="copying the owner and grants")


def allow_connections(target: Target, name: str, allowed: bool, *, maintenance_db: str = "postgres") -> None:
    psql(
        target,
        f"ALTER DATABASE {quote_ident(name)} WITH ALLOW_CONNECTIONS {str(allowed).lower()}",
        dbname=maintenance_db,
        what="changing whether the database accepts connections",
    )


def drop_database(target: Target, name: str, *, maintenance_db: str = "postgres") -> None:
    psql(
        target,
        f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)",
        dbname=maintenance_db,
        what="dropping a database",
    )


#: Sessions the connected role may end, by pg_terminate_backend's own rule: a superuser ends any; another
#: role needs the privileges of the session's role or of pg_signal_backend, and never ends a superuser's.
_MAY_END = (
    "((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR (NOT coalesce(r.rolsuper, false) AND "
    "(pg_has_role(current_user, a.usesysid, 'USAGE') "
    "OR pg_has_role(current_user, 'pg_signal_backend', 'USAGE'))))"
)
_OTHER_SESSIONS = (
    "FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid "
    "WHERE a.datname = {db} AND a.pid <> pg_backend_pid() AND a.usesysid IS NOT NULL"
)


def terminate_sessions(target: Target, dbname: str, *, maintenance_db: str = "postgres") -> int:
    """End every other session on ``dbname`` this role may end (pg_restore --clean would wait on their
    locks); the others are left alone (`unendable_sessions` names them)."""
    out = psql(
        target,
        f"SELECT count(pg_terminate_backend(a.pid)) {_OTHER_SESSIONS.format(db=quote_literal(dbname))} "
        f"AND {_MAY_END}",
        dbname=maintenance_db,
        what="terminating sessions",
    )
    return int(out.strip() or 0)


def unendable_sessions(target: Target, dbname: str, *, maintenance_db: str = "postgres") -> list[str]:
    """The roles of sessions on ``dbname`` this role may not end (a rename waits for every session)."""
    out = psql(
        target,
        f"SELECT DISTINCT r.rolname {_OTHER_SESSIONS.format(db=quote_literal(dbname))} AND NOT {_MAY_END} "
        "ORDER BY 1",
        dbname=maintenance_db,
        what="listing the database's sessions",
    )
    return [line.strip() for line in out.splitlines() if line.strip()]


def rename_database(target: Target, old: str, new: str, *, maintenance_db: str = "postgres") -> None:
    psql(
        target,
        f"ALTER DATABASE {quote_ident(old)} RENAME TO {quote_ident(new)}",
        dbname=maintenance_db,
        what="renaming a database",
    )
