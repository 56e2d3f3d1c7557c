"""What one api process keeps between requests, typed: built in the lifespan and kept on
``app.state.service``, where the middleware and the routes (through `api_state`) find it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service import db
from schedgen_ops.service.clients import KeyCache
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.queued_cache import QueuedCache
from schedgen_ops.service.ratelimit import RateLimits
from schedgen_ops.service.schemas import Readiness
from schedgen_ops.service.settings import ServiceSettings
from schedgen_ops.service.status import TerminalCache
from schedgen_ops.service.status_reads import StatusReads, sync_pool_size

log = logging.getLogger("schedgen.api")


@dataclass
class ApiState:
    """This process's connections, caches and limiters (one per uvicorn worker process)."""

    settings: ServiceSettings
    ctx: ServiceContext
    limits: RateLimits
    keys: KeyCache
    status_cache: TerminalCache
    queued_cache: QueuedCache  # queued rows, valid while Redis shows the same enqueue (`queued_cache`)
    reads: StatusReads  # status polls' async share of the connection budget (`status_reads`)
    # Key lookups that miss the cache wait here: a flood of unknown keys cannot take the whole pool.
    lookups: asyncio.Semaphore
    ready_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: tuple[float, Readiness | None] = (0.0, None)  # /readyz's last answer and when it was checked
    migrated: bool = False

    @classmethod
    def open(cls, settings: ServiceSettings) -> ApiState:
        """Open this process's connections (called in the lifespan, inside the event loop)."""
        return cls(
            settings=settings,
            ctx=ServiceContext.create(settings, name="api", pool_max=sync_pool_size(settings.db_pool_max)),
            limits=RateLimits(settings),
            keys=KeyCache(),
            status_cache=TerminalCache(),
            queued_cache=QueuedCache(),
            reads=StatusReads(settings),
            lookups=asyncio.Semaphore(max(1, sync_pool_size(settings.db_pool_max) // 2)),  # half its pool
        )

    def migrate(self) -> None:
        """Apply the ledger's migrations (blocking); a failure is retried by /readyz."""
        try:
            db.migrate(self.settings.database_url.get_secret_value())
            self.migrated = True
        except SchedgenError as exc:
            log.warning(
                "migrations not applied at start-up; will retry on /readyz", extra={"error": exc.message}
            )


async def api_state(request: Request) -> ApiState:
    """Dependency: this process's `ApiState` (async, so sync routes do not pay a thread hop for it)."""
    state: ApiState = request.app.state.service
    return state


State = Annotated[ApiState, Depends(api_state)]
