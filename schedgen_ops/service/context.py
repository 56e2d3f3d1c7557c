"""The per-process connections a service process shares between requests or jobs."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import ConnectionPool
from redis import Redis

from schedgen_ops.service import db
from schedgen_ops.service.queue import redis_client
from schedgen_ops.service.settings import ServiceSettings
from schedgen_ops.service.storage import Storage, open_storage


@dataclass
class ServiceContext:
    settings: ServiceSettings
    pool: ConnectionPool
    redis: Redis
    storage: Storage

    @classmethod
    def create(cls, settings: ServiceSettings, *, name: str, pool_max: int | None = None) -> ServiceContext:
        """``pool_max``: the sync pool's share of ``db_pool_max`` when the process also has another pool."""
        return cls(
            settings=settings,
            pool=db.make_pool(settings, name=name, max_size=pool_max),
            redis=redis_client(settings),
            storage=open_storage(settings),
        )

    def close(self) -> None:
        self.pool.close()
        self.redis.close()
