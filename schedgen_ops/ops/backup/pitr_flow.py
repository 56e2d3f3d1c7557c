"""The steps every point-in-time restore takes, whatever runs Postgres: one home for the safety order.

The local (pitr_restore.py) and compose (pitr_compose_restore.py) restores differ in how they put
files in place and start a server; the order around that is the same and lives here: the target
checked against the window and the repository verified before anything is touched -> the recovered
copy built beside the live data -> with the writers stopped, the safety set, then the move, then the
start -> the recovered copy discarded unless it was moved in, whatever failed (an interrupt too).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import pitr
from schedgen_ops.ops.backup.create import BackupRequest
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.pgbackrest import PitrSite
from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.restore import (
    RestoreFailed,
    RestoreReport,
    RestoreRequest,
    _with_writers_stopped,
    take_safety_set,
)

#: Every user table of a database, as (schema, name), for the row counts of a recovered server.
TABLES_SQL = (
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"
)


class PitrRequest(Protocol):
    """What the shared steps read of a runtime's restore request."""

    target: RecoveryTarget
    base: RestoreRequest  # the writers and the backup directory
    safety_request: BackupRequest | None


@dataclass
class PitrRestoreReport(RestoreReport):
    target: str = ""
    window: dict[str, Any] = field(default_factory=dict)
    recovered_rows: dict[str, int] = field(default_factory=dict)
    data_dir: str = ""
    history_queued: list[str] = field(default_factory=list)
    archive_check: str = ""


def under_restore_lock(
    directory: Path, reporter: Reporter | None, run: Callable[[Reporter], PitrRestoreReport]
) -> PitrRestoreReport:
    """``run`` holding the backup directory's restore lock (no backup or other restore meanwhile)."""
    with backup_lock(directory, "restore"):
        return run(reporter or Reporter(quiet=True))


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


def not_recovered(
    what: str, target: RecoveryTarget, exc: SchedgenError, report: PitrRestoreReport
) -> RestoreFailed:
    """The failure of building the recovered copy (``what``: restoring, recovering), before any swap."""
    return RestoreFailed(
        f"{what} to {target.describe()} failed: {exc.message}. The live data directory "
        "was not touched and the writers were not stopped",
        code="restore_failed",
        hint=exc.hint or "fix the cause and restore again",
        report=report,
    )


def swap_with_writers_stopped(
    request: PitrRequest,
    report: PitrRestoreReport,
    reporter: Reporter,
    *,
    move_in: Callable[[], None],
    start: Callable[[], None],
    discard: Callable[[], None],
) -> None:
    """With the writers stopped: the safety set (nothing lands after it), ``move_in``, ``start``.

    ``move_in`` stops Postgres and moves the recovered directory in; when it raises, the live data is
    back at its path (and running again, or it raised `_InDoubt`). ``start`` starts Postgres on the
    moved-in directory and raises `_InDoubt` when it does not, so the writers stay stopped. ``discard``
    removes the recovered copy, on every way out before the move.
    """
    swapped = False

    def window() -> None:
        nonlocal swapped
        if request.safety_request is not None:
            reason = f"pre-restore to {request.target.describe()}"
            take_safety_set(request.safety_request, reason, report, reporter)
        report.mark("swap")
        move_in()
        swapped = True
        start()

    try:
        _with_writers_stopped(request.base, report, window)
    finally:
        if not swapped:  # a failure before the swap (or an interrupt): the recovered copy is not needed
            discard()


def recovered_check(report: PitrRestoreReport) -> dict[str, Any]:
    """Whether the recovered server answered with the service's tables."""
    rows = report.recovered_rows
    return {
        "name": "recovered database answers",
        "ok": any(t.rpartition(".")[2] == "jobs" for t in rows),
        "detail": f"{sum(rows.values())} rows in {len(rows)} tables",
    }


def finish(
    report: PitrRestoreReport, site: PitrSite, *, check_timeout_s: float, started: float
) -> PitrRestoreReport:
    """The recovered counts as the report's tables, and whether the restored server archives (a
    finding, not a failure: the data is back either way)."""
    report.rows_total = sum(report.recovered_rows.values())
    report.tables = dict(report.recovered_rows)
    try:
        site.run("check", what="checking that the restored server archives", timeout_s=check_timeout_s)
        report.archive_check = "ok"
    except SchedgenError as exc:
        report.archive_check = exc.one_line()
    report.duration_s = round(time.monotonic() - started, 3)
    return report


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
