"""`schedgen restore --to TIME|latest`: the local Postgres back to a moment, as safely as a set.

Order: check the target against the recoverable window and `pgbackrest verify` the repository ->
restore and recover into a scratch data directory beside the live one (the service keeps running) and
check it -> a pg_dump safety set of the current state -> with the writers stopped (restore.py's
`_with_writers_stopped`): stop Postgres, keep the live directory as ``postgres.before-<time>``, move
the recovered one in, start Postgres -> start the writers.

A failure before the move leaves the live data and the writers as they were. A failure after it (the
recovered directory does not start) leaves the writers stopped and says where both directories are.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import pitr
from schedgen_ops.ops.backup.create import BackupRequest, _create_locked
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.manifest import utcnow
from schedgen_ops.ops.backup.pgbackrest import PitrSite
from schedgen_ops.ops.backup.pitr_scratch import (
    RecoveryTarget,
    finish_recovery_files,
    recovered,
    remove_tree,
    restore_files,
)
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.restore import (
    RestoreFailed,
    RestoreReport,
    RestoreRequest,
    _InDoubt,
    _with_writers_stopped,
)
from schedgen_ops.ops.backup.writers import SupervisorWriters, Writers


@dataclass
class PitrRestoreReport(RestoreReport):
    target: str = ""
    window: dict[str, Any] = field(default_factory=dict)
    recovered_rows: dict[str, int] = field(default_factory=dict)
    data_dir: str = ""
    history_queued: list[str] = field(default_factory=list)
    archive_check: str = ""


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
    reporter = reporter or Reporter(quiet=True)
    with backup_lock(request.base.directory, "restore"):
        return _restore_locked(request, reporter)


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
        raise RestoreFailed(
            f"recovering to {request.target.describe()} failed: {exc.message}. The live data directory "
            "was not touched and the writers were not stopped",
            code="restore_failed",
            hint=exc.hint or "fix the cause and restore again",
            report=report,
        ) from exc
    report.postgres_restore_s = round(time.monotonic() - clock, 3)
    report.checks.append(
        {
            "name": "recovered database answers",
            "ok": any(t.rpartition(".")[2] == "jobs" for t in report.recovered_rows),
            "detail": f"{sum(report.recovered_rows.values())} rows in {len(report.recovered_rows)} tables",
        }
    )

    previous = live.parent / f"{live.name}.before-{stamp}"
    swapped = False

    def window() -> None:
        nonlocal swapped
        if request.safety_request is not None:  # with the writers stopped: nothing lands after it
            take_safety_set(request.safety_request, request.target, report, reporter)
        report.mark("swap")
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
        swapped = True
        if previous.exists():
            report.previous_database = str(previous)
        report.data_dir = str(live)
        try:
            _start_postgres(request)
        except SchedgenError as exc:
            kept = f"; the data before the restore is in {previous}" if report.previous_database else ""
            raise _InDoubt(
                f"Postgres did not start on the recovered data directory {live}: {exc.message}{kept}",
                code="restore_failed",
                hint="see .schedgen/logs/postgres.log; move the old directory back to undo",
            ) from exc

    try:
        _with_writers_stopped(request.base, report, window)
    finally:
        if not swapped:  # a failure before the swap (or an interrupt): the recovered copy is not needed
            remove_tree(incoming)
    report.rows_total = sum(report.recovered_rows.values())
    report.tables = dict(report.recovered_rows)
    try:
        site.run("check", what="checking that the restored server archives", timeout_s=120)
        report.archive_check = "ok"
    except SchedgenError as exc:
        report.archive_check = exc.one_line()
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def verified_report(
    site: PitrSite,
    target: RecoveryTarget,
    database: str,
    mode_reason: str,
    last_archived: dt.datetime | None,
    reporter: Reporter,
) -> PitrRestoreReport:
    """Every runtime's first step: the report, the target checked against the window, the repository
    verified. Raises before anything is touched."""
    report = PitrRestoreReport(backup_id=f"pitr:{target.describe()}", target=target.describe())
    report.database = database
    report.mode, report.mode_reason = "swap", mode_reason
    report.mark("verify")
    win = pitr.window(site, last_archived=last_archived)
    report.window = win.to_json()
    _check_target(target, win)
    with reporter.step("verify: pgbackrest verify"):
        pitr.verify_repository(site)
    report.verification = "pgbackrest verify passed; target inside the recoverable window"
    return report


def take_safety_set(
    request: BackupRequest,
    target: RecoveryTarget,
    report: PitrRestoreReport,
    reporter: Reporter,
) -> None:
    """A pg_dump set of the current state before it is replaced (with the writers stopped); on failure
    nothing is restored (the caller removes the restored copy: it was never swapped in)."""
    report.mark("safety backup")
    request.reason = f"pre-restore to {target.describe()}"
    try:
        report.safety_backup_id = _create_locked(request, reporter).id
    except SchedgenError as exc:
        raise SchedgenError(
            f"the safety backup of the current state failed, nothing was restored: {exc.message}",
            code="safety_backup_failed",
            hint="fix the cause, or pass --no-safety-backup if the current data is known to be lost",
        ) from exc


def _check_target(target: RecoveryTarget, win: pitr.Window) -> None:
    if not win.backups or win.earliest is None:
        raise SchedgenError(
            f"the pgBackRest repository of stanza {win.stanza} holds no backup ({win.status})",
            code="pitr_no_backup",
            hint="run `schedgen backup pitr-enable` (it takes the first full backup)",
        )
    if target.time is None:
        return
    earliest = dt.datetime.fromisoformat(win.earliest.replace("Z", "+00:00"))
    if target.time < earliest:
        raise SchedgenError(
            f"{target.describe()} is before the recoverable window, which starts at {win.earliest}",
            code="pitr_target_outside_window",
            hint="pick a later time (`schedgen backup list` shows the window), or restore a pg_dump set",
        )
    if target.time > dt.datetime.now(dt.UTC):
        raise SchedgenError(
            f"{target.describe()} is in the future",
            code="pitr_target_outside_window",
            hint="use --to latest to recover everything archived",
        )


_TABLES_SQL = (
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"
)


def _counts(url: str) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    counts = {}
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            tables = conn.execute(_TABLES_SQL).fetchall()
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
