"""`schedgen restore --to TIME|latest`: the local Postgres back to a moment, as safely as a set.

Order: check the target against the recoverable window and `pgbackrest verify` the repository ->
restore and recover into a scratch data directory beside the live one (the service keeps running) and
check it -> a pg_dump safety set of the current state -> with the writers stopped (the swap window of
pitr_flow.py, which the compose restore shares): stop Postgres, keep the live directory as
``postgres.before-<time>``, move the recovered one in, start Postgres -> start the writers.

A failure before the move leaves the live data and the writers as they were. A failure after it (the
recovered directory does not start) leaves the writers stopped and says where both directories are.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import pitr
from schedgen_ops.ops.backup.create import BackupRequest
from schedgen_ops.ops.backup.manifest import utcnow
from schedgen_ops.ops.backup.pgbackrest import PitrSite
from schedgen_ops.ops.backup.pitr_flow import (
    TABLES_SQL,
    PitrRestoreReport,
    finish,
    not_recovered,
    recovered_check,
    swap_with_writers_stopped,
    under_restore_lock,
    verified_report,
)
from schedgen_ops.ops.backup.pitr_scratch import (
    RecoveryTarget,
    finish_recovery_files,
    recovered,
    remove_tree,
    restore_files,
)
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.restore import RestoreRequest, _InDoubt
from schedgen_ops.ops.backup.writers import SupervisorWriters, Writers


@dataclass
class PitrRestoreRequest:
    site: PitrSite
    target: RecoveryTarget
    base: RestoreRequest  # the writers, the pg_dump target and the signing key of the safety set
    postgres: SupervisorWriters | None  # the local runtime's `postgres` program, None when it is down
    safety_request: BackupRequest | None = None
    database: str = "schedgen"
    start_timeout_s: float = 120.0


def restore_to(request: PitrRestoreRequest, reporter: Reporter | None = None) -> PitrRestoreReport:
    return under_restore_lock(request.base.directory, reporter, lambda r: _restore_locked(request, r))


def _restore_locked(request: PitrRestoreRequest, reporter: Reporter) -> PitrRestoreReport:
    started = time.monotonic()
    site = request.site
    report = verified_report(
        site,
        request.target,
        request.database,
        "recovered into a scratch directory, then moved in",
        pitr.last_archived_time(site),
        reporter,
    )

    stamp = utcnow().strftime("%Y%m%dt%H%M%Sz")
    live = site.pg_data
    incoming = live.parent / f"{live.name}.pitr-{stamp}"
    report.mark("restore postgres")
    clock = time.monotonic()
    try:
        with reporter.step(f"restore: pgbackrest into {incoming}"):
            restore_files(site, incoming, request.target)
        with (
            reporter.step("recover: scratch server to the target"),
            recovered(incoming, max_connections=site.config.max_connections()) as server,
        ):
            report.recovered_rows = _counts(server.url_for(request.database))
        report.history_queued = finish_recovery_files(incoming)
    except SchedgenError as exc:
        remove_tree(incoming, keep_log=True)
        raise not_recovered("recovering", request.target, exc, report) from exc
    report.postgres_restore_s = round(time.monotonic() - clock, 3)
    report.checks.append(recovered_check(report))

    previous = live.parent / f"{live.name}.before-{stamp}"

    def move_in() -> None:
        _stop_postgres(request)
        try:
            _swap_in(live, incoming, previous)
        except OSError as exc:
            # _swap_in put the live directory back: start Postgres on it, so the writers can restart.
            _start_again_or_in_doubt(request, f"moving {incoming} in failed: {exc}", live, previous)
            raise SchedgenError(
                f"moving the recovered data directory in failed: {exc}; the live data was put back",
                code="restore_failed",
                hint=f"check the permissions and free space of {live.parent}, then restore again",
            ) from exc
        if previous.exists():
            report.previous_database = str(previous)
        report.data_dir = str(live)

    def start() -> None:
        try:
            _start_postgres(request)
        except SchedgenError as exc:
            kept = f"; the data before the restore is in {previous}" if report.previous_database else ""
            raise _InDoubt(
                f"Postgres did not start on the recovered data directory {live}: {exc.message}{kept}",
                code="restore_failed",
                hint="see .schedgen/logs/postgres.log; move the old directory back to undo",
            ) from exc

    swap_with_writers_stopped(
        request, report, reporter, move_in=move_in, start=start, discard=lambda: remove_tree(incoming)
    )
    return finish(report, site, check_timeout_s=120, started=started)


def _counts(url: str) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    counts = {}
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            tables = conn.execute(TABLES_SQL).fetchall()
            for schema, name in tables:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
                ).fetchone()
                counts[f"{schema}.{name}"] = int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise SchedgenError(
            f"the recovered database does not answer: {str(exc).strip()}", code="pitr_recovered_unreadable"
        ) from exc
    return counts


def _swap_in(live: Path, incoming: Path, previous: Path) -> None:
    """Keep ``live`` as ``previous`` (when there is one) and move ``incoming`` in; on failure the live
    directory is where it was."""
    if live.exists():
        os.rename(live, previous)
    try:
        os.rename(incoming, live)
    except OSError:
        if previous.exists() and not live.exists():
            os.rename(previous, live)
        raise


def _start_again_or_in_doubt(request: PitrRestoreRequest, what: str, live: Path, previous: Path) -> None:
    """After a failed swap: Postgres back on the live directory, or writers left stopped (in doubt)."""
    try:
        _start_postgres(request)
    except SchedgenError as exc:
        raise _InDoubt(
            f"{what}, and Postgres did not start again on {live}: {exc.message}",
            code="restore_failed",
            hint=f"the data before the restore is {live} (or {previous}); see .schedgen/logs/postgres.log",
        ) from exc


def _stop_postgres(request: PitrRestoreRequest) -> None:
    if request.postgres is not None:
        request.postgres.stop()
        return
    if _port_open(request.site.pg_port):
        raise SchedgenError(
            f"a Postgres answers on port {request.site.pg_port} but the local runtime's supervisord is not "
            "reachable to stop it",
            code="restore_postgres_running",
        )


def _start_postgres(request: PitrRestoreRequest) -> None:
    if request.postgres is None:
        return  # `schedgen up` starts it; the report says so
    request.postgres.start(["postgres:postgres"])
    _wait_answers(request.site, request.start_timeout_s)


def _wait_answers(site: PitrSite, timeout_s: float) -> None:
    import psycopg

    deadline, last = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        try:
            with site.connect_superuser() as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and not row[0]:
                return
        except psycopg.Error as exc:
            last = str(exc).strip()
        time.sleep(0.3)
    raise SchedgenError(f"no answer on port {site.pg_port} within {timeout_s:.0f}s: {last}")


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def local_postgres(sock: Path | None) -> SupervisorWriters | None:
    """The local runtime's ``postgres`` program over supervisord's socket (None: supervisord is down)."""
    return SupervisorWriters(sock, groups=("postgres",), timeout_s=120) if sock is not None else None


__all__ = ["PitrRestoreReport", "PitrRestoreRequest", "Writers", "local_postgres", "restore_to"]
