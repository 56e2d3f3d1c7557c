"""Make Redis agree with the ledger, which is the system of record.

One pass (`reconcile_once`):
1. ``queued`` jobs that Redis no longer holds (flushed, restored from an old snapshot, enqueue failed)
   are enqueued again;
2. ``processing`` jobs whose advisory lock nobody holds belong to a dead worker (SIGKILL, OOM, lost
   host): they go back to ``queued`` (and are enqueued) while attempts remain, else they fail;
3. ``processing`` jobs still locked after the job timeout (plus a grace period) are failed as stuck;
4. jobs past their retention are purged with their results and upload bytes.
A grace period keeps it from racing the api between "row committed" and "id enqueued".
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import asdict, dataclass, field

import psycopg

from schedgen_ops.service import ledger, queue
from schedgen_ops.service.context import ServiceContext

log = logging.getLogger("schedgen.reconciler")
GRACE_S = 2.0


@dataclass
class ReconcileReport:
    requeued: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    purged: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def reconcile_once(ctx: ServiceContext, *, grace_s: float = GRACE_S) -> ReconcileReport:
    """One reconciliation pass (safe to run concurrently with workers and other reconcilers)."""
    report = ReconcileReport()
    settings = ctx.settings
    with ctx.pool.connection() as conn:
        for job in ledger.jobs_with_status(conn, "queued", grace_s):
            if not queue.is_pending(ctx.redis, job.id):
                queue.forget(ctx.redis, job.id)
                queue.enqueue(ctx.redis, settings, job.id, job.priority)
                report.requeued.append(job.id)
        for job in ledger.jobs_with_status(conn, "processing", grace_s):
            if ledger.try_lock(conn, job.id):
                try:
                    _recover_dead(ctx, conn, job, report)
                finally:
                    ledger.unlock(conn, job.id)
            elif _age_s(job) > settings.job_timeout_s + 60 and ledger.fail(
                conn,
                job.id,
                job.attempts,
                "job_timeout",
                "the job ran past its timeout",
                settings.failed_ttl_s,
            ):
                report.failed.append(job.id)
        for job in ledger.expired(conn):
            try:
                ctx.storage.delete(job.storage_key)
            except Exception as exc:
                log.warning("could not delete expired upload", extra={"job_id": job.id, "error": str(exc)})
                continue
            ledger.delete_job(conn, job.id)
            report.purged += 1
    if report.requeued or report.recovered or report.failed or report.purged:
        log.info("reconciled", extra=report.as_dict())
    return report


def _age_s(job: ledger.Job) -> float:
    """Seconds since the current attempt started (0 when it has not)."""
    if job.started_at is None:
        return 0.0
    return (dt.datetime.now(dt.UTC) - job.started_at).total_seconds()


def _recover_dead(
    ctx: ServiceContext, conn: psycopg.Connection, job: ledger.Job, report: ReconcileReport
) -> None:
    """The job is ``processing`` but its worker is gone (we could take its lock)."""
    settings = ctx.settings
    if job.attempts < job.max_attempts:
        if ledger.requeue(conn, job.id, job.attempts, "worker_lost", "the worker died during the attempt"):
            queue.forget(ctx.redis, job.id)
            queue.enqueue(ctx.redis, settings, job.id, job.priority)
            report.recovered.append(job.id)
        return
    if ledger.fail(
        conn,
        job.id,
        job.attempts,
        "worker_lost",
        "the worker died during every attempt",
        settings.failed_ttl_s,
    ):
        try:
            ctx.storage.delete(job.storage_key)
            ledger.mark_bytes_deleted(conn, job.id)
        except Exception as exc:
            log.warning("could not delete upload bytes", extra={"job_id": job.id, "error": str(exc)})
        report.failed.append(job.id)


def run_forever(ctx: ServiceContext, stop: threading.Event, *, interval_s: float | None = None) -> None:
    """Reconcile every ``interval_s`` (settings.reconcile_interval_s) until ``stop`` is set."""
    interval = interval_s or ctx.settings.reconcile_interval_s
    while not stop.is_set():
        try:
            reconcile_once(ctx)
        except Exception as exc:  # Postgres/Redis down: try again next round
            log.warning("reconcile pass failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        stop.wait(interval)
