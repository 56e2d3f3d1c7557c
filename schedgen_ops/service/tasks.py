"""The job a worker runs for each upload: fetch bytes -> parse -> store result -> delete bytes.

State lives in the ledger: an attempt starts by taking the job's advisory lock and claiming the row (one
statement, `ledger.lock_and_claim`), and ends with a conditional update (one statement); a completed
attempt releases the lock with its last write. That is three Postgres round trips for a completed job.
Bytes are deleted only after success or the final failed attempt;
a retryable failure puts the row back to ``queued`` and re-raises so RQ schedules the retry with backoff.

The parse runs in this process's parser sandbox (`parsing.sandbox`: a child under ``parse_memory_mb`` of
address space and a CPU limit, killed past ``parse_timeout_s``), so a hostile file costs that child, not
the worker. A `ParseError` (a limit, a timeout, a damaged file) is a property of the file: final, never
retried. Anything else is retried, and what clients see of it is a fixed sentence: raw exception text
goes to the log only.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from schedgen_ops.parsing.limits import PARSE_LIMITS
from schedgen_ops.parsing.sandbox import Run, SandboxPool, shared_pool
from schedgen_ops.service import ledger
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.logs import job_id_var
from schedgen_ops.service.settings import ServiceSettings

log = logging.getLogger("schedgen.worker")

_context: ServiceContext | None = None

# Test-only hook (never set in production): sleep this long during a job's FIRST attempt, so a test can
# SIGKILL the worker mid-job. Honoured only when SCHEDGEN_TESTING=1.
SLOW_FIRST_ATTEMPT_ENV = "SCHEDGEN_TEST_SLOW_FIRST_ATTEMPT_S"


# What a client reads for a failure that is not the file's fault (the details are in the worker's log).
RETRY_MESSAGE = "the server could not process the file this time; it will try again"
FINAL_MESSAGE = "the server could not process the file; upload it again later"


def parser(settings: ServiceSettings) -> SandboxPool:
    """This worker process's parser sandbox (one child: a worker runs one job at a time)."""
    return shared_pool("parse", memory_mb=settings.parse_memory_mb, size=1)


# What this process uses per job. The parse itself runs in the sandbox child, which imports pdfminer and
# the parser (`parsing.sandbox_child`, preload "parse") before it answers, and `start` waits for that;
# this process only reads the child's answer into the result model and handles its `ParseError`.
PARENT_MODULES = ("schedgen_ops.parsing.model", "schedgen_ops.parsing.errors", "schedgen_ops.service.metrics")


def warm_up(settings: ServiceSettings) -> None:
    """Load what a job needs before the first one, so no job pays for an import: the sandbox child with
    pdfminer and the parser, and here `PARENT_MODULES`, imported by name because
    ``import schedgen_ops.parsing`` alone loads nothing (its names load on first use, PEP 562)."""
    import importlib

    from schedgen_ops.errors import SchedgenError
    from schedgen_ops.parsing.sandbox import SandboxUnavailable

    for module in PARENT_MODULES:
        importlib.import_module(module)
    try:
        parser(settings).start()
    except SandboxUnavailable as exc:
        raise SchedgenError(
            str(exc),
            code="parser_unavailable",
            hint="the worker cannot parse without it; run `python -m schedgen_ops.parsing.sandbox_child "
            "--memory-mb 512` in this image to see why it fails",
        ) from exc


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
        locked, job = ledger.lock_and_claim(conn, job_id)
        if not locked:
            log.info("job is being processed by another worker; skipping duplicate delivery")
            return "skipped:locked"
        lock = _Lock()
        try:
            if job is None:
                return _unclaimable(ctx, conn, job_id)
            log.info("job attempt started", extra={"attempt": job.attempts})
            return _attempt(ctx, conn, job, lock)
        finally:
            if lock.held:
                ledger.unlock(conn, job_id)


@dataclasses.dataclass
class _Lock:
    """Whether this attempt still holds the job's advisory lock: a completed job releases it together
    with its last ledger write (`ledger.mark_bytes_deleted`), every other ending in `_process`."""

    held: bool = True


def _unclaimable(ctx: ServiceContext, conn: Any, job_id: str) -> str:
    """A delivery of a finished, unknown or exhausted job: finish an exhausted one, else do nothing."""
    job = ledger.get_job(conn, job_id)
    if job is None:
        return "skipped:unknown"
    if job.status in ("queued", "processing") and job.attempts >= job.max_attempts:
        # The last attempt died (SIGKILL/OOM): this is the final failure.
        message = "the worker died during every attempt"
        _fail(
            ctx,
            conn,
            job,
            None,
            "worker_lost",
            message,
            from_status=("queued", "processing"),
            only_if_changed=True,
        )
        return "failed:worker_lost"
    return f"skipped:{job.status}"


