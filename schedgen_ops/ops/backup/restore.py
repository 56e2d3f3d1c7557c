"""`schedgen restore ID`: put a verified backup back, safely.

Order: verify the set (refuse a failed or unverifiable one) -> safety backup of the current state ->
stop the writers (api, workers) -> restore Postgres (``pg_restore --clean --if-exists -j N`` in place,
or into a new database that is then swapped in) -> optionally Redis and the upload objects -> check
the restored row counts against the manifest -> start the writers again -> report.
Writers are restarted even when the restore fails, so a failed restore never leaves the service down
silently; the safety backup's id is in the report for going back.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import dbops, ledger
from schedgen_ops.ops.backup.catalog import find_backup
from schedgen_ops.ops.backup.create import BackupRequest, _create_locked
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.manifest import POSTGRES_DUMP, REDIS_RDB, UPLOADS_TAR, Check, iso, utcnow
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.redis_snapshot import restore_rdb
from schedgen_ops.ops.backup.sources import S3Settings, restore_uploads, tar_contents
from schedgen_ops.ops.backup.streaming import run_checked, stream_from_file
from schedgen_ops.ops.backup.targets import Target
from schedgen_ops.ops.backup.verify import verify_entry
from schedgen_ops.ops.backup.writers import NoWriters, Writers


@dataclass
class RestoreRequest:
    target: Target
    directory: Path
    backup_id: str
    writers: Writers = field(default_factory=NoWriters)
    mode: Literal["clean", "swap"] = "clean"
    jobs: int = 2
    redis_url: str | None = None  # restore Redis into this URL when set
    storage_url: str | None = None  # put upload objects back when set
    with_uploads: bool = False  # put upload objects back into the stack itself (compose volume)
    s3: S3Settings = field(default_factory=S3Settings)
    safety_backup: bool = True
    safety_request: BackupRequest | None = None
    deep_verify: bool = False


@dataclass
class RestoreReport:
    backup_id: str
    safety_backup_id: str | None = None
    verification: str = ""
    mode: str = "clean"
    database: str = ""
    tables: dict[str, int] = field(default_factory=dict)
    rows_total: int = 0
    previous_database: str | None = None
    redis_keys: int | None = None
    upload_objects: int | None = None
    stopped: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
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


def restore_backup(request: RestoreRequest, reporter: Reporter | None = None) -> RestoreReport:
    reporter = reporter or Reporter(quiet=True)
    with backup_lock(request.directory, "restore"):
        return _restore_locked(request, reporter)


def _restore_locked(request: RestoreRequest, reporter: Reporter) -> RestoreReport:
    started = time.monotonic()
    entry = find_backup(request.directory, request.backup_id)
    report = RestoreReport(backup_id=entry.id, mode=request.mode)
    report.mark("verify")
    result = verify_entry(
        entry, deep=request.deep_verify, target=request.target, jobs=request.jobs, reporter=reporter
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
    assert manifest is not None and manifest.postgres is not None

    if request.safety_backup:
        report.mark("safety backup")
        safety = request.safety_request or BackupRequest(target=request.target, directory=request.directory)
        safety.reason = f"pre-restore of {entry.id}"
        try:
            report.safety_backup_id = _create_locked(safety, reporter).id
        except SchedgenError as exc:
            raise SchedgenError(
                f"the safety backup of the current state failed, nothing was restored: {exc.message}",
                code="safety_backup_failed",
                hint="fix the cause, or pass --no-safety-backup if the current data is known to be lost",
            ) from exc

    report.mark("stop writers")
    report.stopped = request.writers.stop()
    try:
        report.mark("restore postgres")
        clock = time.monotonic()
        with reporter.step(f"restore: postgres ({request.mode})"):
            _restore_postgres(request, entry.path / POSTGRES_DUMP, manifest.postgres.database, report)
        report.postgres_restore_s = round(time.monotonic() - clock, 3)
        report.mark("postgres restored")
        if request.redis_url and manifest.file("redis"):
            with reporter.step("restore: redis"):
                report.redis_keys = restore_rdb(entry.path / REDIS_RDB, request.redis_url)
        extract = request.target.uploads_extract() if request.with_uploads else None
        if extract is not None and manifest.file("uploads"):
            with reporter.step("restore: upload objects (into the stack's volume)"):
                stream_from_file(extract.argv, entry.path / UPLOADS_TAR, what="tar into the uploads volume")
                report.upload_objects = tar_contents(entry.path / UPLOADS_TAR)[0]
        elif request.storage_url and manifest.file("uploads"):
            with reporter.step("restore: upload objects"):
                report.upload_objects = restore_uploads(
                    entry.path / UPLOADS_TAR, request.storage_url, request.s3
                )
        report.mark("checks")
        checks = _post_checks(request, manifest.postgres.tables)
        report.checks = [c.model_dump() for c in checks]
        report.tables = dict(manifest.postgres.tables)
        report.rows_total = manifest.postgres.rows_total
    finally:
        report.mark("start writers")
        report.restarted = request.writers.start(report.stopped)
    # The restored backup_ledger predates this set and the safety backup: record the directory again
    # (after the row-count checks, which compare the table with the manifest).
    report.ledger_warning = ledger.resync(request.target, request.directory)
    report.duration_s = round(time.monotonic() - started, 3)
    bad_checks = [c for c in report.checks if not c["ok"]]
    if bad_checks:
        raise SchedgenError(
            "restore finished but checks failed: "
            + "; ".join(f"{c['name']}: {c['detail']}" for c in bad_checks),
            code="restore_checks_failed",
            hint=f"the safety backup {report.safety_backup_id} holds the state before the restore",
        )
    return report


def _run_restore(target: Target, archive: Path, *, jobs: int, clean: bool, dbname: str | None) -> None:
    command = target.pg_restore(archive, jobs=jobs, clean=clean, dbname=dbname)
    if target.restore_from_stdin:
        stream_from_file(command.argv, archive, what="pg_restore", env=command.env)
    else:
        run_checked(command.argv, what="pg_restore", env=command.env)


def _live_database(target: Target, fallback: str) -> str:
    conn = getattr(target, "conn", None)
    return str(conn.dbname) if conn is not None else str(getattr(target, "pg_database", fallback))


def _restore_postgres(request: RestoreRequest, archive: Path, dumped_db: str, report: RestoreReport) -> None:
    target = request.target
    live = _live_database(target, dumped_db)
    report.database = live
    if request.mode == "clean":
        dbops.terminate_sessions(target, live)
        _run_restore(target, archive, jobs=request.jobs, clean=True, dbname=None)
        return
    stamp = report.backup_id.lower().replace("-", "_")
    incoming = f"{live}_restore_{stamp}"[:63]
    previous = f"{live}_before_{stamp}"[:63]
    dbops.drop_database(target, incoming)
    dbops.create_database(target, incoming)
    try:
        _run_restore(target, archive, jobs=request.jobs, clean=False, dbname=incoming)
    except SchedgenError:
        dbops.drop_database(target, incoming)
        raise
    dbops.terminate_sessions(target, live)
    dbops.rename_database(target, live, previous)
    dbops.rename_database(target, incoming, live)
    report.previous_database = previous


def _post_checks(request: RestoreRequest, expected: dict[str, int]) -> list[Check]:
    checks: list[Check] = []
    try:
        counts = dbops.table_counts(request.target)
        diff = {name: (n, counts.get(name)) for name, n in expected.items() if counts.get(name) != n}
        checks.append(
            Check(
                name="row counts equal the manifest",
                ok=not diff,
                detail=f"{sum(expected.values())} rows in {len(expected)} tables"
                if not diff
                else "; ".join(f"{t}: expected {e}, found {f}" for t, (e, f) in list(diff.items())[:10]),
            )
        )
    except SchedgenError as exc:
        checks.append(Check(name="row counts equal the manifest", ok=False, detail=exc.one_line()))
    if request.redis_url:
        import redis

        client = redis.Redis.from_url(request.redis_url, socket_timeout=5)
        try:
            client.ping()
            checks.append(Check(name="redis answers", ok=True))
        except redis.RedisError as exc:
            checks.append(Check(name="redis answers", ok=False, detail=str(exc)))
        finally:
            client.close()
    return checks


def health_after_restore(
    target_name: str,
    project: Path,
    *,
    database_url: str,
    redis_url: str,
    storage_url: str,
    backup_dir: Path,
    config: Any = None,
) -> dict[str, Any]:
    """Run `schedgen health` against what was just restored; the verdict and components go in the report."""
    from schedgen_ops.ops.health import load_thresholds, resolve_endpoints, run_health

    endpoints = resolve_endpoints(
        target_name,
        project,
        database_url=database_url or None,
        redis_url=redis_url or None,
        storage_url=storage_url or None,
        backup_dir=backup_dir,
        config=config,
    )
    report = run_health(endpoints, load_thresholds(project, config=config)).to_dict()
    failing = [
        f"{c['component']}.{c['name']}: {c.get('measured', '')}".strip()
        for c in report["checks"]
        if c.get("status") != "ok"
    ]
    return {
        "verdict": report["verdict"],
        "exit_code": report["exit_code"],
        "components": report["components"],
        "problems": failing,
    }
