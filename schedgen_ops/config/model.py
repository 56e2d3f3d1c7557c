"""The one validated model of a deployment's configuration (profile + overrides).

Every number lives in exactly one place: service defaults in `ServiceSettings`, everything else in
profiles/base.yaml, and scale-specific values in profiles/<name>.yaml. The model itself carries no
numeric defaults so a value can never silently come from two homes. Derived values (the Postgres
connection budget, memory tuning, schedules) are computed here, once, for every consumer.

`Config` ties the sections together and checks what spans several of them; each section lives in a
`model_<area>` module and is re-exported here, so `from schedgen_ops.config.model import X` keeps working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from schedgen_ops.config.health import HealthThresholds, from_alerts
from schedgen_ops.config.model_backup import BackupConfig, PitrConfig
from schedgen_ops.config.model_common import DURATION_RE, NAME_RE, Size, Strict, private_cidr
from schedgen_ops.config.model_dataservices import MinioConfig, PostgresConfig, RedisConfig
from schedgen_ops.config.model_edge import EdgeConfig, FrontDoorConfig, TraefikConfig
from schedgen_ops.config.model_monitoring import AlertThresholds, HealthOverrides, MonitoringConfig
from schedgen_ops.config.model_platform import HostConfig, ImageConfig, KubernetesConfig, PortsConfig
from schedgen_ops.config.model_service import LOG_LEVELS, SECRET_SERVICE_FIELDS, ServiceValues
from schedgen_ops.config.model_workloads import ApiConfig, ScaledService, WorkerConfig
from schedgen_ops.config.values import Hostname, SafeText
from schedgen_ops.parsing.semesters import SemesterDates
from schedgen_ops.service.settings import ServiceSettings

__all__ = [
    "DURATION_RE",
    "LOG_LEVELS",
    "NAME_RE",
    "SECRET_SERVICE_FIELDS",
    "AlertThresholds",
    "ApiConfig",
    "BackupConfig",
    "Config",
    "EdgeConfig",
    "FrontDoorConfig",
    "HealthOverrides",
    "HostConfig",
    "ImageConfig",
    "KubernetesConfig",
    "MinioConfig",
    "MonitoringConfig",
    "PitrConfig",
    "PortsConfig",
    "PostgresConfig",
    "RedisConfig",
    "ScaledService",
    "ServiceValues",
    "Size",
    "Strict",
    "TraefikConfig",
    "WorkerConfig",
    "private_cidr",
]


class Config(Strict):
    """The merged, validated configuration of one deployment."""

    profile: str
    description: SafeText
    platform: Literal["host", "kubernetes"] = Field(description="Where the profile is meant to run.")
    name: str = Field(description="Deployment name (compose project, label prefix).")
    domain: Hostname
    host: HostConfig
    api: ApiConfig
    worker: WorkerConfig
    postgres: PostgresConfig
    redis: RedisConfig
    minio: MinioConfig
    traefik: TraefikConfig
    edge: EdgeConfig
    frontdoor: FrontDoorConfig = Field(
        default_factory=lambda: FrontDoorConfig.model_validate({}),
        description="The local runtime's front door (Caddy, TLS).",
    )
    monitoring: MonitoringConfig
    images: ImageConfig
    alerts: AlertThresholds
    backup: BackupConfig
    ports: PortsConfig
    kubernetes: KubernetesConfig
    service: ServiceValues
    semesters: dict[Literal["S1", "S2"], SemesterDates] | None = Field(
        None, description="Overrides of schedgen_ops.parsing.semesters defaults (resolve_semester)."
    )
    checklist: dict[str, Any] = Field(default_factory=dict, description="checklist.ignore {ID: reason}.")
    health: HealthOverrides = Field(
        default_factory=HealthOverrides,
        description="`schedgen health` threshold overrides (any HealthThresholds field).",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError(f"{value!r} must be lowercase letters, digits and '-'")
        return value

    @field_validator("checklist")
    @classmethod
    def _checklist(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - {"ignore"}
        if unknown:
            raise ValueError(f"unknown checklist key {sorted(unknown)[0]!r} (valid: ignore)")
        ignore = value.get("ignore") or {}
        if not isinstance(ignore, dict) or not all(isinstance(v, str) and v for v in ignore.values()):
            raise ValueError("checklist.ignore must map check IDs to a non-empty reason")
        return {"ignore": {str(k): v for k, v in ignore.items()}}

    def service_image(self) -> str:
        """Our image reference: ``images.service`` tagged with the toolkit version."""
        from schedgen_ops import __version__

        return f"{self.images.service}:{__version__}"

    def image_set(self) -> dict[str, str]:
        """Every image a rendered stack may run, by role (what a private registry must mirror)."""
        images = {"service": self.service_image(), "postgres": self.postgres.image, "redis": self.redis.image}
        images["minio"] = self.minio.image
        images.update(self.images.model_dump(exclude={"service"}))
        return images

    def health_thresholds(self) -> HealthThresholds:
        """`schedgen health`'s thresholds: defaults < implied by ``alerts`` < the ``health`` section."""
        return HealthThresholds(**{**from_alerts(self.alerts), **self.health.model_dump(exclude_none=True)})

    @model_validator(mode="after")
    def _health_ordered(self) -> Config:
        """An override that puts a warn level past its critical level (after the alerts) is an error now."""
        self.health_thresholds()
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        for role in ("api", "worker"):
            overrides = getattr(self, role).service
            for key in overrides:
                if key not in ServiceSettings.model_fields:
                    raise ValueError(f"{role}.service.{key}: unknown service setting")
            ServiceValues.model_validate({**self.service_values(), **overrides})
        for key in SECRET_SERVICE_FIELDS:
            if getattr(self.service, key).get_secret_value():
                raise ValueError(f"service.{key} is a secret: it comes from .schedgen/secrets.env only")
        budget = self.connection_budget()
        if self.postgres.max_connections is not None and self.postgres.max_connections < budget["total"]:
            raise ValueError(
                f"postgres.max_connections ({self.postgres.max_connections}) is below the pools' "
                f"connection budget ({budget['total']}: {budget['explain']})"
            )
        if self.worker.metrics_port == self.ports.api:
            raise ValueError("worker.metrics_port must differ from ports.api")
        if self.platform == "host":
            reserved = self.reserved_memory_mb()
            if reserved > self.host.memory_mb:
                raise ValueError(
                    f"reservations need {reserved} MiB but host.memory_mb is {self.host.memory_mb}"
                )
        return self

    @model_validator(mode="after")
    def _frontdoor_ports(self) -> Config:
        """The front door's internal api ports must not collide with any other port of the stack."""
        first = self.frontdoor.first_port(self.ports.api, 2 * self.api.max_replicas)
        last = first + 2 * self.api.max_replicas - 1
        if last > 65535:
            raise ValueError(f"frontdoor.upstream_port: {first}..{last} passes 65535; pick a lower port")
        taken = {f"ports.{k}": v for k, v in self.ports.model_dump().items()}
        taken["worker.metrics_port"] = self.worker.metrics_port
        if self.frontdoor.tls != "off":
            taken["frontdoor.http_port"] = self.frontdoor.http_port
            if self.frontdoor.http_port == self.ports.api:
                raise ValueError("frontdoor.http_port must differ from ports.api (the HTTPS port)")
        for name, port in taken.items():
            if first <= port <= last:
                raise ValueError(
                    f"frontdoor.upstream_port: the api replicas' ports {first}..{last} include {name} "
                    f"({port}); set frontdoor.upstream_port elsewhere"
                )
        return self

    # ---- derived values (one computation for every consumer) ----

    def service_values(self) -> dict[str, Any]:
        """ServiceSettings values as a plain mapping (field name -> value)."""
        return {name: getattr(self.service, name) for name in ServiceSettings.model_fields}

    def role_settings(self, role: Literal["api", "worker"]) -> ServiceSettings:
        """Service settings of one role: shared `service` plus `<role>.service` overrides."""
        return ServiceValues.model_validate({**self.service_values(), **getattr(self, role).service})

    def connection_budget(self) -> dict[str, Any]:
        """Connections every pool can open at maximum replicas, plus the reserve."""
        api, worker = self.role_settings("api"), self.role_settings("worker")
        api_max = self.api.max_replicas * api.api_workers * api.db_pool_max
        worker_max = self.worker.max_replicas * worker.worker_processes * worker.db_pool_max
        total = api_max + worker_max + self.postgres.reserve_connections
        explain = (
            f"api {self.api.max_replicas}x{api.api_workers}x{api.db_pool_max} + worker "
            f"{self.worker.max_replicas}x{worker.worker_processes}x{worker.db_pool_max} + reserve "
            f"{self.postgres.reserve_connections}"
        )
        return {
            "api": api_max,
            "worker": worker_max,
            "reserve": self.postgres.reserve_connections,
            "total": total,
            "explain": explain,
        }

    def max_connections(self) -> int:
        """The max_connections Postgres is configured with (explicit value or the budget)."""
        return self.postgres.max_connections or self.connection_budget()["total"]

    def postgres_tuning(self) -> dict[str, str]:
        """Memory settings derived from the Postgres container memory."""
        mem = self.postgres.memory_mb
        shared = int(mem * self.postgres.shared_buffers_ratio)
        cache = int(mem * self.postgres.effective_cache_ratio)
        work = max(1024, int((mem - shared) * 1024 * 0.25 / self.max_connections()))
        maintenance = min(1024, max(64, mem // 16))
        return {
            "shared_buffers": f"{shared}MB",
            "effective_cache_size": f"{cache}MB",
            "work_mem": f"{work}kB",
            "maintenance_work_mem": f"{maintenance}MB",
        }

    def reserved_memory_mb(self) -> int:
        """Memory reserved on a single host at the configured replicas (compose)."""
        r = self.host.reservation_ratio
        sizes: list[tuple[Size, int]] = [
            (self.api, self.api.replicas),
            (self.worker, self.worker.replicas),
            (self.postgres, 1),
            (self.redis, 1),
            (self.traefik, 1),
            (self.monitoring.prometheus, 1),
            (self.monitoring.alertmanager, 1),
            (self.monitoring.grafana, 1),
            (self.monitoring.exporters, 2),
        ]
        if self.minio.enabled:
            sizes.append((self.minio, 1))
        return sum(int(size.memory_mb * r) * count for size, count in sizes)

    def storage_kind(self) -> str:
        """Where uploads live: "s3" when MinIO is enabled, else a shared volume."""
        return "s3" if self.minio.enabled else "file"
