"""The job a worker runs for each upload: fetch bytes -> parse -> store result -> delete bytes.

State lives in the ledger: an attempt starts by taking the job's advisory lock and claiming the row,
and ends with a conditional update. Bytes are deleted only after success or the final failed attempt;
a retryable failure puts the row back to ``queued`` and re-raises so RQ schedules the retry with backoff.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from schedgen_ops.service import ledger
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.logs import job_id_var

log = logging.getLogger("schedgen.worker")

_context: ServiceContext | None = None

# Test-only hook (never set in production): sleep this long during a job's FIRST attempt, so a test can
# SIGKILL the worker mid-job. Honoured only when SCHEDGEN_TESTING=1.
SLOW_FIRST_ATTEMPT_ENV = "SCHEDGEN_TEST_SLOW_FIRST_ATTEMPT_S"


def set_context(context: ServiceContext) -> None:
    global _context
    _context = context


def context() -> ServiceContext:
    """This worker process's connections (created on first use when not set by the worker main)."""
    global _context
    if _context is None:
        from schedgen_ops.service.config import load_settings

        _context = ServiceContext.create(load_settings(), name="worker")
    return _context


def _test_delay(attempt: int) -> None:
    if os.environ.get("SCHEDGEN_TESTING") != "1" or attempt != 1:
        return
    delay = float(os.environ.get(SLOW_FIRST_ATTEMPT_ENV, "0") or 0)
    if delay > 0:
        time.sleep(delay)


def process_job(job_id: str) -> str:
    """RQ entry point; returns what happened (for RQ's result and the logs)."""
    token = job_id_var.set(job_id)
    try:
        return _process(context(), job_id)
    finally:
        job_id_var.reset(token)


def _process(ctx: ServiceContext, job_id: str) -> str:
    with ctx.pool.connection() as conn:
        if not ledger.try_lock(conn, job_id):
            log.info("job is being processed by another worker; skipping duplicate delivery")
            return "skipped:locked"
        try:
            job = ledger.claim(conn, job_id)
            if job is None:
                return _unclaimable(ctx, conn, job_id)
            log.info("job attempt started", extra={"attempt": job.attempts})
            return _attempt(ctx, conn, job)
        finally:
            ledger.unlock(conn, job_id)


def _unclaimable(ctx: ServiceContext, conn: Any, job_id: str) -> str:
    """A delivery of a finished, unknown or exhausted job: finish an exhausted one, else do nothing."""
    job = ledger.get_job(conn, job_id)
    if job is None:
        return "skipped:unknown"
    if job.status in ("queued", "processing") and job.attempts >= job.max_attempts:
        # The last attempt died (SIGKILL/OOM): this is the final failure.
        if ledger.fail(
            conn,
            job_id,
            None,
            "worker_lost",
            "the worker died during every attempt",
            ctx.settings.failed_ttl_s,
            from_status=("queued", "processing"),
        ):
            _delete_bytes(ctx, conn, job)
            _count("failed", job.kind)
        return "failed:worker_lost"
    return f"skipped:{job.status}"


def _attempt(ctx: ServiceContext, conn: Any, job: ledger.Job) -> str:
    from schedgen_ops.parsing import ParseError, parse_pdf

    settings = ctx.settings
    started = time.monotonic()
    try:
        try:
            data = ctx.storage.get(job.storage_key)
        except KeyError:
            ledger.fail(
                conn,
                job.id,
                job.attempts,
                "upload_missing",
                "the uploaded file is gone",
                settings.failed_ttl_s,
            )
            _count("failed", job.kind)
            return "failed:upload_missing"
        _test_delay(job.attempts)
        timetable = parse_pdf(
            data,
            filename=job.filename,
            max_bytes=settings.upload_max_bytes,
            max_pages=settings.upload_max_pages,
            timeout_s=settings.parse_timeout_s,
        )
    except ParseError as exc:
        # Deterministic: the same bytes fail the same way, so retrying is pointless.
        ledger.fail(conn, job.id, job.attempts, exc.code, exc.message, settings.failed_ttl_s)
        _delete_bytes(ctx, conn, job)
        _count("failed", job.kind)
        log.info("job failed: not parseable", extra={"error_code": exc.code})
        return f"failed:{exc.code}"
    except Exception as exc:
        # Transient (storage, timeout, a bug): retry while attempts remain.
        message = f"{type(exc).__name__}: {exc}"[:500]
        if job.attempts >= job.max_attempts:
            ledger.fail(conn, job.id, job.attempts, "processing_error", message, settings.failed_ttl_s)
            _delete_bytes(ctx, conn, job)
            _count("failed", job.kind)
            log.warning("job failed on its last attempt", extra={"attempt": job.attempts, "error": message})
            return "failed:processing_error"
        ledger.requeue(conn, job.id, job.attempts, "processing_error", message)
        _count("retried", job.kind)
        log.warning("job attempt failed; will retry", extra={"attempt": job.attempts, "error": message})
        raise
    from schedgen_ops.service.metrics import PARSE_DURATION

    PARSE_DURATION.labels(timetable.kind).observe(time.monotonic() - started)
    if not ledger.complete(
        conn, job.id, job.attempts, timetable.kind, timetable.model_dump(mode="json"), settings.result_ttl_s
    ):
        log.warning("job changed state while processing; result discarded")
        return "skipped:stale"
    _delete_bytes(ctx, conn, job)
    _count("completed", timetable.kind)
    log.info("job completed", extra={"kind": timetable.kind, "events": len(timetable.events)})
    return "completed"


def _delete_bytes(ctx: ServiceContext, conn: Any, job: ledger.Job) -> None:
    try:
        ctx.storage.delete(job.storage_key)
        ledger.mark_bytes_deleted(conn, job.id)
    except Exception as exc:  # the retention purge deletes it later
        log.warning("could not delete upload bytes", extra={"error": str(exc)})


def _count(status: str, kind: str | None) -> None:
    from schedgen_ops.service.metrics import JOBS

    JOBS.labels(status, kind or "unknown").inc()
