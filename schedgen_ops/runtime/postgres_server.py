"""A local PostgreSQL server from the binaries on this machine: initdb, start, wait, stop, restart.

Used by the tests (real servers, no mocks), by the local runtime (``initdb`` of its data directory) and
by backup tests that stop and restart a server on the same data directory. When this process is root,
``initdb`` and ``postgres`` run as `SERVICE_USER` and the data directory is chowned to it.

    pg = PostgresServer.start(Path("/tmp/x/pg"))        # initdb on first use, then postgres
    pg.url                                              # postgresql://postgres@127.0.0.1:PORT/postgres
    pg.restart(); pg.stop()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.localserver import (
    SERVICE_USER,
    LocalServer,
    _as_service_user,
    _chown_service_user,
    _pid_alive,
    _wait_pid_gone,
    find_postgres_bindir,
    free_port,
    running_as_root,
)

PG_SUPERUSER = "postgres"


class PostgresServer(LocalServer):
    """A local PostgreSQL server on 127.0.0.1 (trust auth, superuser ``postgres``).

    ``settings`` are passed as ``-c name=value`` (e.g. ``{"fsync": "off"}`` for throwaway test servers).
    """

    program = "postgres"
    code = "postgres"
    ready_means = "accept connections"

    def __init__(self, data_dir: Path, port: int, settings: dict[str, str], log_path: Path) -> None:
        super().__init__(data_dir, port, log_path)
        self.settings = dict(settings)
        self.bindir = find_postgres_bindir()

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int | None = None,
        *,
        settings: dict[str, str] | None = None,
        log_path: Path | None = None,
        timeout: float = 30.0,
    ) -> PostgresServer:
        """Initialise ``data_dir`` when empty, start postgres on ``port``, wait until it answers."""
        data_dir = Path(data_dir).resolve()
        server = cls(
            data_dir,
            port or free_port(),
            settings or {},
            Path(log_path) if log_path else data_dir.parent / f"{data_dir.name}.log",
        )
        server.initdb()
        server._launch(timeout)
        return server

    @property
    def url(self) -> str:
        """URL of the ``postgres`` maintenance database."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        """URL of database ``dbname`` on this server."""
        return f"postgresql://{PG_SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def initdb(self) -> None:
        """Create the cluster unless ``data_dir`` already holds one (PG_VERSION present)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if running_as_root():
            _chown_service_user(self.data_dir)
            self._check_reachable()
        argv = _as_service_user(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                PG_SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SchedgenError(
                f"initdb failed for {self.data_dir}: {(result.stderr or result.stdout).strip()[-500:]}",
                code="postgres_initdb_failed",
                hint="the data directory must be empty and writable by the server user",
            )

    def _check_reachable(self) -> None:
        probe = subprocess.run(
            _as_service_user(["test", "-w", str(self.data_dir)]), capture_output=True, check=False
        )
        if probe.returncode != 0:
            raise SchedgenError(
                f"{self.data_dir} is not reachable by user {SERVICE_USER!r} (Postgres cannot run as root)",
                code="postgres_data_dir_unreachable",
                hint="put the data directory under /tmp or another path every parent of which is "
                "world-executable (see dataservices.service_tempdir)",
            )

    def _launch(self, timeout: float) -> None:
        stale = self.data_dir / "postmaster.pid"
        if stale.exists() and self._postmaster_pid() is not None and _pid_alive(self._postmaster_pid() or 0):
            raise SchedgenError(
                f"a postgres server is already running on {self.data_dir}",
                code="postgres_already_running",
                hint="stop it first",
            )
        argv = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            self.host,
            "-k",
            str(self.data_dir),
        ]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        self._spawn(_as_service_user(argv))
        self._wait_ready(timeout)
        self.pid = self._postmaster_pid()

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    def _probe(self) -> str | None:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                row = conn.execute("SELECT current_setting('data_directory')").fetchone()
        except psycopg.Error as exc:
            return str(exc).strip()
        if row is not None and Path(row[0]).resolve() == self.data_dir:
            return None
        return f"port {self.port} is answered by another server (data directory {row})"

    def is_running(self) -> bool:
        """True while the postmaster process exists."""
        return (
            self.pid is not None
            and _pid_alive(self.pid)
            and (self._proc is None or self._proc.poll() is None)
        )

    def stop(self, *, mode: str = "fast", timeout: float = 30.0) -> None:
        """Shut down (``fast``: SIGINT, ``smart``: SIGTERM, ``immediate``: SIGQUIT) and wait for exit."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        pid = self.pid or self._postmaster_pid()
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if not _wait_pid_gone(pid, None, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_pid_gone(pid, None, 5)
        self._reap(timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash; children exit on their own, recovery runs on next start)."""
        pid = self.pid or self._postmaster_pid()
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.stop(mode="immediate", timeout=10)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run one statement in autocommit mode (CREATE/DROP DATABASE need it)."""
        import psycopg

        with psycopg.connect(self.url_for(dbname), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str, template: str = "template0") -> str:
        """Create database ``name`` (copy of ``template``) and return its URL."""
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its sessions."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
