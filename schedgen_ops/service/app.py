"""The HTTP API: upload -> job -> events / calendar, plus queue stats, health and metrics.

Flow of an upload: validate while streaming -> store bytes -> commit the job row -> enqueue its id.
If Redis is down at that moment the row stays ``queued`` and the reconciler enqueues it later; if
Postgres is down the upload is refused with 503 (nothing is accepted that is not in the ledger).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schedgen_ops import __version__
from schedgen_ops.errors import SchedgenError
from schedgen_ops.service import backup_ledger, clients, db, ledger, metrics, queue
from schedgen_ops.service import status as status_view
from schedgen_ops.service.clients import KeyCache, client_bucket, client_ip
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.logs import client_id_var, request_id_var
from schedgen_ops.service.ratelimit import RateLimits
from schedgen_ops.service.schemas import (
    CheckResult,
    ErrorResponse,
    JobView,
    Liveness,
    QueueView,
    Readiness,
    UploadAccepted,
)
from schedgen_ops.service.settings import ServiceSettings
from schedgen_ops.service.uploads import BODY_SLACK, UploadRejected, read_upload

log = logging.getLogger("schedgen.api")

EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_BODY_SLACK = BODY_SLACK  # multipart framing around the file
READY_CACHE_S = 1.0  # /readyz answers from its last check for this long


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "request_id"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": request_id_var.get()}}
    return JSONResponse(body, status_code=status, headers=headers)


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (401, "Invalid API key or missing ops token."),
        (404, "Unknown job."),
        (409, "The job has not completed."),
        (413, "File too large."),
        (415, "Not a PDF / not multipart."),
        (422, "Invalid PDF or request (code says which)."),
        (429, "Rate limited; see Retry-After."),
        (503, "A dependency (database, storage) is unavailable."),
    )
}

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


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the api; connections open in the lifespan (one pool per uvicorn worker process)."""
    if settings is None:
        from schedgen_ops.service.config import load_settings

        settings = load_settings()
    cfg = settings
    trusted = cfg.trusted_networks()  # parsed once, not per request
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = ServiceContext.create(cfg, name="api")
        state["ctx"] = ctx
        state["limits"] = RateLimits(cfg)
        state["keys"] = KeyCache()
        state["status_cache"] = status_view.TerminalCache()
        # Key lookups that miss the cache wait here: a flood of unknown keys cannot take the whole pool.
        state["lookups"] = asyncio.Semaphore(max(1, cfg.db_pool_max // 2))
        state["ready"] = (0.0, None)
        state["ready_lock"] = asyncio.Lock()
        state["migrated"] = False
        pool_gauges = asyncio.create_task(_pool_gauges_loop(ctx))
        try:
            await run_in_threadpool(_migrate, cfg, state)
            yield
        finally:
            pool_gauges.cancel()
            ctx.close()
            metrics.process_exited(os.getpid())  # drop this process's live gauges (pool, memory)

    app = FastAPI(
        title="schedgen parsing service",
        version=__version__,
        description="Upload University of Pretoria timetable PDFs; get events and calendars back.",
        lifespan=lifespan,
        # Off by default (every profile): the schema and docs are a map for strangers; dev turns them on.
        openapi_url="/openapi.json" if cfg.api_docs else None,
        docs_url="/docs" if cfg.api_docs else None,
        redoc_url="/redoc" if cfg.api_docs else None,
    )

    def ctx() -> ServiceContext:
        context: ServiceContext = state["ctx"]
        return context

    def is_ops(request: Request) -> bool:
        token = cfg.ops_token.get_secret_value()
        given = request.headers.get("authorization", "")
        return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def require_ops(request: Request) -> None:
        """Dependency of ops-only routes: runs before body validation, so strangers learn nothing."""
        if not is_ops(request):
            raise ApiError(
                401, "unauthorized", "this endpoint needs the ops token (Authorization: Bearer ...)"
            )

    # --- middleware: request id, client id, rate limits, metrics, access log -------------------------

    async def envelope(inner: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Pure ASGI (no per-request task group): request id, client id, rate limit, metrics, log."""
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope)
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        rid_token = request_id_var.set(request_id)
        cid_token = client_id_var.set(None)
        path = scope["path"]
        extra_headers: dict[str, str] = {"X-Request-ID": request_id}
        status = {"code": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                headers = MutableHeaders(scope=message)
                for key, value in extra_headers.items():
                    if key not in headers:
                        headers[key] = value
            await send(message)

        try:
            early: Response | None = None
            try:
                exempt = path.startswith(EXEMPT_PATHS)
                client = await _identify(request, with_key=not exempt)
                client_id_var.set(client)
                if not exempt:
                    category = _category(request.method, path)
                    decision = await state["limits"].hit(category, client)
                    if decision is not None:
                        extra_headers.update(decision.headers())
                        if not decision.allowed:
                            if category == "upload":
                                metrics.UPLOADS.labels("rate_limited").inc()
                            early = error_response(
                                429, "rate_limited", f"too many {category} requests; retry later"
                            )
            except ApiError as exc:
                early = error_response(exc.status, exc.code, exc.message, exc.headers)
            if early is not None:
                await early(scope, receive, send_wrapper)
            else:
                try:
                    await inner(scope, receive, send_wrapper)
                except Exception:
                    log.exception("unhandled error")
                    if status["started"]:
                        raise
                    await error_response(500, "internal_error", "internal error")(
                        scope, receive, send_wrapper
                    )
            template = _route_template(app, request)
            elapsed = time.perf_counter() - started
            metrics.HTTP_REQUESTS.labels(request.method, template, str(status["code"])).inc()
            metrics.HTTP_LATENCY.labels(request.method, template).observe(elapsed)
            if not path.startswith(("/healthz", "/metrics")):
                log.info(
                    "request",
                    extra={
                        "method": request.method,
                        "route": template,
                        "status": status["code"],
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
        finally:
            request_id_var.reset(rid_token)
            client_id_var.reset(cid_token)

    app.add_middleware(_Envelope, handler=envelope)

    async def _identify(request: Request, *, with_key: bool = True) -> str:
        """``key:<id>`` for a valid API key, else ``ip:<address or IPv6 /64>`` (health and metrics
        never look at a key: a probe must not depend on the database or on a client's header).

        A key that is not cached as valid costs its address one of ``rate_key_failures`` when a
        database lookup finds it unknown; once they are used up, keys from that address get 429 before
        any lookup. Known unknown keys (a bounded negative cache) and malformed keys are refused without
        a lookup and cost nothing, so junk sent from behind a campus NAT cannot use up the budget of
        the students who share its address.
        """
        peer = request.client.host if request.client else None
        address = client_bucket(client_ip(peer, request.headers.getlist("x-forwarded-for"), trusted))
        key = request.headers.get("x-api-key") if with_key else None
        if not key:
            return "ip:" + address
        keys: KeyCache = state["keys"]
        limits: RateLimits = state["limits"]
        hit, key_id = keys.get(key)
        if key_id is not None:
            return f"key:{key_id}"
        looked_up = False
        blocked = await limits.exhausted("key_failures", "ip:" + address)
        if blocked is None and not hit and clients.well_formed(key):
            async with state["lookups"]:
                blocked = await limits.exhausted("key_failures", "ip:" + address)
                if blocked is None:
                    try:
                        valid = await run_in_threadpool(_lookup, ctx(), key)
                    except (psycopg.Error, PoolTimeout) as exc:
                        raise ApiError(
                            503, "database_unavailable", "cannot verify the API key right now"
                        ) from exc
                    looked_up = True
                    key_id = valid.id if valid else None
                    keys.put(key, key_id, valid.expires_in_s if valid else None)
        if blocked is not None:
            raise ApiError(
                429,
                "rate_limited",
                "too many unknown API keys from this address; retry later",
                blocked.headers(),
            )
        if key_id is None:
            if looked_up:
                await limits.hit("key_failures", "ip:" + address)
            raise ApiError(401, "invalid_api_key", "the API key is unknown, revoked or expired")
        return f"key:{key_id}"

    # --- error handlers: always the JSON envelope, never a stack trace ------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(SchedgenError)
    async def _schedgen_error(request: Request, exc: SchedgenError) -> JSONResponse:
        status = 503 if exc.code in ("database_unavailable", "storage_unavailable") else 422
        return error_response(status, exc.code, exc.one_line())

    @app.exception_handler(psycopg.Error)
    async def _db_error(request: Request, exc: psycopg.Error) -> JSONResponse:
        log.warning("database error", extra={"error": type(exc).__name__})
        return error_response(503, "database_unavailable", "the job database is unavailable; retry shortly")

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        return error_response(503, "database_unavailable", "the job database is unavailable; retry shortly")

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")

    # --- endpoints ------------------------------------------------------------------------------------

    @app.post(
        "/api/uploads",
        status_code=202,
        response_model=UploadAccepted,
        responses=_ERRORS,
        openapi_extra=_MULTIPART_BODY,
        summary="Upload a timetable PDF for parsing",
    )
    async def upload(request: Request) -> UploadAccepted:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > cfg.upload_max_bytes + _BODY_SLACK:
            metrics.UPLOADS.labels("file_too_large").inc()
            raise ApiError(
                413, "file_too_large", f"the file is larger than the {cfg.upload_max_bytes} byte limit"
            )
        try:
            received = await read_upload(
                request.headers.get("content-type", ""), request.stream(), max_bytes=cfg.upload_max_bytes
            )
            pages = await run_in_threadpool(_quick_check, bytes(received.data), cfg)
        except UploadRejected as exc:
            metrics.UPLOADS.labels(exc.code).inc()
            raise ApiError(exc.status, exc.code, exc.message) from None
        data = bytes(received.data)
        priority = received.fields.get("priority", "default")
        if priority not in ledger.PRIORITIES or not is_ops(request):
            priority = "default"
        job_id = await run_in_threadpool(
            _accept, ctx(), data, received.filename, pages, priority, client_id_var.get() or "unknown"
        )
        metrics.UPLOADS.labels("accepted").inc()
        base = f"/api/jobs/{job_id}"
        return UploadAccepted(
            job_id=job_id,
            status="queued",
            status_url=base,
            events_url=f"{base}/events",
            calendar_url=f"{base}/calendar.ics",
        )

    @app.get(
        "/api/jobs/{job_id}",
        response_model=JobView,
        responses={
            **_ERRORS,
            304: {"description": "Not modified: the If-None-Match ETag still matches (no body)."},
        },
        summary="Job status (ETag; Retry-After while queued)",
    )
    async def job_status(job_id: str, request: Request) -> Response:
        # Finished jobs answer from this process's cache without a thread hop or a round trip; all
        # others read the ledger (and the queue position) in one hop.
        cache: status_view.TerminalCache = state["status_cache"]
        cached = cache.get(job_id)
        if cached is None:
            job, answer = await run_in_threadpool(_status, ctx(), job_id)
            cache.put(job, answer)
        else:
            answer = cached
        if answer.matches(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=answer.headers)
        return Response(answer.body, media_type="application/json", headers=answer.headers)

    from schedgen_ops.parsing.export import TimetableDocument

    @app.get(
        "/api/jobs/{job_id}/events",
        response_model=TimetableDocument,
        responses=_ERRORS,
        summary="Parsed events (same JSON as `schedgen parse --format json`)",
    )
    def job_events(job_id: str) -> dict[str, Any]:
        from schedgen_ops.parsing.export import to_json

        return to_json([_timetable(ctx(), job_id)])

    @app.get(
        "/api/jobs/{job_id}/calendar.ics",
        responses={**_ERRORS, 200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}},
        response_class=Response,
        summary="Calendar (same rules as `schedgen parse --format ics`)",
    )
    def job_calendar(
        job_id: str,
        date_from: dt.date | None = Query(
            None, alias="from", description="First day (lectures repeat from)."
        ),
        date_until: dt.date | None = Query(None, alias="until", description="Last day, inclusive."),
        semester: str | None = Query(None, pattern="^(?i:S1|S2|Y)$", description="S1, S2 or Y."),
        group: list[str] = Query([], description='Keep only these groups of a module: "COS 214=P01,G01".'),
        exam_duration_min: int = Query(180, ge=1, le=600, description="Exam length (the PDF has no end)."),
    ) -> Response:
        from schedgen_ops.parsing.ics import parse_group_filters, to_ics
        from schedgen_ops.parsing.semesters import resolve_semester

        timetable = _timetable(ctx(), job_id)
        try:
            if semester and (date_from is None or date_until is None):
                dates = resolve_semester(semester)
                date_from = date_from or dates.start
                date_until = date_until or dates.end
            body = to_ics(
                [timetable],
                date_from=date_from,
                date_until=date_until,
                exam_duration_min=exam_duration_min,
                group_filter=parse_group_filters(group) if group else None,
                semester=semester.upper() if semester and semester.upper() in ("S1", "S2") else None,
            )
        except SchedgenError as exc:
            raise ApiError(422, exc.code, exc.one_line()) from None
        return Response(
            body,
            media_type="text/calendar; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{job_id}.ics"'},
        )

    @app.get(
        "/api/queue", response_model=QueueView, responses=_ERRORS, summary="Queue statistics (ops token)"
    )
    def queue_stats(request: Request) -> dict[str, Any]:
        if not is_ops(request):
            raise ApiError(
                401, "unauthorized", "this endpoint needs the ops token (Authorization: Bearer ...)"
            )
        stats = queue.stats(ctx().redis)
        with ctx().pool.connection() as conn:
            stats["ledger"] = ledger.status_counts(conn)
        return stats

    # Load-test keys: CI mints per-client keys over HTTP (it cannot reach the stack's database).
    ops_errors = {**_ERRORS, 400: {"model": ErrorResponse, "description": "The body is not JSON."}}

    @app.post(
        "/api/ops/loadtest-keys",
        status_code=201,
        response_model=clients.MintedKeys,
        responses=ops_errors,
        dependencies=[Depends(require_ops)],
        summary="Mint short-lived load-test API keys (ops token)",
    )
    def mint_loadtest_keys(body: clients.MintKeysRequest) -> clients.MintedKeys:
        label = body.label or clients.new_loadtest_label()
        with ctx().pool.connection() as conn:
            keys, expires_at = clients.mint_loadtest_keys(conn, label, body.count, body.ttl_s)
        log.info("minted load-test keys", extra={"label": label, "count": len(keys), "ttl_s": body.ttl_s})
        return clients.MintedKeys(label=label, keys=keys, expires_at=expires_at, ttl_s=body.ttl_s)

    @app.delete(
        "/api/ops/loadtest-keys/{label}",
        response_model=clients.RevokedKeys,
        responses=ops_errors,
        dependencies=[Depends(require_ops)],
        summary="Revoke a label's load-test API keys (ops token)",
    )
    def revoke_loadtest_keys(
        label: str = Path(..., pattern=clients.LOADTEST_LABEL_PATTERN, description="The label minted with."),
    ) -> clients.RevokedKeys:
        with ctx().pool.connection() as conn:
            hashes = clients.revoke_loadtest_keys(conn, label)
        state["keys"].forget(hashes)  # this process at once; the others within their 30 s cache
        log.info("revoked load-test keys", extra={"label": label, "count": len(hashes)})
        return clients.RevokedKeys(label=label, revoked=len(hashes))

    @app.get("/healthz", response_model=Liveness, summary="Liveness: the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "A dependency is down (detail per check)."}},
        summary="Readiness: Postgres, Redis and storage, each with its own timeout",
    )
    async def readyz() -> JSONResponse:
        # One check per READY_CACHE_S per process, however many probes ask: callers in between (and
        # those waiting on the lock) get the last answer, so a flood of /readyz never reaches the
        # dependencies.
        async with state["ready_lock"]:
            checked_at, body = state["ready"]
            if body is None or time.monotonic() - checked_at >= READY_CACHE_S:
                checks = await asyncio.gather(
                    _check("postgres", lambda: _check_postgres(ctx(), cfg, state), cfg.readiness_timeout_s),
                    _check("redis", lambda: ctx().redis.ping(), cfg.readiness_timeout_s),
                    _check("storage", lambda: ctx().storage.check(), cfg.readiness_timeout_s),
                )
                ready = all(result.ok for _, result in checks)
                body = Readiness(status="ready" if ready else "not_ready", checks=dict(checks))
                state["ready"] = (time.monotonic(), body)
        return JSONResponse(body.model_dump(), status_code=200 if body.status == "ready" else 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Text"}},
        summary="Prometheus metrics (all api and worker processes sharing the dir)",
    )
    def metrics_endpoint() -> Response:
        metrics.update_pool_gauges(ctx().pool)
        metrics.update_process_memory("api")
        body, content_type = metrics.render(
            metrics.ScrapeCollector(lambda: _scrape(ctx())),
            metrics.BackupCollector(lambda: _backup_times(ctx())),
        )
        return Response(body, media_type=content_type)

    from schedgen_ops.service.web import mount as mount_web

    mount_web(app, ctx, cfg)  # the student page at / (its own security headers and CSP)
    return app


# --- helpers (blocking; called in the threadpool) --------------------------------------------------------


async def _pool_gauges_loop(ctx: ServiceContext, interval_s: float = metrics.MEMORY_INTERVAL_S) -> None:
    """Keep this process's DB pool and memory gauges fresh (every api process, not only the one scraped)."""
    while True:
        metrics.update_pool_gauges(ctx.pool)
        metrics.update_process_memory("api")
        await asyncio.sleep(interval_s)


def _migrate(settings: ServiceSettings, state: dict[str, Any]) -> None:
    try:
        db.migrate(settings.database_url.get_secret_value())
        state["migrated"] = True
    except SchedgenError as exc:
        log.warning("migrations not applied at start-up; will retry on /readyz", extra={"error": exc.message})


class _Envelope:
    """ASGI middleware adapter: calls ``handler(inner_app, scope, receive, send)``."""

    def __init__(
        self, app: ASGIApp, handler: Callable[[ASGIApp, Scope, Receive, Send], Awaitable[None]]
    ) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(self.app, scope, receive, send)


def _route_template(app: FastAPI, request: Request) -> str:
    """The matched route's path template (bounded label values), also for requests refused before routing."""
    route = request.scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    for candidate in app.router.routes:
        match, _ = candidate.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


def _lookup(ctx: ServiceContext, key: str) -> clients.ValidKey | None:
    with ctx.pool.connection() as conn:
        return clients.check_key(conn, key)


def _category(method: str, path: str) -> str:
    if method == "POST" and path.rstrip("/") == "/api/uploads":
        return "upload"
    if method == "GET" and path.startswith("/api/jobs/") and path.count("/") == 3:
        return "status"
    return "requests"


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


def _find(ctx: ServiceContext, job_id: str) -> ledger.Job:
    if not ledger.JOB_ID_RE.match(job_id):
        raise ApiError(404, "job_not_found", "no such job")
    with ctx.pool.connection() as conn:
        job = ledger.get_job(conn, job_id)
    if job is None:
        raise ApiError(404, "job_not_found", "no such job")
    return job


def _status(ctx: ServiceContext, job_id: str) -> tuple[ledger.Job, status_view.StatusAnswer]:
    """The job from the ledger and, when queued, its queue position: the status answer to send."""
    try:
        job = _find(ctx, job_id)
    except psycopg.OperationalError:  # a pooled connection that died since its last use: read once more
        job = _find(ctx, job_id)
    position = None
    if job.status == "queued":
        try:
            position = queue.position(ctx.redis, job.id, job.priority)
        except Exception:  # Redis down: the ledger still answers
            position = None
    return job, status_view.render(job, position)


def _timetable(ctx: ServiceContext, job_id: str) -> Any:
    from schedgen_ops.parsing import Timetable

    job = _find(ctx, job_id)
    if job.status != "completed":
        raise ApiError(409, "job_not_completed", f"the job is {job.status}; poll its status until completed")
    with ctx.pool.connection() as conn:
        stored = ledger.result(conn, job_id)
    if stored is None:
        raise ApiError(404, "job_not_found", "the job's result has expired")
    return Timetable.model_validate(stored[1])


async def _check(name: str, probe: Callable[[], object], timeout_s: float) -> tuple[str, CheckResult]:
    """One dependency check; ``detail`` is a stable word (ok, timeout, unavailable, migrations_pending).

    The error itself goes to the log only: its text names hosts, ports, users and paths, and /readyz
    answers whoever can reach it.
    """
    started = time.perf_counter()
    detail = "ok"
    try:
        await asyncio.wait_for(run_in_threadpool(probe), timeout_s)
    except TimeoutError:
        detail = "timeout"
    except Exception as exc:
        detail = "migrations_pending" if isinstance(exc, _MigrationsPending) else "unavailable"
        log.warning(
            "readiness check failed",
            extra={"check": name, "error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"},
        )
    return name, CheckResult(
        ok=detail == "ok", latency_ms=round((time.perf_counter() - started) * 1000, 2), detail=detail
    )


class _MigrationsPending(SchedgenError):
    """The database answers but the ledger schema is not migrated yet."""


def _check_postgres(ctx: ServiceContext, settings: ServiceSettings, state: dict[str, Any]) -> None:
    # A direct connection, not the pool: readiness must not wait behind busy requests or a dead pool.
    with db.connect(settings.database_url.get_secret_value(), timeout_s=settings.readiness_timeout_s) as conn:
        conn.execute("SELECT 1")
    if not state.get("migrated"):
        _migrate(settings, state)
        if not state.get("migrated"):
            raise _MigrationsPending("migrations are not applied", code="database_unavailable")


def _scrape(ctx: ServiceContext) -> dict[str, Any]:
    data: dict[str, Any] = {"queue": queue.stats(ctx.redis)}
    try:
        with ctx.pool.connection(timeout=1.0) as conn:
            data["jobs"] = ledger.status_counts(conn)
            data["oldest_queued_s"] = ledger.oldest_queued_age_s(conn)
    except (psycopg.Error, PoolTimeout):
        pass
    return data


def _backup_times(ctx: ServiceContext) -> backup_ledger.BackupTimes:
    """Read at scrape time with a short pool wait; a failure exports schedgen_backup_ledger_up 0."""
    with ctx.pool.connection(timeout=1.0) as conn:
        return backup_ledger.latest(conn)


def app_factory() -> FastAPI:
    """uvicorn's factory for each api worker process: settings from the environment, JSON logs."""
    from schedgen_ops.service.config import load_settings
    from schedgen_ops.service.logs import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level, "api")
    return create_app(settings)
