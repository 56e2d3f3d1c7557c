"""`schedgen restore ID`: put a verified backup back, safely.

Order: authenticate and verify the set (refuse an unsigned, foreign, tampered or failing one) -> refuse
a set of another deployment or database unless forced -> safety backup of the current state -> Postgres
in one of two modes -> optionally Redis and the upload objects -> start the writers -> report.

- swap (``auto`` picks it when the role may create and rename databases): pg_restore into a new
  database while the service still runs, check its row counts, then stop the writers and give it the
  live name in one short window (swap.py). A failure before the window leaves the live database
  untouched and the writers running; the old database is kept under ``<db>_before_<time>``.
- clean (otherwise): stop the writers, ``pg_restore --clean`` in place in one transaction, check the
  row counts. A failure leaves the writers stopped and says so: Postgres rolled the transaction back,
  but nothing should write to a database whose restore failed before someone has looked at it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import dbops, ledger
from schedgen_ops.ops.backup.catalog import find_backup
from schedgen_ops.ops.backup.create import BackupRequest, _create_locked
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.manifest import (
    POSTGRES_DUMP,
    REDIS_RDB,
    UPLOADS_TAR,
    Check,
    Manifest,
    iso,
    read_manifest,
    utcnow,
)
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.redis_snapshot import restore_rdb
from schedgen_ops.ops.backup.signing import SigningKey, authenticate
from schedgen_ops.ops.backup.sources import S3Settings, restore_uploads, tar_contents
from schedgen_ops.ops.backup.streaming import run_checked, stream_from_file
from schedgen_ops.ops.backup.swap import SwapInDoubt, swap_in
from schedgen_ops.ops.backup.targets import Target
from schedgen_ops.ops.backup.verify import verify_entry
from schedgen_ops.ops.backup.writers import NoWriters, Writers

Mode = Literal["auto", "swap", "clean"]


@dataclass
class RestoreRequest:
    target: Target
    directory: Path
    backup_id: str
    key: SigningKey
    writers: Writers = field(default_factory=NoWriters)
    mode: Mode = "auto"
    jobs: int = 2
    redis_url: str | None = None  # restore Redis into this URL when set
    storage_url: str | None = None  # put upload objects back when set
    with_uploads: bool = False  # put upload objects back into the stack itself (compose volume)
    s3: S3Settings = field(default_factory=S3Settings)
    safety_backup: bool = True
    safety_request: BackupRequest | None = None
    deep_verify: bool = False
    allow_unsigned: bool = False  # accept a manifest this project's key did not sign
    force: bool = False  # accept a set of another deployment or database
    project_name: str | None = None  # this deployment's name, compared with the set's


@dataclass
class RestoreReport:
    backup_id: str
    safety_backup_id: str | None = None
    verification: str = ""
    mode: str = ""
    mode_reason: str = ""
    database: str = ""
    forced: list[str] = field(default_factory=list)  # origin differences accepted with --force
    tables: dict[str, int] = field(default_factory=dict)
    rows_total: int = 0
    previous_database: str | None = None
    redis_keys: int | None = None
    upload_objects: int | None = None
    stopped: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    left_stopped: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, str]] = field(default_factory=list)
    duration_s: float = 0.0
    postgres_restore_s: float = 0.0
    health: dict[str, Any] | None = None
    ledger_warning: str | None = None

    def mark(self, event: str) -> None:
        self.timeline.append({"event": event, "at": iso(utcnow())})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RestoreFailed(SchedgenError):
    """A restore that failed; ``report`` says how far it got and what the writers are doing."""

    def __init__(self, message: str, *, code: str, hint: str | None, report: RestoreReport) -> None:
        super().__init__(message, code=code, hint=hint)
        self.report = report


class _InDoubt(SchedgenError):
    """The live database may not be what it was nor what the backup holds: the writers stay stopped."""


def restore_backup(request: RestoreRequest, reporter: Reporter | None = None) -> RestoreReport:
    reporter = reporter or Reporter(quiet=True)
    with backup_lock(request.directory, "restore"):
        return _restore_locked(request, reporter)


def _restore_locked(request: RestoreRequest, reporter: Reporter) -> RestoreReport:
    started = time.monotonic()
    entry = find_backup(request.directory, request.backup_id)
    report = RestoreReport(backup_id=entry.id)
    report.mark("verify")
    where = f"backup {entry.id}"
    claimed = read_manifest(entry.path)
    authenticate(claimed, request.key, where=where, allow_unsigned=request.allow_unsigned)
    report.database = _live_database(request.target, claimed.postgres.database if claimed.postgres else "")
    report.forced = _check_origin(request, claimed, report.database)
    report.mode, report.mode_reason = _choose_mode(request, report.database)
    result = verify_entry(
        entry,
        key=request.key,
        allow_unsigned=request.allow_unsigned,
        deep=request.deep_verify,
        target=request.target,
        jobs=request.jobs,
        reporter=reporter,
    )
    if result.status != "passed":
        failed = "; ".join(f"{c.name}: {c.detail}" for c in result.checks if not c.ok)
        raise SchedgenError(
            f"backup {entry.id} failed verification, refusing to restore it: {failed}",
            code="backup_failed_verification",
            hint="pick another backup (`schedgen backup list`) or pull a good copy (`schedgen backup pull`)",
        )
    report.verification = f"{result.level} verification passed"
    manifest = entry.manifest
    assert manifest is not None and manifest.postgres is not None  # verification checked both

    if request.safety_backup:
        safety = request.safety_request or BackupRequest(
            target=request.target, directory=request.directory, key=request.key
        )
        take_safety_set(safety, f"pre-restore of {entry.id}", report, reporter)

    if report.mode == "swap":
        _swap_restore(request, entry.path, manifest, report, reporter)
    else:
        _clean_restore(request, entry.path, manifest, report, reporter)
    report.tables = dict(manifest.postgres.tables)
    report.rows_total = manifest.postgres.rows_total
    # The restored backup_ledger predates this set and the safety backup: record the directory again
    # (after the row-count checks, which compare the table with the manifest).
    report.ledger_warning = ledger.resync(request.target, request.directory)
    report.duration_s = round(time.monotonic() - started, 3)
    bad_checks = [c for c in report.checks if not c["ok"]]
    if bad_checks:
        raise RestoreFailed(
            "restore finished but checks failed: "
            + "; ".join(f"{c['name']}: {c['detail']}" for c in bad_checks),
            code="restore_checks_failed",
            hint=f"the safety backup {report.safety_backup_id} holds the state before the restore",
            report=report,
        )
    return report


def take_safety_set(request: BackupRequest, reason: str, report: RestoreReport, reporter: Reporter) -> None:
    """A pg_dump set of the current state before a restore replaces it (every kind of restore takes
    it the same way); on failure nothing is restored and the message says how to go on without one."""
    report.mark("safety backup")
    request.reason = reason
    try:
        report.safety_backup_id = _create_locked(request, reporter).id
    except SchedgenError as exc:
        raise SchedgenError(
            f"the safety backup of the current state failed, nothing was restored: {exc.message}",
            code="safety_backup_failed",
            hint="fix the cause, or pass --no-safety-backup if the current data is known to be lost",
        ) from exc


def _check_origin(request: RestoreRequest, manifest: Manifest, live: str) -> list[str]:
    """Differences between where the set was taken and where it would go; refused unless forced."""
    differences = []
    dumped = manifest.postgres.database if manifest.postgres else ""
    if dumped and dumped != live:
        differences.append(f"database {dumped!r} (this target's is {live!r})")
    if request.project_name and manifest.project_name and manifest.project_name != request.project_name:
        theirs, ours = manifest.project_name, request.project_name
        differences.append(f"deployment {theirs!r} (this project's is {ours!r})")
    if differences and not request.force:
        raise SchedgenError(
            f"backup {manifest.id} is of another {' and of another '.join(differences)}; nothing was changed",
            code="backup_other_origin",
            hint="check --project, --target and --database-url; pass --force to restore it here anyway",
        )
    return differences


def _choose_mode(request: RestoreRequest, live: str) -> tuple[str, str]:
    if request.mode == "clean":
        return "clean", "in place, as asked"
    blocker = dbops.swap_blocker(request.target, live)
    if blocker is None:
        return "swap", "the role may create and rename databases"
    if request.mode == "swap":
        raise SchedgenError(
            f"a swap restore needs a role that may create and rename databases: {blocker}",
            code="restore_swap_denied",
            hint="grant it (ALTER ROLE ... CREATEDB, and own the database or be a member of its owner), "
            "or restore without --swap (in place; the writers stay stopped if it fails)",
        )
    return "clean", f"in place ({blocker}, which a swap needs)"


def _run_restore(target: Target, archive: Path, *, jobs: int, clean: bool, dbname: str | None) -> None:
    command = target.pg_restore(archive, jobs=jobs, clean=clean, dbname=dbname)
    if target.restore_from_stdin:
        stream_from_file(command.argv, archive, what="pg_restore", env=command.env)
    else:
        run_checked(command.argv, what="pg_restore", env=command.env)


def _live_database(target: Target, fallback: str) -> str:
    conn = getattr(target, "conn", None)
    return str(conn.dbname) if conn is not None else str(getattr(target, "pg_database", fallback))


def _derived_name(live: str, suffix: str) -> str:
    """``live`` + ``suffix`` within Postgres' 63-byte names, cutting ``live``, never the suffix.

    Cutting the end instead could give back ``live`` itself (a 63-character database name), and the
    swap drops its incoming database before restoring into it.
    """
    name = live[: 63 - len(suffix)] + suffix
    if name == live:
        raise SchedgenError(f"cannot derive a database name from {live!r}", code="restore_name")
    return name


def _free_name(target: Target, live: str, suffix: str) -> str:
    name, n = _derived_name(live, suffix), 1
    while dbops.database_exists(target, name):
        n += 1
        name = _derived_name(live, f"{suffix}_{n}")
    return name


def _swap_restore(
    request: RestoreRequest, path: Path, manifest: Manifest, report: RestoreReport, reporter: Reporter
) -> None:
    target, live = request.target, report.database
    assert manifest.postgres is not None
    incoming = _derived_name(live, f"_restore_{report.backup_id.lower().replace('-', '_')}")
    report.mark("restore postgres")
    clock = time.monotonic()
    try:
        with reporter.step(f"restore: postgres into {incoming}"):
            dbops.drop_database(target, incoming)
            dbops.create_database(target, incoming, like=live)
            _run_restore(target, path / POSTGRES_DUMP, jobs=request.jobs, clean=False, dbname=incoming)
            dbops.copy_access(target, live, incoming)
        report.postgres_restore_s = round(time.monotonic() - clock, 3)
        report.mark("postgres restored")
        report.mark("checks")
        check = _row_check(target, manifest.postgres.tables, dbname=incoming)
        report.checks.append(check.model_dump())
        if not check.ok:
            raise SchedgenError(f"the restored row counts differ from the manifest: {check.detail}")
        previous = _free_name(target, live, f"_before_{utcnow().strftime('%Y%m%dt%H%M%Sz')}")
    except SchedgenError as exc:
        with contextlib.suppress(SchedgenError):
            dbops.drop_database(target, incoming)
        raise RestoreFailed(
            f"restoring backup {report.backup_id} into a new database failed: {exc.message}. The live "
            f"database {live} was not touched and the writers were not stopped",
            code="restore_failed",
            hint="fix the cause (above) and restore again",
            report=report,
        ) from exc

    def window() -> None:
        report.mark("swap")
        try:
            swap_in(target, live=live, incoming=incoming, previous=previous)
        except SwapInDoubt as exc:
            raise _InDoubt(exc.message, code=exc.code, hint=exc.hint) from exc
        except SchedgenError as exc:
            with contextlib.suppress(SchedgenError):
                dbops.drop_database(target, incoming)
            raise SchedgenError(
                f"the swap failed, the live database {live} kept its name and data: {exc.message}",
                code="restore_failed",
                hint="end whatever holds sessions on it, then restore again",
            ) from exc
        report.previous_database = previous
        _restore_extras(request, path, manifest, report, reporter)

    _with_writers_stopped(request, report, window)


def _clean_restore(
    request: RestoreRequest, path: Path, manifest: Manifest, report: RestoreReport, reporter: Reporter
) -> None:
    target, live = request.target, report.database
    assert manifest.postgres is not None
    tables = manifest.postgres.tables

    def steps() -> None:
        report.mark("restore postgres")
        clock = time.monotonic()
        with reporter.step("restore: postgres (in place, one transaction)"):
            dbops.terminate_sessions(target, live)
            try:
                _run_restore(target, path / POSTGRES_DUMP, jobs=1, clean=True, dbname=None)
            except SchedgenError as exc:
                raise _InDoubt(
                    f"pg_restore into {live} failed: {exc.message}. It ran in one transaction, which "
                    "Postgres rolled back",
                    code="restore_failed",
                    hint="check the database before anything writes to it, then start the writers again",
                ) from exc
        report.postgres_restore_s = round(time.monotonic() - clock, 3)
        report.mark("postgres restored")
        report.mark("checks")
        check = _row_check(target, tables)
        report.checks.append(check.model_dump())
        if not check.ok:
            raise _InDoubt(
                f"the restored row counts differ from the manifest: {check.detail}",
                code="restore_checks_failed",
                hint=f"the safety backup {report.safety_backup_id} holds the state before the restore",
            )
        _restore_extras(request, path, manifest, report, reporter)

    _with_writers_stopped(request, report, steps)


def _with_writers_stopped(request: RestoreRequest, report: RestoreReport, steps: Callable[[], None]) -> None:
    """Run ``steps`` with the writers stopped; start them again unless the live database is in doubt."""
    report.mark("stop writers")
    report.stopped = request.writers.stop()
    try:
        steps()
    except _InDoubt as exc:
        report.left_stopped = list(report.stopped)
        raise _failed(exc, "left stopped", report.stopped, report) from exc
    except BaseException as exc:
        _start_writers(request, report)
        if not isinstance(exc, SchedgenError):
            raise
        raise _failed(exc, "started again", report.restarted, report) from exc
    _start_writers(request, report)


def _failed(exc: SchedgenError, writers: str, names: list[str], report: RestoreReport) -> RestoreFailed:
    """``exc`` as the restore's failure, saying what became of the writers (``names``)."""
    listed = ", ".join(names) or "none under schedgen's control"
    return RestoreFailed(
        f"{exc.message}. The writers were {writers}: {listed}", code=exc.code, hint=exc.hint, report=report
    )


