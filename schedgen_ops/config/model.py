"""The one validated model of a deployment's configuration (profile + overrides).

Every number lives in exactly one place: service defaults in `ServiceSettings`, everything else in
profiles/base.yaml, and scale-specific values in profiles/<name>.yaml. The model itself carries no
numeric defaults so a value can never silently come from two homes. Derived values (the Postgres
connection budget, memory tuning, schedules) are computed here, once, for every consumer.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from schedgen_ops.config.health import HealthThresholds, from_alerts
from schedgen_ops.config.values import (
    Bucket,
    Email,
    Hostname,
    ImageRef,
    KubeClassName,
    PgIdentifier,
    QueueName,
    RelativePath,
    SafeText,
    bind_host,
    safe_text,
)
from schedgen_ops.parsing.semesters import SemesterDates
from schedgen_ops.service.settings import ServiceSettings

DURATION_RE = re.compile(r"^[0-9]+(ms|s|m|h|d)$")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SECRET_SERVICE_FIELDS = frozenset(
    {"database_url", "redis_url", "ops_token", "s3_access_key", "s3_secret_key"}
)


class ServiceValues(ServiceSettings):
    """ServiceSettings validated from the merged configuration only.

    ServiceSettings is a BaseSettings: validating it (even nested) reads SCHEDGEN_* from the process
    environment. The configuration must not: single-level SCHEDGEN_<FIELD> variables belong to the
    running service, and a render must not depend on the shell it runs in.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: Any,
        init_settings: Any,
        env_settings: Any,
        dotenv_settings: Any,
        file_secret_settings: Any,
    ) -> tuple[Any, ...]:
        return (init_settings,)

    @model_validator(mode="after")
    def _renderable(self) -> ServiceValues:
        """Service settings become env-file lines and supervisord words: one safe line each."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    try:
                        safe_text(item)
                    except ValueError as exc:
                        raise ValueError(f"service.{name}: {exc}") from None
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"service.log_level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        for name in ("rate_uploads", "rate_status", "rate_requests", "rate_key_failures"):
            rate = getattr(self, name, None)
            if rate is not None:
                _rate(name, rate)
        return self


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _rate(name: str, value: str) -> None:
    """A rate in the limits library's notation ("10/hour", "100 per minute")."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ValueError(f"service.{name}: {value!r} is not a rate like 10/hour or 100/minute") from None


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Size(Strict):
    """CPU and memory of one container/pod (the limit; the reservation is derived)."""

    cpus: float = Field(gt=0, description="CPU limit (cores).")
    memory_mb: int = Field(gt=0, description="Memory limit in MiB.")


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


class ImageConfig(Strict):
    """Every image the stack runs besides postgres.image, redis.image and minio.image (one visible set)."""

    service: ImageRef = Field(description="Our image repository; the tag is always the toolkit version.")
    traefik: ImageRef
    prometheus: ImageRef
    alertmanager: ImageRef
    grafana: ImageRef
    postgres_exporter: ImageRef
    redis_exporter: ImageRef
    cloudnative_pg: ImageRef = Field(description="Kubernetes HA Postgres (CloudNativePG Cluster imageName).")
    redis_operator: ImageRef = Field(description="Kubernetes Redis replication (OT redis-operator).")
    redis_sentinel: ImageRef = Field(description="Kubernetes Redis Sentinel (OT redis-operator).")


class EdgeConfig(Strict):
    """The Traefik front door; off for installs behind an existing proxy or ingress."""

    enabled: bool = Field(True, description="False = no Traefik; the api is published on api_bind.")
    api_bind: str = Field(
        "127.0.0.1:8000", description="HOST:PORT the api is published on when the edge is off."
    )
    subnet: str = Field(
        "10.250.0.0/24",
        description="Subnet of the compose edge network (Traefik, api, Grafana): with the edge on, the "
        "only peers whose X-Forwarded-For the api believes.",
    )

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        return private_cidr(value)

    @field_validator("api_bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8000)")
        bind_host(host)
        return value

    @property
    def api_host(self) -> str:
        return self.api_bind.rpartition(":")[0].strip("[]")

    @property
    def api_port(self) -> int:
        return int(self.api_bind.rpartition(":")[2])


