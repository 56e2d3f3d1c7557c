"""Where the data lives and the commands that read and write it, per runtime.

Every command is built by a pure method returning a `Command` (argv + extra environment, passwords go
in the environment, never in argv where `ps` shows them). The backup and restore engines only run
commands, so the local target (run for real in tests) and the compose/kubernetes targets (exec into
the containers, streamed over stdout/stdin, no temp copy inside the container) share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.tools import PgTools, tools_for_server
from schedgen_ops.runtime.argv import ComposeProject, KubeTarget, compose_exec, compose_run


@dataclass(frozen=True)
class Command:
    """One external command: argv plus environment additions (secrets)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


class Target(Protocol):
    """The operations backup and restore need from a runtime."""

    name: str
    #: True when pg_restore reads the archive from stdin (remote exec) instead of a local file path.
    restore_from_stdin: bool

    def postgres_version(self) -> tuple[int, str]:
        """(server_version_num, server_version) of the Postgres server."""

    def redis_version(self) -> str | None:
        """Redis server version, or None when no Redis is configured."""

    def pg_dump(self) -> Command:
        """``pg_dump -Fc`` of the service database to stdout."""

    def pg_dumpall_globals(self, *, role_passwords: bool) -> Command:
        """``pg_dumpall --globals-only`` (roles, tablespaces) to stdout."""

    def redis_rdb(self) -> Command | None:
        """An RDB snapshot of Redis to stdout (``redis-cli --rdb -``), or None without Redis."""

    def pg_dump_version(self) -> str:
        """The version line of the pg_dump the target runs."""

    def pg_restore(self, archive: Path, *, jobs: int, clean: bool, dbname: str | None = None) -> Command:
        """Restore ``archive`` into the service database (or ``dbname``); ``clean``: in place, in one
        transaction (so a failure leaves the database as it was)."""

    def psql(self, sql: str, *, dbname: str | None = None) -> Command:
        """Run one SQL statement, unaligned tuples-only output."""

    def uploads_archive(self) -> Command | None:
        """A tar of the pending upload files to stdout, when they live inside the stack (else None)."""

    def uploads_extract(self) -> Command | None:
        """Unpack a tar of upload files from stdin into the stack's upload volume (else None)."""


# ----------------------------------------------------------------------------------------------- local


@dataclass(frozen=True)
class PgConn:
    """A parsed postgresql:// URL with the password split off."""

    params: dict[str, str]
    password: str | None

    @classmethod
    def parse(cls, url: str) -> PgConn:
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        except Exception as exc:
            raise SchedgenError(f"invalid database URL: {exc}", code="bad_database_url") from exc
        password = params.pop("password", None)
        if not params.get("dbname"):
            raise SchedgenError(
                "the database URL names no database",
                code="bad_database_url",
                hint="postgresql://user@host/db",
            )
        return cls(params, password)

    @property
    def dbname(self) -> str:
        return self.params["dbname"]

    def conninfo(self, dbname: str | None = None) -> str:
        """libpq conninfo without the password (for argv)."""
        from psycopg.conninfo import make_conninfo

        params = dict(self.params)
        if dbname:
            params["dbname"] = dbname
        return make_conninfo(**params)

    def url_with_password(self, dbname: str | None = None) -> str:
        """conninfo including the password (for in-process psycopg connections only)."""
        from psycopg.conninfo import make_conninfo

        params = dict(self.params)
        if dbname:
            params["dbname"] = dbname
        if self.password is not None:
            params["password"] = self.password
        return make_conninfo(**params)

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password} if self.password else {}


