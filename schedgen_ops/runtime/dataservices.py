"""Start and stop local PostgreSQL and Redis servers from the binaries on this machine.

Used by the tests (real servers, no mocks), by the local runtime when no external URL is configured,
and by backup/health tests that need to stop and restart a server on the same data directory.

Postgres refuses to run as root; when this process is root, ``initdb`` and ``postgres`` run as the
unprivileged ``nobody`` user via ``runuser`` and the data directory is chowned to it. That directory
must be reachable by ``nobody`` (e.g. under /tmp, see `service_tempdir`).

    pg = PostgresServer.start(Path("/tmp/x/pg"))        # initdb on first use, then postgres
    pg.url                                              # postgresql://postgres@127.0.0.1:PORT/postgres
    pg.restart(); pg.stop()
    rd = RedisServer.start(Path("/tmp/x/redis"), appendonly="yes")
    rd.url; rd.restart(); rd.stop()
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any, ClassVar

from schedgen_ops.errors import SchedgenError

SERVICE_USER = "nobody"
PG_SUPERUSER = "postgres"
_LOG_TAIL = 2000


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int, host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A port p such that p .. p+count-1 are all free on ``host`` right now.

    Replicas of the local runtime take consecutive ports (api, worker metrics); a single free port
    from the OS says nothing about its neighbours, which are often the next ephemeral ports handed out.
    """
    for _ in range(attempts):
        base = free_port(host)
        if base + count < 65536 and all(_port_is_free(base + i, host) for i in range(count)):
            return base
    raise SchedgenError(f"no block of {count} free ports found on {host}", code="no_free_ports")