class FrontDoorConfig(Strict):
    """The local runtime's reverse proxy (Caddy): it owns ports.api, balances the api replicas on
    internal ports, health-checks them and terminates TLS. Defaults here (not in profiles) so every
    existing schedgen.yaml stays valid."""

    tls: Literal["off", "internal", "acme", "auto"] = Field(
        "off",
        description="off = plain HTTP on ports.api; internal = Caddy's local CA; acme = a public "
        "certificate for `domain`; auto = acme when `domain` is a real public name, else internal.",
    )
    bind: str = Field("127.0.0.1", description="Address the front door listens on (0.0.0.0 = every one).")
    http_port: int = Field(
        80, ge=1, le=65535, description="With TLS on: the HTTP port that redirects to HTTPS (and ACME)."
    )
    upstream_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="First internal api port (2 x api.max_replicas ports from it); 0 = ports.api + 10000 "
        "(ports.api - 10000 when that passes 65535).",
    )
    acme_email: str = Field("", description="Contact address given to the ACME CA (optional).")

    def first_port(self, api_port: int, count: int) -> int:
        """The first of the ``count`` internal api ports (blue then green slots)."""
        if self.upstream_port:
            return self.upstream_port
        return api_port + 10000 if api_port + 10000 + count <= 65536 else max(1, api_port - 10000)

    @field_validator("bind")
    @classmethod
    def _bind_addr(cls, value: str) -> str:
        return bind_host(value)

    @field_validator("acme_email")
    @classmethod
    def _email(cls, value: str) -> str:
        from schedgen_ops.config.values import email

        return email(value) if value else value


def _no_webhook_here(value: str, secret: str) -> str:
    """Webhook URLs carry credentials (a hook's path is its key) and schedgen.yaml is committed."""
    if value:
        raise ValueError(
            f"webhook URLs are secrets and do not belong in schedgen.yaml: store it with "
            f"`printf %s URL | schedgen secrets set {secret}` (kept in .schedgen/secrets.env, never rendered)"
        )
    return value


