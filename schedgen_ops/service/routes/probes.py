"""What orchestrators and Prometheus ask: /healthz (the process answers), /readyz (its dependencies
answer, each within its own timeout) and /metrics (all api and worker processes sharing the dir)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service import backup_ledger, db, ledger, metrics, queue
from schedgen_ops.service.api_state import ApiState, State
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.schemas import CheckResult, Liveness, Readiness

log = logging.getLogger("schedgen.api")
router = APIRouter()

READY_CACHE_S = 1.0  # /readyz answers from its last check for this long


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is down (detail per check)."}},
    summary="Readiness: Postgres, Redis and storage, each with its own timeout",
)
async def readyz(state: State) -> JSONResponse:
    # One check per READY_CACHE_S per process, however many probes ask: callers in between (and
    # those waiting on the lock) get the last answer, so a flood of /readyz never reaches the
    # dependencies.
    timeout_s = state.settings.readiness_timeout_s
    async with state.ready_lock:
        checked_at, body = state.ready
        if body is None or time.monotonic() - checked_at >= READY_CACHE_S:
            checks = await asyncio.gather(
                _check("postgres", lambda: _check_postgres(state), timeout_s),
                _check("redis", lambda: state.ctx.redis.ping(), timeout_s),
                _check("storage", lambda: state.ctx.storage.check(), timeout_s),
            )
            ready = all(result.ok for _, result in checks)
            body = Readiness(status="ready" if ready else "not_ready", checks=dict(checks))
            state.ready = (time.monotonic(), body)
    return JSONResponse(body.model_dump(), status_code=200 if body.status == "ready" else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Text"}},
    summary="Prometheus metrics (all api and worker processes sharing the dir)",
)
def metrics_endpoint(state: State) -> Response:
    ctx = state.ctx
    metrics.update_pool_gauges(ctx.pool, state.reads.pool)
    metrics.update_process_memory("api")
    body, content_type = metrics.render(
        metrics.ScrapeCollector(lambda: _scrape(ctx)),
        metrics.BackupCollector(lambda: _backup_times(ctx)),
    )
    return Response(body, media_type=content_type)


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


def _check_postgres(state: ApiState) -> None:
    # A direct connection, not the pool: readiness must not wait behind busy requests or a dead pool.
    settings = state.settings
    with db.connect(settings.database_url.get_secret_value(), timeout_s=settings.readiness_timeout_s) as conn:
        conn.execute("SELECT 1")
    if not state.migrated:
        state.migrate()
        if not state.migrated:
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
