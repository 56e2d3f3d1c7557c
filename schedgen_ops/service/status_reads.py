"""A status poll's reads on the event loop: the ledger row through a small async pool and the queue
position through an async Redis client, so a poll of an unfinished job costs no thread hop.

The pool is a share of the process's ``db_pool_max`` (`status_pool_size`), taken from the sync pool's
share, so a process still opens at most ``db_pool_max`` connections (the connection budget of
`config.model` holds). Below 4 connections per process there is no share and polls keep the thread hop.

The async pool does not check a connection on every lend (a round trip per poll, most of a poll's cost
in docs/PERFORMANCE.md, "Round 3"). A read that fails on a dead connection (Postgres restarted, or its
backends killed) checks the idle connections once and is retried once: the SELECT is idempotent, and
the guarantee `test_status_survives_connections_killed_under_the_pool` pins still holds.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio import Redis as AsyncRedis

from schedgen_ops.service import ledger, queue
from schedgen_ops.service.db import POOL_RECONNECT_TIMEOUT_S
from schedgen_ops.service.settings import ServiceSettings

MIN_BUDGET_FOR_SHARE = 4  # per-process connections below which status polls share the sync pool


def status_pool_size(db_pool_max: int) -> int:
    """Connections of the async status pool, out of ``db_pool_max`` (0: polls use the sync pool). Half:
    polls are most of an api's requests; a quarter (1 of the small profile's 5) timed out polls as 503s
    under the stress test's 500 users (docs/PERFORMANCE.md, "Round 4")."""
    if db_pool_max < MIN_BUDGET_FOR_SHARE:
        return 0
    return db_pool_max // 2


def sync_pool_size(db_pool_max: int) -> int:
    """What is left of ``db_pool_max`` for the sync pool (routes, uploads, readiness)."""
    return db_pool_max - status_pool_size(db_pool_max)


class StatusReads:
    """The async pool and Redis client of one api process (opened in its lifespan, on its loop)."""

    def __init__(self, settings: ServiceSettings) -> None:
        size = status_pool_size(settings.db_pool_max)
        self.pool: AsyncConnectionPool | None = None
        if size:
            self.pool = AsyncConnectionPool(
                settings.database_url.get_secret_value(),
                min_size=min(size, max(settings.db_pool_min, 1)),
                max_size=size,
                timeout=settings.db_acquire_timeout_s,
                name="api-status",
                open=False,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": max(1, int(settings.db_acquire_timeout_s)),
                    "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
                },
                reconnect_timeout=POOL_RECONNECT_TIMEOUT_S,  # the sync pool's bound on a reconnect's backoff
            )
        url = settings.redis_url.get_secret_value()
        self.redis: AsyncRedis = AsyncRedis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=5.0, health_check_interval=30
        )

    async def open(self) -> None:
        if self.pool is not None:
            await self.pool.open(wait=False)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        await self.redis.aclose()

    async def get_job(self, job_id: str) -> ledger.Job | None:
        """The job's row (one SELECT); a dead connection is found, replaced and the read retried once."""
        assert self.pool is not None
        try:
            return await self._select(job_id)
        except PoolTimeout:
            raise  # no connection free within the acquire timeout: waiting that long again helps no one
        except psycopg.OperationalError:
            with contextlib.suppress(Exception):
                await self.pool.check()  # drops every broken idle connection, opens new ones
            return await self._select(job_id)

    async def _select(self, job_id: str) -> ledger.Job | None:
        assert self.pool is not None
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(ledger.GET_JOB_SQL, (job_id,))
            row: dict[str, Any] | None = await cur.fetchone()
        return ledger.Job.from_row(row) if row else None

    async def waiting(self, job_id: str, priority: str) -> tuple[int | None, bytes | None]:
        """`queue.position` and the enqueue marker (`queue.enqueue_marker_command`), one round trip."""
        if priority not in queue.QUEUE_NAMES:
            return None, None
        pipe = self.redis.pipeline(transaction=False)
        queue.queue_position_commands(pipe, job_id, priority)
        queue.enqueue_marker_command(pipe, job_id)
        *replies, marker = await pipe.execute()
        return queue.position_from(replies), queue.marker_from(marker)

    async def marker(self, job_id: str) -> bytes | None:
        """The enqueue marker alone (read before a row that may be cached, `queued_cache`)."""
        pipe = self.redis.pipeline(transaction=False)
        queue.enqueue_marker_command(pipe, job_id)
        (marker,) = await pipe.execute()
        return queue.marker_from(marker)