class MonitoringConfig(Strict):
    enabled: bool = Field(
        True, description="False leaves out Prometheus, Alertmanager, Grafana and the exporters."
    )
    prometheus: Size
    alertmanager: Size
    grafana: Size
    exporters: Size
    retention: str = Field(description="Prometheus TSDB retention.")
    scrape_interval: str
    webhook_url: str = Field(
        "",
        description="Always empty: the Alertmanager webhook is a secret "
        "(`schedgen secrets set ALERT_WEBHOOK_URL`); empty there = alerts are only shown.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str) -> str:
        return _no_webhook_here(value, "ALERT_WEBHOOK_URL")

    @field_validator("retention", "scrape_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a duration like 30s, 5m, 15d")
        return value


class TraefikConfig(Size):
    acme_email: Email
    rate_average: int = Field(gt=0, description="Edge rate limit: average requests/s per client IP.")
    rate_burst: int = Field(gt=0)
    content_security_policy: SafeText
    dashboard: Literal[False] = Field(description="The Traefik dashboard is never exposed.")


class AlertThresholds(Strict):
    """Thresholds shared by Prometheus alerts, `schedgen health` and the checklist (one source)."""

    api_down_for: str
    error_ratio_5xx: float = Field(gt=0, lt=1)
    error_ratio_for: str
    latency_p95_s: float = Field(gt=0)
    latency_for: str
    queue_backlog: int = Field(gt=0, description="Queued jobs (all queues) that count as a backlog.")
    queue_backlog_for: str
    oldest_job_age_s: int = Field(gt=0)
    job_failure_ratio: float = Field(gt=0, lt=1)
    job_failure_for: str
    no_workers_for: str
    parse_p95_s: float = Field(gt=0)
    parse_slow_for: str
    postgres_connections_ratio: float = Field(gt=0, lt=1)
    redis_memory_ratio: float = Field(gt=0, lt=1)
    backup_max_age_h: int = Field(gt=0)

    @field_validator(
        "api_down_for",
        "error_ratio_for",
        "latency_for",
        "queue_backlog_for",
        "job_failure_for",
        "no_workers_for",
        "parse_slow_for",
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a duration like 30s, 5m, 1h")
        return value


class PitrConfig(Strict):
    """Point-in-time recovery: pgBackRest archives WAL continuously (docs/BACKUP.md)."""

    enabled: bool = Field(False, description="Archive WAL with pgBackRest (on for medium and large).")
    archive_timeout_s: int = Field(
        60, ge=1, le=3600, description="Postgres archive_timeout: the most committed work a lost disk costs."
    )
    full_weekday: int = Field(
        6, ge=0, le=6, description="Weekday (0 = Monday) of the full backup; other days take a differential."
    )
    retention_full: int = Field(2, ge=1, description="Full backups kept (with their WAL) in the repository.")
    repo: Literal["local", "s3"] = Field("local", description="Repository: local disk or the S3 bucket.")
    repo_path: str = Field(
        "", description="Local repository directory (default: .schedgen/pgbackrest/repo in the project)."
    )
    s3_bucket: Bucket = Field("schedgen-pitr", description="Bucket of an s3 repository (MinIO or S3).")
    process_max: int = Field(2, ge=1, le=32, description="pgBackRest parallel processes.")


class BackupConfig(Strict):
    hour: int = Field(ge=0, le=23, description="Daily backup time (UTC), hour.")
    minute: int = Field(ge=0, le=59)
    keep_daily: int = Field(ge=1)
    keep_weekly: int = Field(ge=0)
    keep_monthly: int = Field(ge=0)
    dir: RelativePath = Field(description="Backup directory (relative to the project).")
    webhook_url: str = Field(
        "",
        description="Always empty: the failure webhook of scheduled backups is a secret "
        "(`schedgen secrets set BACKUP_WEBHOOK_URL`; falls back to ALERT_WEBHOOK_URL).",
    )
    pitr: PitrConfig = Field(default_factory=lambda: PitrConfig.model_validate({}))

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str) -> str:
        return _no_webhook_here(value, "BACKUP_WEBHOOK_URL")

    @property
    def cron(self) -> str:
        """The schedule as a cron expression (cron file, Kubernetes CronJob)."""
        return f"{self.minute} {self.hour} * * *"

    @property
    def on_calendar(self) -> str:
        """The same schedule as a systemd OnCalendar expression."""
        return f"*-*-* {self.hour:02d}:{self.minute:02d}:00 UTC"


class PortsConfig(Strict):
    api: int = Field(ge=1, le=65535)
    postgres: int = Field(ge=1, le=65535)
    redis: int = Field(ge=1, le=65535)
    minio: int = Field(ge=1, le=65535)
    prometheus: int = Field(ge=1, le=65535)
    alertmanager: int = Field(ge=1, le=65535)
    grafana: int = Field(ge=1, le=65535)


class HostConfig(Strict):
    cpus: float = Field(gt=0)
    memory_mb: int = Field(gt=0)
    reservation_ratio: float = Field(gt=0, le=1, description="Reservation = limit x ratio.")


class KubernetesConfig(Strict):
    namespace: str
    storage_class: KubeClassName = Field(description="StorageClass for volumes; empty = the cluster default.")
    ingress_class: KubeClassName
    ingress_cidrs: list[str] = Field(
        description="Pod network(s) of the ingress controller: the only peers whose X-Forwarded-For the "
        "api believes (set it to your cluster's pod CIDR)."
    )

    @field_validator("ingress_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one CIDR (the ingress controller's pod network)")
        return [private_cidr(cidr) for cidr in value]

    @field_validator("namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value) or len(value) > 63:
            raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits, '-')")
        return value


def private_cidr(value: str) -> str:
    """A private network in CIDR form, at most a /8 (IPv4) or /32 (IPv6): what a proxy network is."""
    import ipaddress

    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR form like 10.250.0.0/24 ({exc})") from None
    if not network.is_private or network.prefixlen < (8 if network.version == 4 else 32):
        raise ValueError(f"{value!r} must be a private network no wider than /8 (IPv6: /32)")
    return str(network)


def _health_overrides() -> type[BaseModel]:
    """Every `HealthThresholds` field, optional, with the same bounds: the one source is config/health.py."""
    fields: dict[str, Any] = {
        name: (
            Optional[Annotated[info.annotation, *info.metadata]],  # noqa: UP045 (built at run time)
            Field(None, description=info.description),
        )
        for name, info in HealthThresholds.model_fields.items()
    }
    return create_model(
        "HealthOverrides",
        __base__=Strict,
        __doc__="`schedgen health` thresholds overridden for this deployment (docs/HEALTH.md).",
        **fields,
    )


HealthOverrides: Any = _health_overrides()


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
