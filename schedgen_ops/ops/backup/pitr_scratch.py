"""Restore the pgBackRest repository to a moment into a scratch data directory and recover it there.

Both `restore --to` and the `backup verify --deep` drill use this: the live server is never touched
while it runs. The scratch server runs with ``archive_mode=off`` (it pushes nothing into the
repository, so a discarded attempt leaves no stray timeline behind), a trust pg_hba on loopback (its
own port, its own lifetime) and no unix socket. It promotes at the target; the caller then reads it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.pgbackrest import PitrSite, _give_to_service_user
from schedgen_ops.runtime.dataservices import PostgresServer, free_port

#: Lines pgBackRest writes into postgresql.auto.conf for the recovery; dropped after promotion.
_RECOVERY_KEYS = re.compile(r"^\s*(restore_command|recovery_target\w*)\s*=", re.MULTILINE)


@dataclass
class RecoveryTarget:
    """``latest`` (every archived WAL segment) or an aware UTC time."""

    time: dt.datetime | None = None

    @classmethod
    def parse(cls, text: str) -> RecoveryTarget:
        if text.strip().lower() == "latest":
            return cls(None)
        try:
            value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise SchedgenError(
                f"--to {text!r} is neither 'latest' nor an ISO 8601 time",
                code="usage",
                hint="e.g. --to 2026-12-02T02:29:00Z or --to latest",
                exit_code=2,
            ) from exc
        if value.tzinfo is None:
            raise SchedgenError(
                f"--to {text!r} has no time zone",
                code="usage",
                hint="add one (Z for UTC, or +02:00): a restore target must be unambiguous",
                exit_code=2,
            )
        return cls(value.astimezone(dt.UTC))

    def options(self) -> list[str]:
        if self.time is None:
            return ["--type=default"]
        stamp = self.time.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        return ["--type=time", f"--target={stamp}", "--target-action=promote"]

    def describe(self) -> str:
        return "latest" if self.time is None else self.time.isoformat().replace("+00:00", "Z")


def restore_files(site: PitrSite, dest: Path, target: RecoveryTarget) -> None:
    """`pgbackrest restore` of the backup before ``target`` into the empty directory ``dest``."""
    if dest.exists() and any(dest.iterdir()):
        raise SchedgenError(f"{dest} is not empty", code="pitr_scratch_busy", hint=f"remove {dest}")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    _give_to_service_user(dest)
    site.run(
        "restore",
        f"--pg1-path={dest}",
        *target.options(),
        what=f"restoring the repository to {target.describe()}",
    )


@contextlib.contextmanager
def recovered(dest: Path, *, max_connections: int, timeout_s: float = 600) -> Iterator[PostgresServer]:
    """Start Postgres on the restored ``dest``, wait for the end of recovery, yield it, stop it.

    ``max_connections`` must be at least the live server's: recovery refuses a lower value.
    """
    hba = dest.parent / f"{dest.name}.hba.conf"
    hba.write_text("host all all 127.0.0.1/32 trust\n")
    hba.chmod(0o644)
    server = PostgresServer(
        dest,
        free_port(),
        {"archive_mode": "off", "hba_file": str(hba), "max_connections": str(max_connections)},
        dest.parent / f"{dest.name}.log",
    )
    try:
        server._launch(timeout_s)
        _wait_promoted(server, timeout_s)
        yield server
    finally:
        server.stop()
        hba.unlink(missing_ok=True)


def _wait_promoted(server: PostgresServer, timeout_s: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(server.url, connect_timeout=3) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and not row[0]:
                return
        except psycopg.Error:
            if not server.is_running():
                raise
        if time.monotonic() > deadline:
            raise SchedgenError(
                f"the scratch server was still recovering after {timeout_s:.0f}s",
                code="pitr_recovery_timeout",
                hint=f"see {server.log_path}",
            )
        time.sleep(0.2)


def finish_recovery_files(dest: Path) -> list[str]:
    """After promotion: drop pgBackRest's recovery lines and queue the new timeline's history file(s)
    for archiving (the scratch server archived nothing), so later restores can follow the timeline."""
    auto = dest / "postgresql.auto.conf"
    if auto.is_file():
        kept = [line for line in auto.read_text().splitlines() if not _RECOVERY_KEYS.match(line)]
        auto.write_text("\n".join(kept) + "\n")
    queued = []
    status = dest / "pg_wal" / "archive_status"
    for history in sorted((dest / "pg_wal").glob("*.history")):
        if not (status / f"{history.name}.done").exists():
            ready = status / f"{history.name}.ready"
            ready.touch()
            _give_to_service_user(ready)
            queued.append(history.name)
    return queued


def remove_tree(path: Path, *, keep_log: bool = False) -> None:
    """Remove a scratch directory (and its log unless ``keep_log``: a failed attempt's log says why)."""
    shutil.rmtree(path, ignore_errors=True)
    extras = [path.parent / f"{path.name}.hba.conf"] + (
        [] if keep_log else [path.parent / f"{path.name}.log"]
    )
    for extra in extras:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(extra)