def _redis_env_and_url(url: str) -> tuple[str, dict[str, str]]:
    """Strip the password out of a redis:// URL into REDISCLI_AUTH."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url, {}
    netloc = parts.hostname or "127.0.0.1"
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username and parts.username != "default":
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), {"REDISCLI_AUTH": parts.password}


@dataclass
class LocalTarget:
    """Postgres and Redis reachable from this machine by URL (the local runtime or external services)."""

    database_url: str
    redis_url: str | None = None
    name: str = "local"
    restore_from_stdin: bool = False
    _tools: PgTools | None = None

    @property
    def conn(self) -> PgConn:
        return PgConn.parse(self.database_url)

    def postgres_version(self) -> tuple[int, str]:
        import psycopg

        try:
            with psycopg.connect(self.conn.url_with_password(), connect_timeout=10) as db:
                row = db.execute(
                    "SELECT current_setting('server_version_num'), current_setting('server_version')"
                ).fetchone()
        except psycopg.Error as exc:
            raise SchedgenError(
                f"cannot connect to Postgres: {str(exc).strip()}",
                code="postgres_unreachable",
                hint="is the database running? check --database-url / SCHEDGEN_DATABASE_URL",
            ) from exc
        assert row is not None
        return int(row[0]), str(row[1])

    @property
    def tools(self) -> PgTools:
        if self._tools is None:
            num, _ = self.postgres_version()
            self._tools = tools_for_server(num // 10000)
        return self._tools

    def redis_version(self) -> str | None:
        if not self.redis_url:
            return None
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        try:
            return str(client.info("server")["redis_version"])
        except redis.RedisError as exc:
            raise SchedgenError(
                f"cannot reach Redis: {exc}",
                code="redis_unreachable",
                hint="check --redis-url / SCHEDGEN_REDIS_URL",
            ) from exc
        finally:
            client.close()

    def pg_dump_version(self) -> str:
        return self.tools.version("pg_dump")

    def pg_dump(self) -> Command:
        conn = self.conn
        return Command(
            [self.tools.path("pg_dump"), "--format=custom", "--no-password", f"--dbname={conn.conninfo()}"],
            conn.env(),
        )

    def pg_dumpall_globals(self, *, role_passwords: bool) -> Command:
        conn = self.conn
        argv = [
            self.tools.path("pg_dumpall"),
            "--globals-only",
            "--no-password",
            f"--dbname={conn.conninfo()}",
        ]
        if not role_passwords:
            argv.append("--no-role-passwords")
        return Command(argv, conn.env())

    def redis_rdb(self) -> Command | None:
        if not self.redis_url:
            return None
        url, env = _redis_env_and_url(self.redis_url)
        return Command(["redis-cli", "-u", url, "--no-auth-warning", "--rdb", "-"], env)

    def pg_restore(self, archive: Path, *, jobs: int, clean: bool, dbname: str | None = None) -> Command:
        conn = self.conn
        argv = [self.tools.path("pg_restore"), "--no-password", "--exit-on-error"]
        if clean:  # in place: all or nothing (one transaction excludes parallel jobs)
            argv += ["--clean", "--if-exists", "--single-transaction"]
        else:
            argv.append(f"--jobs={jobs}")
        argv += [f"--dbname={conn.conninfo(dbname)}", str(archive)]
        return Command(argv, conn.env())

    def psql(self, sql: str, *, dbname: str | None = None) -> Command:
        conn = self.conn
        return Command(
            [
                self.tools.path("psql"),
                "--no-password",
                "--no-psqlrc",
                "--set=ON_ERROR_STOP=1",
                "--tuples-only",
                "--no-align",
                f"--dbname={conn.conninfo(dbname)}",
                "--command",
                sql,
            ],
            conn.env(),
        )

    def uploads_archive(self) -> Command | None:
        return None  # uploads reachable from here are archived through storage_url

    def uploads_extract(self) -> Command | None:
        return None


# --------------------------------------------------------------------------------------------- compose


def _pg_dump_args(user: str, db: str) -> list[str]:
    return ["pg_dump", "--format=custom", "--no-password", f"--username={user}", f"--dbname={db}"]


def _pg_restore_args(user: str, db: str, *, clean: bool) -> list[str]:
    # Parallel restore (-j) needs a seekable file; over exec the archive arrives on stdin, so one job.
    argv = ["pg_restore", "--no-password", "--exit-on-error", f"--username={user}", f"--dbname={db}"]
    if clean:  # in place: all or nothing
        argv += ["--clean", "--if-exists", "--single-transaction"]
    return argv


def _psql_args(user: str, db: str, sql: str) -> list[str]:
    return [
        "psql",
        "--no-password",
        "--no-psqlrc",
        "--set=ON_ERROR_STOP=1",
        "--tuples-only",
        "--no-align",
        f"--username={user}",
        f"--dbname={db}",
        "--command",
        sql,
    ]


@dataclass
class _ExecTarget:
    """Shared logic of targets whose tools run inside containers via an exec prefix."""

    pg_user: str = "schedgen"
    pg_database: str = "schedgen"
    with_redis: bool = True
    restore_from_stdin: bool = True

    def _pg_exec(self, command: list[str], *, stdin: bool = False) -> list[str]:
        raise NotImplementedError

    def _redis_exec(self, command: list[str]) -> list[str]:
        raise NotImplementedError

    def _run(self, argv: list[str], what: str) -> str:
        from schedgen_ops.ops.backup.streaming import run_checked

        return run_checked(argv, what=what, timeout=60).strip()

    def postgres_version(self) -> tuple[int, str]:
        sql = "SELECT current_setting('server_version_num') || ' ' || current_setting('server_version')"
        out = self._run(
            self._pg_exec(_psql_args(self.pg_user, self.pg_database, sql)), "reading the server version"
        )
        num, _, text = out.partition(" ")
        return int(num), text

    def redis_version(self) -> str | None:
        if not self.with_redis:
            return None
        out = self._run(self._redis_exec(["redis-cli", "INFO", "server"]), "reading the Redis version")
        for line in out.splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return None

    def pg_dump_version(self) -> str:
        return self._run(self._pg_exec(["pg_dump", "--version"]), "reading the pg_dump version")

    def pg_dump(self) -> Command:
        return Command(self._pg_exec(_pg_dump_args(self.pg_user, self.pg_database)))

    def pg_dumpall_globals(self, *, role_passwords: bool) -> Command:
        argv = ["pg_dumpall", "--globals-only", "--no-password", f"--username={self.pg_user}"]
        if not role_passwords:
            argv.append("--no-role-passwords")
        return Command(self._pg_exec(argv))

    def redis_rdb(self) -> Command | None:
        if not self.with_redis:
            return None
        return Command(self._redis_exec(["redis-cli", "--no-auth-warning", "--rdb", "-"]))

    def pg_restore(self, archive: Path, *, jobs: int, clean: bool, dbname: str | None = None) -> Command:
        del archive, jobs  # streamed on stdin by the engine; parallelism needs a file in the container
        return Command(
            self._pg_exec(_pg_restore_args(self.pg_user, dbname or self.pg_database, clean=clean), stdin=True)
        )

    def psql(self, sql: str, *, dbname: str | None = None) -> Command:
        return Command(self._pg_exec(_psql_args(self.pg_user, dbname or self.pg_database, sql)))


@dataclass
class ComposeTarget(_ExecTarget):
    """A Docker Compose stack: ``docker compose exec -T <service> ...`` streamed to local files."""

    project: ComposeProject = field(default_factory=lambda: ComposeProject("schedgen", ()))
    postgres_service: str = "postgres"
    redis_service: str = "redis"
    name: str = "compose"
    #: The service that mounts the ``uploads`` volume (file storage; empty with MinIO).
    uploads_service: str = ""
    uploads_dir: str = "/data/uploads"

    def uploads_archive(self) -> Command | None:
        if not self.uploads_service:
            return None
        # `run --rm --no-deps`: a fresh container of the service with its volumes, so it works whether
        # or not the writers are running (a restore stops them).
        tar = ["tar", "-C", self.uploads_dir, "-cf", "-", "."]
        return Command(compose_run(self.project, self.uploads_service, tar))

    def uploads_extract(self) -> Command | None:
        if not self.uploads_service:
            return None
        tar = ["tar", "-C", self.uploads_dir, "--no-same-owner", "--no-overwrite-dir", "-xf", "-"]
        return Command(compose_run(self.project, self.uploads_service, tar))

    def _pg_exec(self, command: list[str], *, stdin: bool = False) -> list[str]:
        # `exec -T` keeps stdin attached without a TTY, so the same prefix reads and writes streams.
        del stdin
        return compose_exec(self.project, self.postgres_service, command)

    def _redis_exec(self, command: list[str]) -> list[str]:
        return compose_exec(self.project, self.redis_service, command)


@dataclass
class KubernetesTarget(_ExecTarget):
    """A Kubernetes namespace: ``kubectl exec [-i] <workload> -- ...`` streamed to local files."""

    kube: KubeTarget = field(default_factory=lambda: KubeTarget("schedgen"))
    postgres_workload: str = "statefulset/postgres"
    redis_workload: str = "statefulset/redis"
    name: str = "kubernetes"

    def _exec(self, workload: str, command: list[str], *, stdin: bool) -> list[str]:
        argv = [*self.kube.prefix(), "exec"]
        if stdin:
            argv.append("-i")
        return [*argv, workload, "--", *command]

    def _pg_exec(self, command: list[str], *, stdin: bool = False) -> list[str]:
        return self._exec(self.postgres_workload, command, stdin=stdin)

    def _redis_exec(self, command: list[str]) -> list[str]:
        return self._exec(self.redis_workload, command, stdin=False)

    def uploads_archive(self) -> Command | None:
        return None  # uploads live in MinIO or a PVC: archived through storage_url (not from here)

    def uploads_extract(self) -> Command | None:
        return None
