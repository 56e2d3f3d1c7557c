"""What the local PostgreSQL and Redis servers share: ports, privileges, binaries, the child process.

Postgres refuses to run as root; when this process is root, its binaries run as the unprivileged
`SERVICE_USER` via ``runuser`` (see `_as_service_user`) in a directory that user can reach (see
`service_tempdir`). `LocalServer` is the child process both server classes start, wait for and stop.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, ClassVar, Self

from schedgen_ops.errors import SchedgenError

SERVICE_USER = "nobody"
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


class LocalServer:
    """A server child process on 127.0.0.1 whose output is appended to ``log_path``.

    Subclasses say how to tell that it answers (`_probe`) and name themselves in errors: ``program``
    (the binary), ``code`` (the error codes' prefix) and ``ready_means`` (what it failed to do in time).
    """

    program: ClassVar[str]
    code: ClassVar[str]
    ready_means: ClassVar[str]
    poll_s: ClassVar[float] = 0.1
    start_timeout: ClassVar[float] = 30.0

    def __init__(self, data_dir: Path, port: int, log_path: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = "127.0.0.1"
        self.log_path = log_path
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own session (a terminal's ^C does not reach it), output to the log."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self._proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self._proc

    def _probe(self) -> str | None:
        """None once this very server answers; else why not yet (retried until the timeout)."""
        raise NotImplementedError

    def _wait_ready(self, timeout: float) -> None:
        """Until `_probe` says ready; an early exit or the timeout is an error naming the log."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise SchedgenError(
                    f"{self.program} exited with code {self._proc.returncode} while starting on port "
                    f"{self.port}: {_tail(self.log_path)}",
                    code=f"{self.code}_start_failed",
                    hint=f"see {self.log_path}",
                )
            problem = self._probe()
            if problem is None:
                return
            last_error = problem
            time.sleep(self.poll_s)
        self.stop()
        raise SchedgenError(
            f"{self.program} did not {self.ready_means} on port {self.port} within {timeout:.0f}s: "
            f"{last_error}",
            code=f"{self.code}_start_timeout",
            hint=f"see {self.log_path}",
        )

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _launch(self, timeout: float) -> None:
        raise NotImplementedError

    def stop(self, *, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def restart(self, *, timeout: float | None = None) -> Self:
        """Stop (if running) and start again with the same directory, port and settings."""
        self.stop()
        self._launch(self.start_timeout if timeout is None else timeout)
        return self

    def _reap(self, timeout: float) -> None:
        """Wait for the child to exit (SIGKILL after ``timeout``), then `_forget` it."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._forget()

    def _forget(self) -> None:
        """After the process has exited: no pid, no child, the log closed."""
        self._proc = None
        self.pid = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"
