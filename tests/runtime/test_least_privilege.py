"""Least privilege against real servers: the rendered roles.sql on a real Postgres and the rendered ACL users
on a real redis-server. The service's role cannot create roles, run COPY ... PROGRAM or make databases, yet
runs its migrations and the job ledger; its Redis user cannot FLUSHALL or CONFIG SET, yet runs RQ jobs and
the rate limiter. The exporter and backup credentials get what they need and no more."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from schedgen_ops.config.loader import load_config
from schedgen_ops.config.roles import REDIS_ADMIN, REDIS_APP, REDIS_BACKUP, REDIS_EXPORTER, PgRoles
from schedgen_ops.config.secrets import generate_secrets, parse_env_file
from schedgen_ops.ops.readiness.checks_privilege_live import postgres_privileges, redis_refuses
from schedgen_ops.render import render_tree
from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, service_tempdir
from schedgen_ops.runtime.postgres_roles import psql_script_argv


@dataclass
class Deployment:
    """One rendered local tree: its roles, secrets and files."""

    tree: Path
    roles: PgRoles
    secrets: dict[str, str]

    def env(self, stem: str) -> dict[str, str]:
        return parse_env_file((self.tree / "local" / "secrets" / f"{stem}.env").read_text())


def _render(project: Path) -> Deployment:
    """A local tree rendered with role names unique to this run (roles are cluster-wide)."""
    owner = f"lp{uuid.uuid4().hex[:10]}"
    config = load_config(
        project,
        profile="small",
        overrides=[f"postgres.user={owner}", f"postgres.database={owner}"],
        environ={},
    )
    secrets = generate_secrets()
    render_tree(config, secrets, "local", project / "out", project_dir=project)
    return Deployment(project / "out", PgRoles.of(config), secrets)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return _render(tmp_path_factory.mktemp("lp-project"))


def _apply(
    pg: PostgresServer, dep: Deployment, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = psql_script_argv(pg.bindir, pg.port, dep.tree / "local" / "roles.sql")
    full = {"PATH": os.environ.get("PATH", ""), **(dep.env("postgres-init") if env is None else env)}
    return subprocess.run(argv, env=full, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def roles_applied(postgres_server: PostgresServer, deployment: Deployment) -> Iterator[Deployment]:
    """roles.sql applied to the session's Postgres (as the superuser); roles and database dropped after."""
    result = _apply(postgres_server, deployment)
    assert result.returncode == 0, result.stderr
    try:
        yield deployment
    finally:
        r = deployment.roles
        postgres_server.execute(f'DROP DATABASE IF EXISTS "{r.database}" WITH (FORCE)')
        for role in (r.exporter, r.owner, r.app):
            postgres_server.execute(f'DROP ROLE IF EXISTS "{role}"')


def _url(pg: PostgresServer, user: str, password: str, dbname: str) -> str:
    return f"postgresql://{user}:{password}@127.0.0.1:{pg.port}/{dbname}"


def _app_url(pg: PostgresServer, dep: Deployment) -> str:
    return _url(pg, dep.roles.app, dep.secrets["POSTGRES_APP_PASSWORD"], dep.roles.database)


