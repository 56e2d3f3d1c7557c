"""`schedgen restore --to TIME|latest` on compose: the postgres volume back to a moment.

Order, as on the local runtime (pitr_restore.py): check the target against the recoverable window and
`pgbackrest verify` -> `pgbackrest restore` into ``pgdata.pitr-<time>`` beside the live data directory
in the same volume, from a one-off container (the service keeps running) -> a pg_dump safety set of
the current state when the server answers -> with the writers stopped: stop postgres, keep the live
directory as ``pgdata.before-<time>``, rename the restored one in, start postgres, which recovers to the
target and promotes -> count the ledger -> start the writers.

A failure before the rename leaves the live data and the writers as they were. After it (the server
does not finish recovery) the writers stay stopped and the report says where the old directory is.
The restored directory's restore_command names the live path, not the restore's: the rename happens
before recovery starts, and archive-get requires pg1-path to be the recovering server's directory.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import pitr_flow as flow
from schedgen_ops.ops.backup.create import BackupRequest
from schedgen_ops.ops.backup.manifest import utcnow
from schedgen_ops.ops.backup.pitr_compose import (
    SERVICE,
    ComposePitrSite,
    in_fresh_dir,
    pgbackrest_argv,
    remove_dir,
    swap_dirs,
)
from schedgen_ops.ops.backup.pitr_flow import TABLES_SQL, PitrRestoreReport
from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.restore import RestoreRequest, _InDoubt
from schedgen_ops.ops.backup.writers import compose_stop_argv
from schedgen_ops.render.pitr import CONTAINER_CONF
from schedgen_ops.runtime import argv as A


@dataclass
class ComposeRestoreRequest:
    site: ComposePitrSite
    target: RecoveryTarget
    base: RestoreRequest  # the writers (api, pdf-worker), the backup directory of the safety set
    safety_request: BackupRequest | None = None
    database: str = "schedgen"
    start_timeout_s: float = 300.0


def restore_options(stanza_name: str, dest: str, target: RecoveryTarget, *, recover_in: str) -> list[str]:
    """`pgbackrest restore` into ``dest``, for a server that recovers in ``recover_in``: archive-get
    insists that pg1-path is the server's working directory, and a restore renamed into the live path
    before recovery must not name ``dest`` there."""
    get = (
        f"pgbackrest --config={CONTAINER_CONF} --stanza={stanza_name} --pg1-path={recover_in} "
        'archive-get %f "%p"'
    )
    return [f"--pg1-path={dest}", *target.options(), f"--recovery-option=restore_command={get}"]


def restore_to_compose(request: ComposeRestoreRequest, reporter: Reporter | None = None) -> PitrRestoreReport:
    return flow.under_restore_lock(request.base.directory, reporter, lambda r: _restore_locked(request, r))


def _restore_locked(request: ComposeRestoreRequest, reporter: Reporter) -> PitrRestoreReport:
    started = time.monotonic()
    site = request.site
    live_before = site.running()
    site.offline = not live_before
    report = flow.verified_report(
        site,
        request.target,
        request.database,
        "restored beside the live data directory in its volume, then renamed in",
        site.last_archived() if live_before else None,
        reporter,
    )

    if request.safety_request is not None and not live_before:
        raise SchedgenError(
            "postgres is not running, so its current state cannot be saved before it is replaced",
            code="restore_postgres_down",
            hint="start it (`schedgen deploy --target compose`), or pass --no-safety-backup when its data "
            "is lost (a deleted volume)",
        )
    stamp = utcnow().strftime("%Y%m%dt%H%M%Sz")
    live = str(site.pg_data)
    incoming, previous = f"{live}.pitr-{stamp}", f"{live}.before-{stamp}"
    report.mark("restore postgres")
    clock = time.monotonic()
    options = restore_options(site.stanza, incoming, request.target, recover_in=live)
    command = pgbackrest_argv(site.stanza, "restore", *options)
    try:
        with reporter.step(f"restore: pgbackrest into {incoming} (postgres volume)"):
            site.exec(
                site.in_container(in_fresh_dir(incoming, command), oneoff=True),
                what=f"restoring the repository to {request.target.describe()}",
                timeout_s=3600,
            )
    except SchedgenError as exc:
        _remove(site, incoming)
        raise flow.not_recovered("restoring", request.target, exc, report) from exc
    report.postgres_restore_s = round(time.monotonic() - clock, 3)

    def move_in() -> None:
        try:
            site.exec(compose_stop_argv(site.project, [SERVICE]), what="stopping postgres", timeout_s=300)
            site.exec(
                site.in_container(swap_dirs(live, incoming, previous), oneoff=True),
                what="moving the restored data directory in",
                timeout_s=300,
            )
        except SchedgenError as exc:
            # The swap undoes itself: whatever was live is at the live path again. Start it, so the
            # writers can restart on the data they had; if even that fails, leave them stopped.
            _start_again_or_in_doubt(site, exc.message, live, previous)
            raise
        report.previous_database = f"{previous} (postgres volume, when there was live data)"
        report.data_dir = live
        site.offline = False

    def start() -> None:
        try:
            site.exec(A.compose_up_no_deps(site.project, [SERVICE]), what="starting postgres", timeout_s=300)
            clock = time.monotonic()
            _wait_promoted(site, request.start_timeout_s)
            report.postgres_restore_s = round(report.postgres_restore_s + time.monotonic() - clock, 3)
            report.recovered_rows = _counts(site, request.database)
        except SchedgenError as exc:
            raise _InDoubt(
                f"postgres did not finish recovery on the restored data directory: {exc.message}; the data "
                f"before the restore (if any) is {previous} in the postgres volume",
                code="restore_failed",
                hint="see `schedgen logs postgres`; to undo, stop postgres and move the old directory back",
            ) from exc

    flow.swap_with_writers_stopped(
        request, report, reporter, move_in=move_in, start=start, discard=lambda: _remove(site, incoming)
    )
    report.checks.append(flow.recovered_check(report))
    return flow.finish(report, site, check_timeout_s=180, started=started)


def _start_again_or_in_doubt(site: ComposePitrSite, what: str, live: str, previous: str) -> None:
    """After a failed stop or swap: postgres running on the live directory again, or in doubt."""
    try:
        site.exec(
            A.compose_up_no_deps(site.project, [SERVICE]), what="starting postgres again", timeout_s=300
        )
        _wait_promoted(site, 120)
    except SchedgenError as exc:
        raise _InDoubt(
            f"{what}, and postgres did not start again: {exc.message}",
            code="restore_failed",
            hint=f"the data before the restore is {live} (or {previous}) in the postgres volume; "
            "see `schedgen logs postgres`",
        ) from exc


def _remove(site: ComposePitrSite, path: str) -> None:
    # Best effort: the next attempt names a fresh directory anyway.
    with contextlib.suppress(SchedgenError):
        site.exec(site.in_container(remove_dir(path), oneoff=True), what=f"removing {path}", timeout_s=300)


def _wait_promoted(site: ComposePitrSite, timeout_s: float) -> None:
    """Until the server answers out of recovery (it promotes at the target, or at the end of the WAL)."""
    deadline, last = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        try:
            if site.psql("SELECT pg_is_in_recovery()", timeout_s=20).strip() == "f":
                return
        except SchedgenError as exc:
            last = exc.message
        time.sleep(1)
    raise SchedgenError(f"still recovering (or not answering) after {timeout_s:.0f}s: {last}")


def _counts(site: ComposePitrSite, database: str) -> dict[str, int]:
    """Rows of every table of ``database`` in the recovered server."""
    tables = [
        line.split("|", 1)
        for line in site.psql(TABLES_SQL, database=database).strip().splitlines()  # psql -A: a|b
        if "|" in line
    ]
    if not tables:
        return {}
    union = " UNION ALL ".join(
        f'SELECT \'{s}.{t}\', count(*) FROM "{s}"."{t}"' for s, t in tables if not set("\"'") & set(s + t)
    )
    counts = {}
    for line in site.psql(union, database=database).strip().splitlines():
        name, _, count = line.partition("|")
        counts[name] = int(count)
    return counts
