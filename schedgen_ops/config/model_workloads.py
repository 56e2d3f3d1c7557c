"""The api and worker sections: replicated stateless roles with their sizes and replica bounds."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from schedgen_ops.config.model_common import Size
from schedgen_ops.config.values import QueueName


class ScaledService(Size):
    """A replicated stateless service: fixed replicas on one host, min/max when autoscaled."""

    replicas: int = Field(ge=1, description="Replicas on a single host (compose) or initial replicas.")
    min_replicas: int = Field(ge=1, description="Autoscaling floor (Kubernetes).")
    max_replicas: int = Field(ge=1, description="Autoscaling ceiling (Kubernetes).")
    service: dict[str, Any] = Field(
        default_factory=dict, description="Per-role ServiceSettings overrides (field name -> value)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> ScaledService:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) is outside min_replicas..max_replicas "
                f"({self.min_replicas}..{self.max_replicas})"
            )
        return self


class ApiConfig(ScaledService):
    target_cpu_percent: int = Field(ge=10, le=100, description="HPA CPU utilisation target.")


class WorkerConfig(ScaledService):
    queues: list[QueueName] = Field(
        min_length=1, description="RQ queues the workers consume, in priority order."
    )
    jobs_per_replica: int = Field(ge=1, description="KEDA: queued jobs per worker replica.")
    metrics_port: int = Field(ge=1, le=65535, description="Worker metrics port (per replica).")
