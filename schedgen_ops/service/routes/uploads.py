"""POST /api/uploads: validate while streaming -> pre-accept check -> store bytes -> commit the job row
-> enqueue its id. If Redis is down at that moment the row stays ``queued`` and the reconciler enqueues it
later; if Postgres is down the upload is refused with 503 (nothing is accepted that is not in the ledger)."""

from __future__ import annotations

import hashlib
import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from schedgen_ops.service import ledger, metrics, queue
from schedgen_ops.service.api_errors import ERRORS, ApiError
from schedgen_ops.service.api_state import State
from schedgen_ops.service.auth import is_ops
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.logs import client_id_var
from schedgen_ops.service.schemas import UploadAccepted
from schedgen_ops.service.settings import ServiceSettings
from schedgen_ops.service.uploads import BODY_SLACK, UploadRejected, read_upload

log = logging.getLogger("schedgen.api")
router = APIRouter()

# The body is read by `read_upload` as a stream, so OpenAPI learns its shape from here.
_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The timetable PDF."},
                        "priority": {
                            "type": "string",
                            "enum": ["high", "default", "low"],
                            "description": "Queue priority; honoured only with the ops token.",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/api/uploads",
    status_code=202,
    response_model=UploadAccepted,
    responses=ERRORS,
    openapi_extra=_MULTIPART_BODY,
    summary="Upload a timetable PDF for parsing",
)
async def upload(request: Request, state: State) -> UploadAccepted:
    cfg = state.settings
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > cfg.upload_max_bytes + BODY_SLACK:
        metrics.UPLOADS.labels("file_too_large").inc()
        raise ApiError(
            413, "file_too_large", f"the file is larger than the {cfg.upload_max_bytes} byte limit"
        )
    try:
        received = await read_upload(
            request.headers.get("content-type", ""), request.stream(), max_bytes=cfg.upload_max_bytes
        )
        priority = received.fields.get("priority", "default")
        if priority not in ledger.PRIORITIES or not is_ops(cfg, request):
            priority = "default"
        # One thread hop for the blocking part: the check, then (when it passes) storage, ledger, queue.
        job_id = await run_in_threadpool(
            _check_and_accept,
            state.ctx,
            bytes(received.data),
            received.filename,
            priority,
            client_id_var.get() or "unknown",
        )
    except UploadRejected as exc:
        metrics.UPLOADS.labels(exc.code).inc()
        raise ApiError(exc.status, exc.code, exc.message) from None
    metrics.UPLOADS.labels("accepted").inc()
    base = f"/api/jobs/{job_id}"
    return UploadAccepted(
        job_id=job_id,
        status="queued",
        status_url=base,
        events_url=f"{base}/events",
        calendar_url=f"{base}/calendar.ics",
    )


def _quick_check(data: bytes, settings: ServiceSettings) -> int:
    """The parser's pre-accept check, in a sandbox child (``preaccept_memory_mb``, ``preaccept_timeout_s``):
    the bytes are untrusted and no job exists yet, so they never touch this process's parser."""
    from schedgen_ops.parsing.sandbox import SandboxCrash, SandboxUnavailable, shared_pool

    pool = shared_pool("check", memory_mb=settings.preaccept_memory_mb, size=settings.preaccept_processes)
    try:
        run = pool.quick_check(
            data,
            max_bytes=settings.upload_max_bytes,
            max_pages=settings.upload_max_pages,
            timeout_s=settings.preaccept_timeout_s,
        )
    except SandboxCrash as exc:  # an input the checker did not expect: refused like any damaged file
        log.warning("pre-accept check failed unexpectedly", extra={"error": str(exc)})
        raise UploadRejected(422, "corrupt_pdf", "the PDF is damaged and cannot be read") from None
    except SandboxUnavailable as exc:
        log.error("pre-accept check unavailable", extra={"error": str(exc)})
        raise UploadRejected(
            503, "parser_unavailable", "uploads cannot be checked right now; try again in a minute"
        ) from None
    if run.error is not None:
        peak = None if run.peak_rss_bytes is None else round(run.peak_rss_bytes / 2**20, 1)
        log.info(
            "upload refused by the pre-accept check",
            extra={
                "error_code": run.error.code,
                "check_wall_s": round(run.wall_s, 3),
                "check_peak_rss_mb": peak,
            },
        )
        raise UploadRejected(run.error.http_status, run.error.code, run.error.message) from None
    return run.result()


def _check_and_accept(
    ctx: ServiceContext, data: bytes, filename: str | None, priority: str, client_id: str
) -> str:
    """The pre-accept check (raises `UploadRejected`), then `_accept`; runs on a worker thread."""
    return _accept(ctx, data, filename, _quick_check(data, ctx.settings), priority, client_id)


def _accept(
    ctx: ServiceContext, data: bytes, filename: str | None, pages: int, priority: str, client_id: str
) -> str:
    """Store bytes, commit the job row, enqueue: in that order, so nothing queued lacks its bytes or row."""
    settings = ctx.settings
    job_id = ledger.new_job_id()
    ctx.storage.put(job_id, data)
    try:
        with ctx.pool.connection() as conn:
            ledger.insert_job(
                conn,
                job_id=job_id,
                priority=priority,
                client_id=client_id,
                filename=filename,
                size_bytes=len(data),
                pages=pages,
                sha256=hashlib.sha256(data).hexdigest(),
                storage_key=job_id,
                max_attempts=settings.job_retries,
            )
    except BaseException:
        ctx.storage.delete(job_id)
        raise
    try:
        queue.enqueue(ctx.redis, settings, job_id, priority)
    except Exception as exc:  # the reconciler enqueues it from the ledger
        log.warning(
            "enqueue failed; the reconciler will enqueue the job", extra={"job_id": job_id, "error": str(exc)}
        )
    return job_id
