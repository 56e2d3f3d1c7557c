"""Make Redis agree with the ledger, which is the system of record.

One pass (`reconcile_once`):
1. ``queued`` jobs that Redis no longer holds (flushed, restored from an old snapshot, enqueue failed)
   are enqueued again;
2. ``processing`` jobs whose advisory lock nobody holds belong to a dead worker (SIGKILL, OOM, lost
   host): they go back to ``queued`` (and are enqueued) while attempts remain, else they fail;
3. ``processing`` jobs still locked after the job timeout (plus a grace period) are failed as stuck;
4. finished jobs past their retention are purged with their results and upload bytes. Queued and
   processing jobs never expire, however old: they are work still owed to a student.

It scales with the backlog, not per job: the ledger is read in keyset pages, the queue lists are read
once per pass, and each page's Redis lookups (one server-side script), clean-ups and enqueues
(pipelines) cost a fixed number of round trips (`queue_audit`; docs/PERFORMANCE.md, "Reconciler").
A grace period keeps it from racing the api between "row committed" and "id enqueued"; it is measured
from before Redis is read, so a job enqueued while a long pass runs is never taken for a lost one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from schedgen_ops.service import ledger, queue, queue_audit
from schedgen_ops.service.context import ServiceContext

log = logging.getLogger("schedgen.reconciler")
GRACE_S = 2.0
#: Ledger rows per keyset page (one SELECT, one Redis script call, at most one batch re-enqueue).
PAGE_SIZE = 5000
#: Lost jobs re-enqueued per pass at most (see `_requeue_lost`); `run_forever` goes on at once when hit.
REQUEUE_PER_PASS = 2000
#: Expired jobs examined per pass at most (each may need a storage delete); the rest go next pass.
PURGE_PER_PASS = 5000
PURGE_PAGE = 500
PURGE_MAX_STORAGE_ERRORS = 10
#: Ids per log line at most (a pass after a Redis loss may requeue the whole backlog).
LOG_IDS = 20


@dataclass
class ReconcileReport:
    requeued: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    purged: int = 0
    seconds: float = 0.0
    requeue_limited: bool = False  # REQUEUE_PER_PASS was reached: more lost jobs may be waiting
    resume_after: ledger.Cursor | None = None  # where the next pass of the run picks up step 1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def log_fields(self) -> dict[str, Any]:
        """Counts, and at most `LOG_IDS` ids of each kind."""
        out: dict[str, Any] = {
            "purged": self.purged,
            "seconds": round(self.seconds, 3),
            "requeue_limited": self.requeue_limited,
        }
        for name in ("requeued", "recovered", "failed"):
            ids: list[str] = getattr(self, name)
            out[name] = len(ids)
            if ids:
                out[f"{name}_ids"] = ids[:LOG_IDS]
        return out


def reconcile_once(
    ctx: ServiceContext, *, grace_s: float = GRACE_S, resume_after: ledger.Cursor | None = None
) -> ReconcileReport:
    """One reconciliation pass (safe to run concurrently with workers and other reconcilers).

    ``resume_after`` (a limited pass's `ReconcileReport.resume_after`) starts step 1 where that pass
    stopped, so re-enqueueing a lost backlog over many passes reads each ledger row once.
    """
    started = time.perf_counter()
    report = ReconcileReport()
    with ctx.pool.connection() as conn:
        # The cut-off comes first: every row older than it was enqueued before Redis is read below.
        cutoff = ledger.db_now(conn) - dt.timedelta(seconds=grace_s)
        waiting = queue_audit.waiting_ids(ctx.redis)
        _requeue_lost(ctx, conn, waiting, cutoff, report, resume_after)
        _check_processing(ctx, conn, waiting, cutoff, report)
        _purge_expired(ctx, conn, report)
    report.seconds = time.perf_counter() - started
    if report.requeued or report.recovered or report.failed or report.purged:
        log.info("reconciled", extra=report.log_fields())
    return report


def _requeue_lost(
    ctx: ServiceContext,
    conn: psycopg.Connection,
    waiting: dict[str, str],
    cutoff: dt.datetime,
    report: ReconcileReport,
    resume_after: ledger.Cursor | None,
) -> None:
    """Step 1: enqueue again the queued jobs Redis will not deliver, oldest first.

    At most `REQUEUE_PER_PASS` per pass: creating an RQ job costs the client about half a millisecond,
    so re-enqueueing a whole lost backlog in one pass would hold up the other steps for minutes. The
    rest follow in the next passes, which `run_forever` starts at once while the limit is being hit.
    """
    budget = REQUEUE_PER_PASS
    after = resume_after
    while True:
        page = ledger.queued_page(conn, cutoff, after, PAGE_SIZE)
        statuses = queue_audit.job_statuses(ctx.redis, [job.id for job in page.rows])
        lost = [
            queue_audit.Lost(job.id, job.priority, status, waiting.get(job.id))
            for job, status in zip(page.rows, statuses, strict=True)
            if not queue_audit.is_pending(status, job.id in waiting)
        ]
        if lost:
            # A worker may have taken some since the page was read (popped, claimed, even finished).
            current = ledger.still_queued(conn, [job.id for job in lost])
            lost = [job for job in lost if job.id in current]
            if len(lost) > budget:
                lost = lost[:budget]
                last = next(job for job in page.rows if job.id == lost[-1].id)
                report.requeue_limited, report.resume_after = True, (last.cursor_at, last.id)
            queue_audit.forget_many(ctx.redis, lost)
            queue.enqueue_many(ctx.redis, ctx.settings, [(job.id, job.queue) for job in lost])
            report.requeued.extend(job.id for job in lost)
            budget -= len(lost)
        if page.after is None or report.requeue_limited:
            break
        if budget == 0:  # more pages, maybe more lost jobs: the next pass goes on from here
            report.requeue_limited, report.resume_after = True, page.after
            break
        after = page.after
    if report.requeue_limited:
        log.info(
            "requeue limit of this pass reached; the next pass goes on", extra={"limit": REQUEUE_PER_PASS}
        )


def _check_processing(
    ctx: ServiceContext,
    conn: psycopg.Connection,
    waiting: dict[str, str],
    cutoff: dt.datetime,
    report: ReconcileReport,
) -> None:
    """Steps 2 and 3: recover jobs of dead workers, fail jobs stuck past their timeout.

    Processing jobs number at most the running attempts (about one per worker process), so the lock
    checks stay per job; the Redis side of the recoveries is batched per page.
    """
    settings = ctx.settings
    after: ledger.Cursor | None = None
    while True:
        page = ledger.processing_page(conn, cutoff, after, PAGE_SIZE)
        recovered: list[ledger.Job] = []
        for job in page.rows:
            if ledger.try_lock(conn, job.id):
                try:
                    if _recover_dead(ctx, conn, job, report):
                        recovered.append(job)
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
        if recovered:
            statuses = queue_audit.job_statuses(ctx.redis, [job.id for job in recovered])
            queue_audit.forget_many(
                ctx.redis,
                [
                    queue_audit.Lost(job.id, job.priority, status, waiting.get(job.id))
                    for job, status in zip(recovered, statuses, strict=True)
                ],
            )
            queue.enqueue_many(ctx.redis, settings, [(job.id, job.priority) for job in recovered])
            report.recovered.extend(job.id for job in recovered)
        if page.after is None:
            return
        after = page.after


def _purge_expired(ctx: ServiceContext, conn: psycopg.Connection, report: ReconcileReport) -> None:
    """Step 4: delete finished jobs past retention (their bytes first).

    Bounded per pass: at most `PURGE_PER_PASS` rows examined, and the step stops after
    `PURGE_MAX_STORAGE_ERRORS` failed deletes (storage down: try next pass rather than time out on each).
    A job whose bytes cannot be deleted stays for the next pass; paging goes past it.
    """
    after: ledger.Cursor | None = None
    examined = errors = 0
    while examined < PURGE_PER_PASS and errors < PURGE_MAX_STORAGE_ERRORS:
        page = ledger.expired(conn, min(PURGE_PAGE, PURGE_PER_PASS - examined), after)
        examined += len(page.rows)
        deletable = []
        for job in page.rows:
            if not job.bytes_deleted:
                try:
                    ctx.storage.delete(job.storage_key)
                except Exception as exc:
                    errors += 1
                    log.warning(
                        "could not delete expired upload", extra={"job_id": job.id, "error": str(exc)}
                    )
                    if errors >= PURGE_MAX_STORAGE_ERRORS:
                        break
                    continue
            deletable.append(job.id)
        if deletable:
            report.purged += ledger.delete_finished(conn, deletable)
        if page.after is None:
            return
        after = page.after


def _age_s(job: ledger.Job) -> float:
    """Seconds since the current attempt started (0 when it has not)."""
    if job.started_at is None:
        return 0.0
    return (dt.datetime.now(dt.UTC) - job.started_at).total_seconds()


def _recover_dead(
    ctx: ServiceContext, conn: psycopg.Connection, job: ledger.Job, report: ReconcileReport
) -> bool:
    """The job is ``processing`` but its worker is gone (we could take its lock).

    Returns True when the job went back to ``queued`` and must be enqueued again by the caller.
    """
    settings = ctx.settings
    if job.attempts < job.max_attempts:
        return ledger.requeue(conn, job.id, job.attempts, "worker_lost", "the worker died during the attempt")
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
    return False


def run_forever(ctx: ServiceContext, stop: threading.Event, *, interval_s: float | None = None) -> None:
    """Reconcile every ``interval_s`` (settings.reconcile_interval_s) until ``stop`` is set.

    A pass that hit `REQUEUE_PER_PASS` is followed at once by the next, resuming where it stopped, so a
    lost backlog comes back in a run of short passes instead of one batch per interval.
    """
    interval = interval_s or ctx.settings.reconcile_interval_s
    resume: ledger.Cursor | None = None
    while not stop.is_set():
        wait = interval
        try:
            report = reconcile_once(ctx, resume_after=resume)
            resume = report.resume_after
            if report.requeue_limited:
                wait = 0.0
        except Exception as exc:  # Postgres/Redis down: try again next round, from the start
            resume = None
            log.warning("reconcile pass failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        stop.wait(wait)