def _port_is_free(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def running_as_root() -> bool:
    """True when this process is root (Postgres must then run as `SERVICE_USER`)."""
    return os.geteuid() == 0


def service_tempdir(prefix: str = "schedgen-") -> Path:
    """A fresh directory under the system temp dir that `SERVICE_USER` can reach and own.

    pytest's own tmp dirs live under a 0700 root directory that ``nobody`` cannot enter, so servers
    that drop privileges need a directory made here instead. The caller removes it.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=tempfile.gettempdir()))
    path.chmod(0o755)
    if running_as_root():
        _chown_service_user(path)
    return path


def _chown_service_user(path: Path) -> None:
    entry = pwd.getpwnam(SERVICE_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _as_service_user(argv: list[str]) -> list[str]:
    """Prefix ``argv`` with runuser when root; Postgres binaries refuse to run as root."""
    if not running_as_root():
        return argv
    runuser = shutil.which("runuser")
    if runuser is None:
        raise SchedgenError(
            "runuser not found: Postgres cannot run as root and no way to drop privileges",
            code="missing_binary",
            hint="apt-get install util-linux",
        )
    return [runuser, "-u", SERVICE_USER, "--", *argv]


def find_postgres_bindir() -> Path:
    """The directory holding both ``initdb`` and ``postgres``: PATH first, then /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise SchedgenError(
        "initdb not found on PATH or in /usr/lib/postgresql/*/bin",
        code="missing_binary",
        hint="apt-get install postgresql",
    )


def find_redis_server() -> Path:
    """The redis-server binary on PATH."""
    found = shutil.which("redis-server")
    if found is None:
        raise SchedgenError(
            "redis-server not found on PATH", code="missing_binary", hint="apt-get install redis-server"
        )
    return Path(found)


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-_LOG_TAIL:].strip()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_pid_gone(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None and not _pid_alive(pid):
            return True
        if proc is None and not _pid_alive(pid):
            return True
        if proc is not None:
            proc.poll()  # reap a zombie child so kill(pid, 0) stops succeeding
        time.sleep(0.05)
    return False


class PostgresServer:
    """A local PostgreSQL server on 127.0.0.1 (trust auth, superuser ``postgres``).

    ``settings`` are passed as ``-c name=value`` (e.g. ``{"fsync": "off"}`` for throwaway test servers).
    """

    def __init__(self, data_dir: Path, port: int, settings: dict[str, str], log_path: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = "127.0.0.1"
        self.settings = dict(settings)
        self.log_path = log_path
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
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
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self._proc = subprocess.Popen(
            _as_service_user(argv), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready(timeout)
        self.pid = self._postmaster_pid()

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise SchedgenError(
                    f"postgres exited with code {self._proc.returncode} while starting on port {self.port}: "
                    f"{_tail(self.log_path)}",
                    code="postgres_start_failed",
                    hint=f"see {self.log_path}",
                )
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    row = conn.execute("SELECT current_setting('data_directory')").fetchone()
                if row is not None and Path(row[0]).resolve() == self.data_dir:
                    return
                last_error = f"port {self.port} is answered by another server (data directory {row})"
            except psycopg.Error as exc:
                last_error = str(exc).strip()
            time.sleep(0.1)
        self.stop()
        raise SchedgenError(
            f"postgres did not accept connections on port {self.port} within {timeout:.0f}s: {last_error}",
            code="postgres_start_timeout",
            hint=f"see {self.log_path}",
        )

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
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None
        self.pid = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash; children exit on their own, recovery runs on next start)."""
        pid = self.pid or self._postmaster_pid()
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.stop(mode="immediate", timeout=10)

    def restart(self, *, timeout: float = 30.0) -> PostgresServer:
        """Stop (if running) and start again on the same data directory and port."""
        self.stop()
        self._launch(timeout)
        return self

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

    def __repr__(self) -> str:
        return f"PostgresServer(url={self.url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"


class RedisServer:
    """A local redis-server on 127.0.0.1; ``config`` items become ``--name value`` arguments.

    Defaults suit a queue Redis: ``appendonly yes`` and ``maxmemory-policy noeviction`` (eviction on a
    queue silently loses jobs), RDB snapshots off.
    """

    DEFAULTS: ClassVar[dict[str, str]] = {
        "appendonly": "yes",
        "maxmemory-policy": "noeviction",
        "save": "",
    }

    def __init__(
        self, data_dir: Path, port: int, config: dict[str, str], log_path: Path, password: str | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = "127.0.0.1"
        self.config = config
        self.password = password
        self.log_path = log_path
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.binary = find_redis_server()

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        timeout: float = 15.0,
        password: str | None = None,
        **config: Any,
    ) -> RedisServer:
        """Start redis-server with ``dir=data_dir``; keyword config uses underscores for dashes.

        ``password``: the ``default`` user's, when the config (e.g. ``include=`` ACL users) requires one;
        the start-up probe authenticates with it.
        """
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        merged = dict(cls.DEFAULTS)
        merged.update({key.replace("_", "-"): str(value) for key, value in config.items()})
        server = cls(
            data_dir,
            port or free_port(),
            merged,
            Path(log_path) if log_path else data_dir.parent / f"{data_dir.name}.log",
            password,
        )
        server._launch(timeout)
        return server

    @property
    def url(self) -> str:
        """URL of database 0."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """URL of logical database ``db``."""
        return f"redis://{self.host}:{self.port}/{db}"

    def _launch(self, timeout: float) -> None:
        argv = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        for name, value in self.config.items():
            argv += [f"--{name}", value]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self._proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self._proc.pid
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import redis

        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise SchedgenError(
                    f"redis-server exited with code {self._proc.returncode} while starting on port "
                    f"{self.port}: {_tail(self.log_path)}",
                    code="redis_start_failed",
                    hint=f"see {self.log_path}",
                )
            try:
                client = redis.Redis(
                    host=self.host,
                    port=self.port,
                    password=self.password,
                    socket_timeout=1,
                    socket_connect_timeout=1,
                )
                try:
                    # LOADING (AOF replay) raises BusyLoadingError; wait for it to finish.
                    info = client.info("server")
                    if int(info.get("process_id", -1)) == self.pid:
                        return
                    last_error = f"port {self.port} is answered by another redis-server"
                finally:
                    client.close()
            except redis.RedisError as exc:
                last_error = str(exc)
            time.sleep(0.05)
        self.stop()
        raise SchedgenError(
            f"redis-server did not answer PING on port {self.port} within {timeout:.0f}s: {last_error}",
            code="redis_start_timeout",
            hint=f"see {self.log_path}",
        )

    def is_running(self) -> bool:
        """True while the server process runs."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM (Redis flushes the AOF and exits) and wait; SIGKILL after ``timeout``."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=5)
            self._proc = None
        self.pid = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the server (a crash: only what the AOF already holds survives)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self.stop()

    def restart(self, *, timeout: float = 15.0) -> RedisServer:
        """Stop (if running) and start again with the same dir, port and config (AOF is replayed)."""
        self.stop()
        self._launch(timeout)
        return self

    def __repr__(self) -> str:
        return f"RedisServer(url={self.url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"
