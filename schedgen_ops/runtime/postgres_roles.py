"""The local Postgres's roles, database and authentication, from what render wrote (idempotent).

The local runtime runs this after each start of its ``postgres`` program: ``roles.sql`` as the superuser,
the superuser's own password, and a ``pg_hba.conf`` that requires passwords on loopback TCP only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schedgen_ops.config.roles import PG_SUPERUSER
from schedgen_ops.config.secrets import parse_env_file
from schedgen_ops.runtime.localserver import find_postgres_bindir
from schedgen_ops.runtime.runner import Runner

_HBA_MARK = "# schedgen-managed pg_hba.conf"


def psql_script_argv(bindir: Path, port: int, script: Path) -> list[str]:
    """Run a SQL script as the superuser on the local Postgres (passwords come from the environment)."""
    return [
        str(bindir / "psql"),
        "--no-psqlrc",
        "--no-password",
        "--quiet",
        "--set=ON_ERROR_STOP=1",
        f"--dbname=host=127.0.0.1 port={port} user={PG_SUPERUSER} dbname=postgres",
        f"--file={script}",
    ]


def bootstrap_postgres(
    tree: Path, port: int, data_dir: Path, environ: Mapping[str, str], runner: Runner
) -> None:
    """Roles and database from roles.sql as the superuser, then passwords required (idempotent).

    ``tree`` is the rendered release, ``data_dir`` the cluster's directory (its pg_hba.conf is rewritten
    once), ``environ`` the machine's environment (PATH and locale for psql).

    The superuser's password is its own secret (POSTGRES_SUPERUSER_PASSWORD), never the app's. A stack
    bootstrapped before roles existed gave the superuser the owner's password: that one is tried second,
    then replaced.
    """
    import psycopg
    from psycopg import sql

    values = parse_env_file((tree / "local" / "secrets" / "postgres-init.env").read_text(encoding="utf-8"))
    superuser_pw = values["PGPASSWORD"]
    candidates = [superuser_pw, values["SCHEDGEN_PG_OWNER_PASSWORD"]]
    admin = f"host=127.0.0.1 port={port} user={PG_SUPERUSER} dbname=postgres connect_timeout=5"
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = _connect_first(admin, candidates)
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(PG_SUPERUSER), sql.Literal(superuser_pw)
            )
        )
    env = {k: v for k, v in environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
    env.update(values)
    runner.run(
        psql_script_argv(find_postgres_bindir(), port, tree / "local" / "roles.sql"),
        env=env,
        timeout_s=60,
    )
    hba = data_dir / "pg_hba.conf"
    if not hba.read_text().startswith(_HBA_MARK):
        owner = hba.stat()
        hba.write_text(
            f"{_HBA_MARK}: TCP on loopback only, passwords required (no unix sockets are opened)\n"
            "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
        )
        os.chown(hba, owner.st_uid, owner.st_gid)
        with _connect_first(admin, [superuser_pw]) as reload:
            reload.execute("SELECT pg_reload_conf()")


def _connect_first(conninfo: str, passwords: list[str]) -> Any:
    """An autocommit connection with the first password that works (the last error otherwise)."""
    import psycopg

    error: psycopg.OperationalError | None = None
    for password in passwords:
        try:
            return psycopg.connect(conninfo, password=password, autocommit=True)
        except psycopg.OperationalError as exc:
            error = exc
    assert error is not None
    raise error
