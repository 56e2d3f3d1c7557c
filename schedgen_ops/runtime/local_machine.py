"""The machine the local runtime runs on: its environment, binaries and directories.

The rendered tree is machine-independent; supervisord gets what differs between machines (binaries,
the user Postgres runs as, the control socket) as environment variables, from `machine_env`.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.frontdoor import find_caddy
from schedgen_ops.runtime.localserver import (
    SERVICE_USER,
    find_postgres_bindir,
    find_redis_server,
    running_as_root,
)

_SOCK_MAX = 100  # AF_UNIX paths are limited to 107 bytes
EXTERNAL_KEYS = ("SCHEDGEN_DATABASE_URL", "SCHEDGEN_REDIS_URL")


def sock_path(run_dir: Path, project: Path) -> Path:
    """supervisord's control socket: under ``run_dir``, or in /tmp when that path is too long for AF_UNIX."""
    path = run_dir / "supervisor.sock"
    if len(str(path)) <= _SOCK_MAX:
        return path
    digest = hashlib.sha256(str(project).encode()).hexdigest()[:16]
    return Path("/tmp") / f"schedgen-{digest}.sock"


def external_urls(environ: Mapping[str, str]) -> dict[str, str]:
    """SCHEDGEN_DATABASE_URL / SCHEDGEN_REDIS_URL given in the environment: use them, run no server."""
    return {k: v for k in EXTERNAL_KEYS if (v := environ.get(k))}


def machine_env(environ: Mapping[str, str], sock: Path, frontdoor_admin: str) -> dict[str, str]:
    """supervisord's environment: machine facts the rendered (machine-independent) config refers to."""
    env = {k: v for k, v in environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")}
    external = external_urls(environ)
    env.update(external)
    env["SCHEDGEN_SUPERVISOR_SOCK"] = str(sock)
    env["SCHEDGEN_PYTHON"] = sys.executable
    env["SCHEDGEN_PG_USER"] = SERVICE_USER if running_as_root() else pwd.getpwuid(os.getuid()).pw_name
    env["SCHEDGEN_PG_BINDIR"] = (
        str(find_postgres_bindir()) if "SCHEDGEN_DATABASE_URL" not in external else "/nonexistent"
    )
    env["SCHEDGEN_REDIS_SERVER"] = (
        str(find_redis_server()) if "SCHEDGEN_REDIS_URL" not in external else "redis-server"
    )
    env["SCHEDGEN_PROMETHEUS"] = shutil.which("prometheus", path=env.get("PATH")) or "prometheus"
    env["SCHEDGEN_CADDY"] = find_caddy(env.get("PATH"))
    env["SCHEDGEN_FRONTDOOR_ADMIN"] = frontdoor_admin
    return env


def supervisord_binary() -> str:
    """The supervisord installed with this toolkit (an unactivated virtualenv has it beside python)."""
    beside = Path(sys.executable).parent / "supervisord"
    return str(beside) if beside.exists() else "supervisord"


def prepare_dirs(
    project: Path, state: Path, dirs: list[Path], data_dir: Path, *, local_postgres: bool
) -> None:
    """Create ``dirs``; when root runs a local Postgres, make sure its user can reach ``data_dir``.

    Postgres runs as `SERVICE_USER` then: every parent of its data directory must be traversable.
    """
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True)
    if running_as_root() and local_postgres:
        for path in (state, data_dir):
            path.chmod(path.stat().st_mode | 0o111)
        probe = project
        while probe != probe.parent:
            if not probe.stat().st_mode & 0o001:
                raise SchedgenError(
                    f"{probe} is not traversable by {SERVICE_USER!r}, so the local Postgres (which "
                    "cannot run as root) cannot reach its data under .schedgen/",
                    code="postgres_data_dir_unreachable",
                    hint=f"chmod o+x {probe}, or use a project directory under /srv or /tmp, or set "
                    "SCHEDGEN_DATABASE_URL to an external Postgres",
                )
            probe = probe.parent
