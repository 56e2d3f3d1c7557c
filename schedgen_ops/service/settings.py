"""Settings of the parsing service (api, workers, reconciler), read from ``SCHEDGEN_*`` environment.

This class is the one home of every service default: the scale profiles override fields by name
(``service:`` section of a profile or schedgen.yaml, keys = field names), and the renderer turns the
merged values back into ``SCHEDGEN_<FIELD>`` environment for each runtime via `to_env`.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "SCHEDGEN_"


class ServiceSettings(BaseSettings):
    """Everything the service processes need; secrets are `SecretStr` so they never print."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    # Connections
    database_url: SecretStr = Field(
        SecretStr(""), description="postgresql:// URL of the job ledger (system of record)."
    )
    redis_url: SecretStr = Field(SecretStr(""), description="redis:// URL of the queue Redis.")
    storage_url: str = Field("", description="Upload storage: file:///dir or s3://bucket/prefix.")
    s3_endpoint_url: str = Field("", description="S3 endpoint for s3:// storage (MinIO); empty = AWS.")
    s3_access_key: SecretStr = Field(SecretStr(""), description="S3 access key id.")
    s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret access key.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    ops_token: SecretStr = Field(
        SecretStr(""), description="Bearer token for ops endpoints (queue, priority)."
    )
    # NoDecode: list settings come from the environment as comma-separated strings (see `to_env`), not JSON.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="CIDRs whose X-Forwarded-For is believed (the reverse proxy).",
    )

    # Database pool
    db_pool_min: int = Field(2, ge=0, description="Minimum connections kept open per process.")
    db_pool_max: int = Field(10, ge=1, description="Maximum connections per process.")
    db_acquire_timeout_s: float = Field(5.0, gt=0, description="Wait for a pooled connection at most this.")
    db_statement_timeout_ms: int = Field(10_000, gt=0, description="Postgres statement_timeout.")

    # Uploads and parsing
    upload_max_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Largest accepted upload.")
    upload_max_pages: int = Field(100, gt=0, description="Most pages an uploaded PDF may have.")
    parse_timeout_s: float = Field(60.0, gt=0, description="Abort one parse after this long.")
    parse_memory_mb: int = Field(
        512,
        ge=128,
        description=(
            "Memory ceiling (address space, RLIMIT_AS) of the sandbox process a worker parses in; "
            "a parse that needs more fails with parse_limit_exceeded."
        ),
    )
    parse_max_operations: int = Field(
        1_000_000,
        ge=1_000,
        description="Most content operations and object lookups one parse may make (parse_limit_exceeded).",
    )
    preaccept_memory_mb: int = Field(
        192,
        ge=96,
        description="Memory ceiling (RLIMIT_AS) of the api's sandbox processes that check uploads.",
    )
    preaccept_timeout_s: float = Field(
        5.0, gt=0, description="Refuse an upload whose pre-accept check takes longer (parse_timeout)."
    )
    preaccept_processes: int = Field(
        2, ge=1, description="Pre-accept sandbox processes per api process (concurrent upload checks)."
    )
    job_timeout_s: int = Field(300, gt=0, description="RQ job timeout (a whole attempt).")
    job_retries: int = Field(3, ge=1, description="Attempts per job, the first included.")
    job_retry_backoff_s: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [10, 30, 90], description="Delay before each retry (exponential)."
    )
    worker_max_jobs: int = Field(500, gt=0, description="A worker process restarts after this many jobs.")
    api_workers: int = Field(2, ge=1, description="uvicorn worker processes per api replica.")
    worker_processes: int = Field(2, ge=1, description="RQ worker processes per worker replica.")
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description=(
            "CPU niceness of RQ worker processes and their parse children: parses queue, the api's "
            "requests should not wait behind them on a shared host (0 = the supervisor's priority)."
        ),
    )
    reconcile_interval_s: float = Field(
        30.0, gt=0, description="How often the reconciler compares the ledger with the queue."
    )
    readiness_timeout_s: float = Field(2.0, gt=0, description="Per-dependency timeout of /readyz checks.")
    http_keep_alive_s: float = Field(
        120.0,
        gt=0,
        description=(
            "uvicorn timeout_keep_alive of the api: close an idle keep-alive connection after this long. "
            "Above Traefik's 90 s backend idle timeout, so the proxy (not the api) closes first and never "
            "reuses a connection the api is closing."
        ),
    )

    # Rate limits (limits library notation)
    rate_uploads: str = Field("10/hour", description="Uploads per client.")
    rate_status: str = Field("100/minute", description="Job status requests per client.")
    rate_requests: str = Field("100/minute", description="All other API requests per client.")

    # Retention
    result_ttl_s: int = Field(24 * 3600, gt=0, description="Keep completed jobs and results this long.")
    failed_ttl_s: int = Field(24 * 3600, gt=0, description="Keep failed jobs this long.")

    # Observability
    log_level: str = Field("INFO", description="Python log level.")
    metrics_dir: str = Field(
        "", description="prometheus_client multiprocess directory (shared by processes)."
    )
    worker_metrics_port: int = Field(
        9101, ge=0, le=65535, description="Port of a worker replica's /metrics (all its processes); 0 = off."
    )

    # Edge hardening (issue 13): docs off in production, unknown API keys limited before any lookup
    api_docs: bool = Field(
        False, description="Serve /docs, /redoc and /openapi.json (off in every profile: dev opt-in)."
    )
    rate_key_failures: str = Field(
        "20/minute",
        description="Unknown or invalid API keys per client address; past it 429 without a database lookup.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_cidrs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("job_retry_backoff_s", mode="before")
    @classmethod
    def _split_ints(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ip_network(cidr, strict=False)
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> ServiceSettings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError(f"db_pool_min ({self.db_pool_min}) exceeds db_pool_max ({self.db_pool_max})")
        return self

    def trusted_networks(self) -> list[IPv4Network | IPv6Network]:
        """The trusted proxy CIDRs as network objects."""
        return [ip_network(cidr, strict=False) for cidr in self.trusted_proxies]


def to_env(values: dict[str, Any]) -> dict[str, str]:
    """Render settings values (field name -> value) as ``SCHEDGEN_*`` environment strings.

    Lists become comma-separated; `SecretStr` values are revealed (callers decide where they go).
    """
    env: dict[str, str] = {}
    for name, value in values.items():
        if name not in ServiceSettings.model_fields:
            raise KeyError(f"unknown service setting {name!r}")
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list):
            value = ",".join(str(item) for item in value)
        env[ENV_PREFIX + name.upper()] = str(value)
    return env
