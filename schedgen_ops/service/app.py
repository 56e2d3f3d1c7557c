"""The HTTP API, assembled: upload -> job -> events / calendar, plus queue stats, health and metrics.

Each part has its own module: `api_state` (what a process keeps between requests), `middleware` (request
id, client id, rate limits, metrics, access log), `api_errors` (the JSON error envelope), `auth` (ops
token, client identity) and `routes` (one `APIRouter` per area); the student page is `web`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from schedgen_ops import __version__
from schedgen_ops.service import metrics
from schedgen_ops.service.api_errors import install_error_handlers
from schedgen_ops.service.api_state import ApiState
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.middleware import Envelope
from schedgen_ops.service.routes import ROUTERS
from schedgen_ops.service.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the api; connections open in the lifespan (one pool per uvicorn worker process)."""
    if settings is None:
        from schedgen_ops.service.config import load_settings

        settings = load_settings()
    cfg = settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ApiState.open(cfg)
        app.state.service = state
        await state.reads.open()
        pool_gauges = asyncio.create_task(_pool_gauges_loop(state))
        try:
            await run_in_threadpool(state.migrate)
            yield
        finally:
            pool_gauges.cancel()
            await state.reads.close()
            state.ctx.close()
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
    app.add_middleware(Envelope, api=app, settings=cfg)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    def ctx() -> ServiceContext:
        state: ApiState = app.state.service
        return state.ctx

    from schedgen_ops.service.web import mount as mount_web

    mount_web(app, ctx, cfg)  # the student page at / (its own security headers and CSP)
    return app


async def _pool_gauges_loop(state: ApiState, interval_s: float = metrics.MEMORY_INTERVAL_S) -> None:
    """Keep this process's DB pool (both pools) and memory gauges fresh (every api process, not only the
    one scraped)."""
    while True:
        metrics.update_pool_gauges(state.ctx.pool, state.reads.pool)
        metrics.update_process_memory("api")
        await asyncio.sleep(interval_s)


def app_factory() -> FastAPI:
    """uvicorn's factory for each api worker process: settings from the environment, JSON logs."""
    from schedgen_ops.service.config import load_settings
    from schedgen_ops.service.logs import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level, "api")
    return create_app(settings)