def _start_writers(request: RestoreRequest, report: RestoreReport) -> None:
    report.mark("start writers")
    report.restarted = request.writers.start(report.stopped)


def _restore_extras(
    request: RestoreRequest, path: Path, manifest: Manifest, report: RestoreReport, reporter: Reporter
) -> None:
    """Redis and the upload objects, with the writers stopped."""
    if request.redis_url and manifest.file("redis"):
        with reporter.step("restore: redis"):
            report.redis_keys = restore_rdb(path / REDIS_RDB, request.redis_url)
    extract = request.target.uploads_extract() if request.with_uploads else None
    if extract is not None and manifest.file("uploads"):
        with reporter.step("restore: upload objects (into the stack's volume)"):
            stream_from_file(extract.argv, path / UPLOADS_TAR, what="tar into the uploads volume")
            report.upload_objects = tar_contents(path / UPLOADS_TAR)[0]
    elif request.storage_url and manifest.file("uploads"):
        with reporter.step("restore: upload objects"):
            report.upload_objects = restore_uploads(path / UPLOADS_TAR, request.storage_url, request.s3)
    if request.redis_url:
        report.checks.append(_redis_check(request.redis_url).model_dump())


def _row_check(target: Target, expected: dict[str, int], *, dbname: str | None = None) -> Check:
    name = "row counts equal the manifest"
    try:
        counts = dbops.table_counts(target, dbname=dbname)
    except SchedgenError as exc:
        return Check(name=name, ok=False, detail=exc.one_line())
    diff = {table: (n, counts.get(table)) for table, n in expected.items() if counts.get(table) != n}
    if diff:
        detail = "; ".join(f"{t}: expected {e}, found {f}" for t, (e, f) in list(diff.items())[:10])
        return Check(name=name, ok=False, detail=detail)
    return Check(name=name, ok=True, detail=f"{sum(expected.values())} rows in {len(expected)} tables")


def _redis_check(url: str) -> Check:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
        return Check(name="redis answers", ok=True)
    except redis.RedisError as exc:
        return Check(name="redis answers", ok=False, detail=str(exc))
    finally:
        client.close()
