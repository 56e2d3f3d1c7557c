"""pgBackRest of a compose stack: the postgres container runs it (the derived image of
container/postgres-pitr.Dockerfile), schedgen drives it through ``docker compose``.

Commands that need the live server (stanza-create, check, backup) run with ``exec`` in the postgres
container, as its user (70) and with its environment, which holds the repository's cipher pass
(secrets/pgbackrest.env): nothing secret is on an argv or in a file schedgen writes. Commands that need
only the repository (info, verify, restore) run in a one-off container of the same service when the
server is down (``run --rm --no-deps``: same image, volumes and environment), so a lost data volume
can still be restored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedgen_ops.config.model import Config
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.pgbackrest import PitrSite
from schedgen_ops.render.pitr import CONTAINER_CONF, CONTAINER_PGDATA, container_paths, stanza
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.runner import Runner

SERVICE = "postgres"
_TAIL = 1200


def pgbackrest_argv(stanza_name: str, command: str, *options: str) -> list[str]:
    """``pgbackrest`` inside the container (its default config path is the mounted one)."""
    return ["pgbackrest", f"--config={CONTAINER_CONF}", f"--stanza={stanza_name}", *options, command]


def psql_argv(sql: str, database: str = "postgres") -> list[str]:
    """psql as the superuser over the container's unix socket (local trust, no password)."""
    return ["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", database, "-tAc", sql]


def in_fresh_dir(path: str, command: list[str]) -> list[str]:
    """``command`` after creating the empty directory ``path`` (mode 0700): pgbackrest restore needs it."""
    return ["sh", "-c", 'mkdir -m 0700 "$0" && exec "$@"', path, *command]


def swap_dirs(live: str, incoming: str, previous: str) -> list[str]:
    """Keep the live data directory as ``previous`` (when there is one) and move ``incoming`` in; when
    the second move fails, the first is undone, so the live path never ends up empty."""
    script = (
        'if [ -e "$0" ]; then mv "$0" "$2" || exit 1; fi; '
        'mv "$1" "$0" || { [ -e "$2" ] && mv "$2" "$0"; exit 1; }'
    )
    return ["sh", "-c", script, live, incoming, previous]


def remove_dir(path: str) -> list[str]:
    return ["rm", "-rf", "--", path]


@dataclass
class ComposePitrSite(PitrSite):
    """The PitrSite of a compose project: same stanza and conf, commands through docker compose."""

    project: A.ComposeProject = field(default_factory=lambda: A.ComposeProject("schedgen", ()))
    runner: Runner = field(default_factory=Runner)
    #: Run repository commands in a one-off container (the server is down or its volume is gone).
    offline: bool = False

    @classmethod
    def for_compose(cls, config: Config, project: A.ComposeProject, runner: Runner) -> ComposePitrSite:
        return cls(
            config=config,
            stanza=stanza(config),
            paths=container_paths(),
            pg_data=Path(CONTAINER_PGDATA),
            pg_port=5432,
            superuser_password="",
            cipher_pass="",
            project=project,
            runner=runner,
        )

    # ----------------------------------------------------------------------------------------- argv

    def in_container(self, command: list[str], *, oneoff: bool = False) -> list[str]:
        if oneoff or self.offline:
            return A.compose_run(self.project, SERVICE, command)
        return A.compose_exec(self.project, SERVICE, command)

    def argv(self, command: str, *options: str) -> list[str]:
        return self.in_container(pgbackrest_argv(self.stanza, command, *options))

    # --------------------------------------------------------------------------------------- running

    def write_conf(self) -> Path:
        """Nothing to write: pgbackrest.conf is rendered into the compose tree and mounted read-only."""
        return Path(CONTAINER_CONF)

    def exec(self, argv: list[str], *, what: str, timeout_s: float, read_only: bool = False) -> str:
        result = self.runner.run(argv, check=False, timeout_s=timeout_s, read_only=read_only)
        if not result.ok:
            detail = (result.stderr.strip() or result.stdout.strip())[-_TAIL:]
            raise SchedgenError(
                f"{what} failed (exit {result.returncode}): {detail or 'no output'}",
                code="pgbackrest_failed",
                hint="is the compose stack up with backup.pitr on (`schedgen status`)? pgBackRest's log is "
                f"in the postgres container: `schedgen exec postgres -- ls {self.paths['log']}`",
            )
        return result.stdout

    def run(self, command: str, *options: str, what: str, timeout_s: float = 3600) -> str:
        read_only = command in ("info", "verify")
        return self.exec(self.argv(command, *options), what=what, timeout_s=timeout_s, read_only=read_only)

    def psql(self, sql: str, *, database: str = "postgres", timeout_s: float = 30) -> str:
        argv = self.in_container(psql_argv(sql, database))
        return self.exec(argv, what="psql in the postgres container", timeout_s=timeout_s, read_only=True)

    def connect_superuser(self, timeout_s: int = 3) -> Any:
        raise SchedgenError(
            "the compose postgres is not published: its superuser is reached through `docker compose exec`",
            code="pitr_compose",
        )

    def last_archived(self) -> dt.datetime | None:
        """pg_stat_archiver.last_archived_time of the live server (None: no answer, or none yet)."""
        try:
            out = self.psql(
                "SELECT coalesce(to_char(last_archived_time AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), '') FROM pg_stat_archiver",
                timeout_s=20,
            ).strip()
        except SchedgenError:
            return None
        return dt.datetime.fromisoformat(out) if out else None

    def is_primary(self) -> bool:
        """Whether the server in the container accepts connections and is out of recovery."""
        try:
            return self.psql("SELECT pg_is_in_recovery()", timeout_s=20).strip() == "f"
        except SchedgenError:
            return False

    def running(self) -> bool:
        """Whether the postgres container answers (``pg_isready`` inside it)."""
        result = self.runner.run(
            A.compose_exec(self.project, SERVICE, ["pg_isready", "-q"]),
            check=False,
            read_only=True,
            timeout_s=30,
        )
        return result.ok