def _attempt(ctx: ServiceContext, conn: Any, job: ledger.Job, lock: _Lock) -> str:
    from schedgen_ops.parsing import ParseError

    settings = ctx.settings
    started = time.monotonic()
    run: Run[Any] | None = None
    try:
        try:
            data = ctx.storage.get(job.storage_key)
        except KeyError:
            _fail(
                ctx, conn, job, job.attempts, "upload_missing", "the uploaded file is gone", bytes_left=False
            )
            return "failed:upload_missing"
        _test_delay(job.attempts)
        run = _parse(settings, data, job.filename)
        timetable = run.result()
    except ParseError as exc:
        # Deterministic: the same bytes fail the same way, so retrying is pointless.
        _fail(ctx, conn, job, job.attempts, exc.code, exc.message)
        log.info("job failed: not parseable", extra={"error_code": exc.code, **_usage(run)})
        return f"failed:{exc.code}"
    except Exception as exc:
        # Transient (storage, the sandbox, RQ's job timeout, a bug): retry while attempts remain.
        error = f"{type(exc).__name__}: {exc}"[:500]
        if job.attempts >= job.max_attempts:
            _fail(ctx, conn, job, job.attempts, "processing_error", FINAL_MESSAGE)
            log.warning("job failed on its last attempt", extra={"attempt": job.attempts, "error": error})
            return "failed:processing_error"
        ledger.requeue(conn, job.id, job.attempts, "processing_error", RETRY_MESSAGE)
        _count("retried", job.kind)
        log.warning("job attempt failed; will retry", extra={"attempt": job.attempts, "error": error})
        raise
    from schedgen_ops.service.metrics import PARSE_DURATION

    PARSE_DURATION.labels(timetable.kind).observe(time.monotonic() - started)
    # JSON text straight from pydantic's serializer: no dict and no second encoding by psycopg's Jsonb.
    if not ledger.complete(
        conn, job.id, job.attempts, timetable.kind, timetable.model_dump_json(), settings.result_ttl_s
    ):
        log.warning("job changed state while processing; result discarded")
        return "skipped:stale"
    _delete_bytes(ctx, conn, job, lock)
    _count("completed", timetable.kind)
    log.info("job completed", extra={"kind": timetable.kind, "events": len(timetable.events), **_usage(run)})
    return "completed"


def _parse(settings: ServiceSettings, data: bytes, filename: str | None) -> Run[Any]:
    return parser(settings).parse(
        data,
        filename=filename,
        max_bytes=settings.upload_max_bytes,
        max_pages=settings.upload_max_pages,
        timeout_s=settings.parse_timeout_s,
        limits=dataclasses.replace(PARSE_LIMITS, max_operations=settings.parse_max_operations),
    )


def _usage(run: Run[Any] | None) -> dict[str, Any]:
    """What the parse cost its sandbox child, for the log line (tests and on-call read it)."""
    if run is None:
        return {}
    peak = None if run.peak_rss_bytes is None else round(run.peak_rss_bytes / 2**20, 1)
    return {"parse_wall_s": round(run.wall_s, 3), "parse_peak_rss_mb": peak}


def _fail(
    ctx: ServiceContext,
    conn: Any,
    job: ledger.Job,
    attempt: int | None,
    code: str,
    message: str,
    *,
    from_status: tuple[str, ...] = ("processing",),
    bytes_left: bool = True,
    only_if_changed: bool = False,
) -> None:
    """The one way a job ends failed: its ledger row, then its bytes (when any are left) and the failed count.

    An attempt records its own failure even when the reconciler failed the row as stuck first (the
    reconciler counts no job); a redelivery (``only_if_changed``) only when it is the one that failed it.
    """
    changed = ledger.fail(
        conn, job.id, attempt, code, message, ctx.settings.failed_ttl_s, from_status=from_status
    )
    if only_if_changed and not changed:
        return
    if bytes_left:
        _delete_bytes(ctx, conn, job)
    _count("failed", job.kind)


def _delete_bytes(ctx: ServiceContext, conn: Any, job: ledger.Job, lock: _Lock | None = None) -> None:
    """Delete the upload and record it; with ``lock`` also release the job's lock in that same write."""
    try:
        ctx.storage.delete(job.storage_key)
        ledger.mark_bytes_deleted(conn, job.id, unlock=lock is not None)
        if lock is not None:
            lock.held = False
    except Exception as exc:  # the retention purge deletes it later
        log.warning("could not delete upload bytes", extra={"error": str(exc)})


def _count(status: str, kind: str | None) -> None:
    from schedgen_ops.service.metrics import JOBS

    JOBS.labels(status, kind or "unknown").inc()