def _refused(conn: psycopg.Connection, sql: str) -> str:
    """The error a statement fails with (the test fails if it succeeds)."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
        conn.execute(sql)
    return str(info.value)


def test_the_app_role_cannot_create_roles_run_programs_or_make_databases(
    postgres_server: PostgresServer, roles_applied: Deployment
) -> None:
    dep = roles_applied
    with psycopg.connect(_app_url(postgres_server, dep), autocommit=True) as conn:
        assert "create role" in _refused(conn, "CREATE ROLE intruder")
        assert "superuser" in _refused(conn, "CREATE ROLE intruder SUPERUSER")
        assert "pg_execute_server_program" in _refused(conn, "COPY (SELECT 1) TO PROGRAM 'id'")
        assert "pg_execute_server_program" in _refused(
            conn, "CREATE TEMP TABLE t (x text); COPY t FROM PROGRAM 'id'"
        )
        assert "create database" in _refused(conn, "CREATE DATABASE intruder")
        _refused(conn, "CREATE SCHEMA intruder")
        _refused(conn, "CREATE TABLE public.intruder (x int)")
        _refused(conn, f'ALTER ROLE "{dep.roles.app}" CREATEDB')
        # What it does need: tables in its own schema, found without a prefix.
        conn.execute("CREATE TABLE probe (x int)")
        row = conn.execute("SELECT schemaname FROM pg_tables WHERE tablename = 'probe'").fetchone()
        assert row == (dep.roles.schema,)
        conn.execute("DROP TABLE probe")
    facts = postgres_privileges(_app_url(postgres_server, dep))
    assert facts["schemas_owned"] == [dep.roles.schema] and facts["databases_owned"] == 0
    assert not any(
        facts[k] for k in ("superuser", "createrole", "createdb", "server_program", "create_in_db")
    )


def test_migrations_and_the_ledger_run_as_the_app_and_the_owner_reads_them(
    postgres_server: PostgresServer, roles_applied: Deployment
) -> None:
    from schedgen_ops.service.db import current_version, migrate, migrations

    dep = roles_applied
    migrate(_app_url(postgres_server, dep))
    assert current_version(_app_url(postgres_server, dep)) == migrations()[-1].version
    owner = _url(postgres_server, dep.roles.owner, dep.secrets["POSTGRES_PASSWORD"], dep.roles.database)
    with psycopg.connect(owner, autocommit=True) as conn:
        owners = dict(
            conn.execute(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = %s", (dep.roles.schema,)
            )
        )
        assert set(owners.values()) == {dep.roles.app} and "jobs" in owners
        # The owner's search_path finds the app's tables (backups, psql by hand) and may write them.
        conn.execute(
            "INSERT INTO backup_ledger (backup_id, finished_at, target) VALUES ('b1', now(), 'local')"
        )
        assert conn.execute("SELECT count(*) FROM backup_ledger").fetchone() == (1,)
        conn.execute("DELETE FROM backup_ledger")
        attrs = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert attrs == (False, True, False)


def test_the_owner_restores_into_a_scratch_database_it_creates(
    postgres_server: PostgresServer, roles_applied: Deployment, tmp_path: Path
) -> None:
    """What `backup verify --deep` and a swap restore do, as the owner: pg_dump, CREATE DATABASE, pg_restore
    (objects end up owned by the app role), rename, drop."""
    dep = roles_applied
    from schedgen_ops.service.db import migrate

    migrate(_app_url(postgres_server, dep))
    env = {"PATH": os.environ.get("PATH", ""), "PGPASSWORD": dep.secrets["POSTGRES_PASSWORD"]}
    base = f"host=127.0.0.1 port={postgres_server.port} user={dep.roles.owner}"
    bindir = postgres_server.bindir
    scratch = f"{dep.roles.database}_scratch"

    def run(*argv: str) -> None:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr

    run(
        str(bindir / "pg_dump"),
        "-Fc",
        "-f",
        str(tmp_path / "db.dump"),
        f"--dbname={base} dbname={dep.roles.database}",
    )
    run(
        str(bindir / "psql"),
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        f"--dbname={base} dbname=postgres",
        "-c",
        f'CREATE DATABASE "{scratch}"',
    )
    run(
        str(bindir / "pg_restore"),
        "--exit-on-error",
        f"--dbname={base} dbname={scratch}",
        str(tmp_path / "db.dump"),
    )
    with psycopg.connect(f"{base} dbname={scratch} password={env['PGPASSWORD']}") as conn:
        owners = {
            r[0]
            for r in conn.execute(
                "SELECT tableowner FROM pg_tables WHERE schemaname = %s", (dep.roles.schema,)
            )
        }
    assert owners == {dep.roles.app}
    run(
        str(bindir / "psql"),
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        f"--dbname={base} dbname=postgres",
        "-c",
        f'DROP DATABASE "{scratch}"',
    )


def test_the_exporter_monitors_but_reads_no_table(
    postgres_server: PostgresServer, roles_applied: Deployment
) -> None:
    dep = roles_applied
    from schedgen_ops.service.db import migrate

    migrate(_app_url(postgres_server, dep))
    exporter = _url(
        postgres_server, dep.roles.exporter, dep.secrets["POSTGRES_EXPORTER_PASSWORD"], dep.roles.database
    )
    with psycopg.connect(exporter, autocommit=True) as conn:
        # pg_monitor: other roles' queries are visible, which a plain role sees as <insufficient privilege>.
        with psycopg.connect(_app_url(postgres_server, dep), autocommit=True) as app:
            app.execute("SELECT 1")
            rows = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE usename = %s", (dep.roles.app,)
            ).fetchall()
        assert rows and all(r[0] != "<insufficient privilege>" for r in rows)
        _refused(conn, f'SELECT count(*) FROM "{dep.roles.schema}".jobs')
        _refused(conn, "CREATE ROLE intruder")


def test_roles_sql_is_idempotent_moves_an_old_layout_and_refuses_missing_passwords(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """An older stack kept its tables in public, owned by the owner: re-running moves them into the app's
    schema (data kept). A run without the passwords fails before changing anything."""
    dep = _render(tmp_path)
    r = dep.roles
    try:
        postgres_server.execute(f'CREATE ROLE "{r.owner}" LOGIN SUPERUSER')
        postgres_server.execute(f'CREATE DATABASE "{r.database}" OWNER "{r.owner}"')
        with psycopg.connect(postgres_server.url_for(r.database), autocommit=True) as conn:
            conn.execute(f'SET ROLE "{r.owner}"')
            conn.execute("CREATE TABLE public.schema_migrations (version int PRIMARY KEY)")
            conn.execute("CREATE TABLE public.jobs (id text PRIMARY KEY)")
            conn.execute("INSERT INTO public.jobs VALUES ('queued-before-the-upgrade')")
        missing = {k: v for k, v in dep.env("postgres-init").items() if k != "SCHEDGEN_PG_APP_PASSWORD"}
        refused = _apply(postgres_server, dep, missing)
        assert refused.returncode == 3 and "SCHEDGEN_PG_APP_PASSWORD" in refused.stderr
        for _ in range(2):
            applied = _apply(postgres_server, dep)
            assert applied.returncode == 0, applied.stderr
        with psycopg.connect(_app_url(postgres_server, dep)) as conn:
            assert conn.execute("SELECT id FROM jobs").fetchall() == [("queued-before-the-upgrade",)]
            assert conn.execute("SELECT schemaname FROM pg_tables WHERE tablename = 'jobs'").fetchall() == [
                (r.schema,)
            ]
        with psycopg.connect(postgres_server.url) as conn:
            assert conn.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (r.owner,)
            ).fetchone() == (False,)
    finally:
        postgres_server.execute(f'DROP DATABASE IF EXISTS "{r.database}" WITH (FORCE)')
        for role in (r.exporter, r.owner, r.app):
            postgres_server.execute(f'DROP ROLE IF EXISTS "{role}"')


# --- Redis -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acl_redis(deployment: Deployment) -> Iterator[tuple[RedisServer, Deployment]]:
    """A redis-server started with the rendered ACL users (local/redis-acl.conf), like the local runtime."""
    base = service_tempdir("schedgen-test-acl-")
    server = RedisServer.start(
        base / "data",
        appendonly="no",
        repl_diskless_sync_max_replicas=1,  # as redis.conf: `redis-cli --rdb` starts at once
        password=deployment.secrets["REDIS_BACKUP_PASSWORD"],
        include=str(deployment.tree / "local" / "redis-acl.conf"),
    )
    try:
        yield server, deployment
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _url_for(server: RedisServer, dep: Deployment, user: str, db: int = 0) -> str:
    password = {
        REDIS_APP: "REDIS_PASSWORD",
        REDIS_EXPORTER: "REDIS_EXPORTER_PASSWORD",
        REDIS_BACKUP: "REDIS_BACKUP_PASSWORD",
        REDIS_ADMIN: "REDIS_ADMIN_PASSWORD",
    }[user]
    return f"redis://{user}:{dep.secrets[password]}@127.0.0.1:{server.port}/{db}"


def _client(server: RedisServer, dep: Deployment, user: str) -> redis.Redis:
    return redis.Redis.from_url(_url_for(server, dep, user), socket_timeout=5)


def test_the_app_redis_user_cannot_flushall_or_config_set_but_runs_rq_and_limits(
    acl_redis: tuple[RedisServer, Deployment],
) -> None:
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter
    from rq import Queue, SimpleWorker

    server, dep = acl_redis
    app = _client(server, dep, REDIS_APP)
    app.set("queued", "job")
    for command in (
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"),
        ("KEYS", "*"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    assert app.get("queued") == b"job"
    # The service's real users of Redis work under the app user: an RQ job end to end, the rate limiter.
    queue = Queue("lp", connection=app)
    job = queue.enqueue(len, "four")
    SimpleWorker([queue], connection=app).work(burst=True)
    assert job.get_status(refresh=True) == "finished" and job.return_value() == 4
    limiter = MovingWindowRateLimiter(storage_from_string(_url_for(server, dep, REDIS_APP)))
    assert [limiter.hit(parse("2/minute"), "lp") for _ in range(3)] == [True, True, False]
    # The readiness probe asks inside a discarded MULTI: refused for the app, runs nothing for the admin.
    app_url = _url_for(server, dep, REDIS_APP)
    assert redis_refuses(app_url, ("FLUSHALL",)) and redis_refuses(app_url, ("CONFIG", "SET", "x", "y"))
    assert not redis_refuses(_url_for(server, dep, REDIS_ADMIN), ("FLUSHALL",))
    assert app.get("queued") == b"job"


def test_exporter_reads_stats_only_and_backups_snapshot_and_restore(
    acl_redis: tuple[RedisServer, Deployment], tmp_path: Path
) -> None:
    from schedgen_ops.ops.backup.redis_snapshot import check_rdb, restore_rdb
    from schedgen_ops.ops.backup.targets import LocalTarget

    server, dep = acl_redis
    exporter = _client(server, dep, REDIS_EXPORTER)
    assert "redis_version" in exporter.info("server") and exporter.config_get("maxmemory")
    with pytest.raises(redis.exceptions.NoPermissionError):
        exporter.get("queued")
    with pytest.raises(redis.exceptions.NoPermissionError):
        exporter.config_set("maxmemory-policy", "allkeys-lru")
    admin = _client(server, dep, REDIS_ADMIN)
    admin.set("kept", "1")
    # `default` is what backups log in as, by password only (REDISCLI_AUTH): the same command the
    # backup engine runs, then a restore (FLUSHALL + RESTORE) through the same user.
    backup_url = _url_for(server, dep, REDIS_BACKUP)
    command = LocalTarget("postgresql://x@127.0.0.1/x", backup_url).redis_rdb()
    assert command is not None
    with (tmp_path / "dump.rdb").open("wb") as out:
        result = subprocess.run(
            command.argv, env={**os.environ, **command.env}, stdout=out, timeout=60, check=False
        )
    assert result.returncode == 0
    assert check_rdb(tmp_path / "dump.rdb") in (None, admin.dbsize())
    admin.set("after-the-backup", "1")
    assert restore_rdb(tmp_path / "dump.rdb", backup_url) >= 1
    assert admin.get("kept") == b"1" and admin.get("after-the-backup") is None
    with pytest.raises(redis.exceptions.NoPermissionError):
        _client(server, dep, REDIS_BACKUP).config_set("maxmemory-policy", "allkeys-lru")
    admin.config_set("maxmemory-policy", "noeviction")  # the operator's admin keeps every command


def test_a_postgres_user_whose_role_names_postgres_would_cut_is_refused(tmp_path: Path) -> None:
    from schedgen_ops.errors import SchedgenError

    longest = "u" * (63 - len("_exporter"))
    assert PgRoles.of(load_config(tmp_path, overrides=[f"postgres.user={longest}"], environ={})).exporter
    config = load_config(tmp_path, overrides=[f"postgres.user={longest}x"], environ={})
    with pytest.raises(SchedgenError, match="too long") as info:
        render_tree(config, generate_secrets(), "local", tmp_path / "out", project_dir=tmp_path)
    assert str(63 - len("_exporter")) in (info.value.hint or "")


def test_the_local_bootstrap_runs_roles_sql_with_no_password_in_argv() -> None:
    argv = psql_script_argv(
        Path("/usr/lib/postgresql/15/bin"), 5433, Path("/p/.schedgen/tree/local/roles.sql")
    )
    assert argv == [
        "/usr/lib/postgresql/15/bin/psql",
        "--no-psqlrc",
        "--no-password",
        "--quiet",
        "--set=ON_ERROR_STOP=1",
        "--dbname=host=127.0.0.1 port=5433 user=postgres dbname=postgres",
        "--file=/p/.schedgen/tree/local/roles.sql",
    ]
