"""The postgres, redis and minio sections: the data services, their sizes and their invariants."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schedgen_ops.config.model_common import Size
from schedgen_ops.config.values import Bucket, ImageRef, PgIdentifier


class PostgresConfig(Size):
    image: ImageRef
    instances: int = Field(ge=1, description="1 = single server; >1 = primary + replicas (CloudNativePG).")
    storage_gb: int = Field(gt=0)
    reserve_connections: int = Field(
        ge=3, description="Connections kept beyond every pool's maximum (backup, exporter, admin)."
    )
    max_connections: int | None = Field(
        None, description="Explicit max_connections; must cover the computed budget. Empty = computed."
    )
    shared_buffers_ratio: float = Field(gt=0, le=0.5, description="shared_buffers as a share of memory.")
    effective_cache_ratio: float = Field(gt=0, le=0.9)
    database: PgIdentifier
    user: PgIdentifier


class RedisConfig(Size):
    image: ImageRef
    maxmemory_mb: int = Field(gt=0, description="Redis maxmemory (below the container limit).")
    maxmemory_policy: Literal["noeviction"] = Field(
        description="Always noeviction: eviction on a queue Redis silently drops jobs."
    )
    appendonly: Literal[True] = Field(description="AOF persistence is required for the queue.")
    appendfsync: Literal["everysec", "always"]
    sentinel: bool = Field(description="Replication with Sentinel failover (Kubernetes operator).")

    @model_validator(mode="after")
    def _fits(self) -> RedisConfig:
        if self.maxmemory_mb >= self.memory_mb:
            raise ValueError(
                f"maxmemory_mb ({self.maxmemory_mb}) must be below memory_mb ({self.memory_mb}) "
                "to leave room for AOF rewrite and fragmentation"
            )
        return self


class MinioConfig(Size):
    enabled: bool
    image: ImageRef
    nodes: int = Field(ge=1)
    storage_gb: int = Field(gt=0)
    bucket: Bucket
