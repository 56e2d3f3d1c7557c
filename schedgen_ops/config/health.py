"""Health thresholds: one model, one set of defaults, and their derivation from the alert rules.

These are the numbers the rendered Prometheus alert rules use too (one source): `from_alerts` reads a
configuration's ``alerts:``, and its typed ``health:`` section (``schedgen.yaml`` or
``--set health.KEY=VALUE``, built from `HealthThresholds` in config/model_monitoring.py) may override
any field.
It lives in `config` because the `Config` model validates against it; `schedgen_ops.ops.health` judges
with it. Field names say the unit (``_s`` seconds, ``_ratio`` 0..1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # model.py imports this module for HealthOverrides
    from schedgen_ops.config.model import Config


class HealthThresholds(BaseModel):
    """Warn/critical levels of every check, and each check's time budget.

    Defaults equal what `from_alerts` derives from profiles/base.yaml's ``alerts:`` section, so a run
    without a project judges like the rendered alert rules of the default profile.
    """

    model_config = ConfigDict(extra="forbid")

    check_budget_s: float = Field(2.0, gt=0, le=4.0, description="Time budget of each probe.")

    api_latency_warn_s: float = Field(1.0, gt=0, description="/healthz round trip: warn at or above.")
    api_latency_critical_s: float = Field(2.0, gt=0, description="/healthz round trip: critical at or above.")

    postgres_latency_warn_s: float = Field(0.1, gt=0, description="SELECT 1 round trip: warn.")
    postgres_latency_critical_s: float = Field(0.5, gt=0, description="SELECT 1 round trip: critical.")
    postgres_connections_warn_ratio: float = Field(0.80, gt=0, le=1, description="Client connections / max.")
    postgres_connections_critical_ratio: float = Field(
        0.95, gt=0, le=1, description="Client connections / max."
    )
    postgres_transaction_warn_s: float = Field(60, gt=0, description="Longest open transaction: warn.")
    postgres_transaction_critical_s: float = Field(
        300, gt=0, description="Longest open transaction: critical."
    )
    postgres_replication_lag_warn_s: float = Field(30, gt=0, description="Replica replay lag: warn.")
    postgres_replication_lag_critical_s: float = Field(120, gt=0, description="Replica replay lag: critical.")

    redis_memory_warn_ratio: float = Field(0.70, gt=0, le=1, description="used_memory / maxmemory: warn.")
    redis_memory_critical_ratio: float = Field(
        0.80, gt=0, le=1, description="used_memory / maxmemory: critical."
    )

    queue_depth_warn: int = Field(100, ge=1, description="Waiting jobs, all queues: warn.")
    queue_depth_critical: int = Field(1000, ge=1, description="Waiting jobs, all queues: critical.")
    queue_oldest_job_warn_s: float = Field(120, gt=0, description="Age of the oldest waiting job: warn.")
    queue_oldest_job_critical_s: float = Field(
        600, gt=0, description="Age of the oldest waiting job: critical."
    )
    job_failure_ratio_warn: float = Field(0.10, gt=0, le=1, description="Failed / finished, last hour: warn.")
    job_failure_ratio_critical: float = Field(0.20, gt=0, le=1, description="Failed / finished, last hour.")
    job_failure_min_jobs: int = Field(
        10, ge=1, description="Below this many finished jobs the ratio is not judged."
    )
    workers_min: int = Field(1, ge=0, description="Fewer live workers than this is critical.")
    worker_heartbeat_warn_s: float = Field(
        450, gt=0, description="Oldest worker heartbeat: warn (RQ ttl 420 s)."
    )
    worker_heartbeat_critical_s: float = Field(600, gt=0, description="Oldest worker heartbeat: critical.")
    overdue_jobs_warn: int = Field(1, ge=1, description="Jobs processing past the job timeout: warn.")
    overdue_jobs_critical: int = Field(5, ge=1, description="Jobs processing past the job timeout: critical.")

    disk_free_warn_ratio: float = Field(
        0.15, gt=0, lt=1, description="Free space on a data filesystem: warn below."
    )
    disk_free_critical_ratio: float = Field(0.05, gt=0, lt=1, description="Free space: critical below.")

    backup_age_warn_s: float = Field(25 * 3600, gt=0, description="Newest backup older than this: warn.")
    backup_age_critical_s: float = Field(
        26 * 3600, gt=0, description="Newest backup older than this: critical."
    )

    tls_expiry_warn_days: float = Field(21, gt=0, description="Certificate expires sooner: warn.")
    tls_expiry_critical_days: float = Field(7, gt=0, description="Certificate expires sooner: critical.")

    @model_validator(mode="after")
    def _ordered(self) -> HealthThresholds:
        """Each warn level must come before its critical level, or a check could skip straight past warn."""
        data = self.model_dump()
        for name, warn in data.items():
            if not (name.endswith("_warn") or "_warn_" in name):
                continue
            crit_name = name.replace("_warn", "_critical")
            crit = data.get(crit_name)
            if crit is None:
                continue
            falling = name.startswith(("disk_free", "tls_expiry"))
            if (falling and crit > warn) or (not falling and crit < warn):
                raise ValueError(
                    f"{crit_name} ({crit}) must be {'below' if falling else 'above'} {name} ({warn})"
                )
        return self


def from_alerts(alerts: Any) -> dict[str, Any]:
    """Health thresholds implied by the profile's ``alerts:`` section (the rendered Prometheus rules').

    Each alert's number is where health reaches that alert's severity: a ``warning`` alert's value is the
    warn level, a ``critical`` alert's value the critical level. The other level of the pair is derived
    here, by one documented rule each (docs/HEALTH.md, "Where thresholds come from").
    """
    get = alerts.get if isinstance(alerts, Mapping) else lambda key: getattr(alerts, key, None)
    out: dict[str, Any] = {}
    if (backlog := get("queue_backlog")) is not None:  # QueueBacklog: warning
        out["queue_depth_warn"] = int(backlog)
        out["queue_depth_critical"] = int(backlog) * 10
    if (oldest := get("oldest_job_age_s")) is not None:  # OldestQueuedJobTooOld: critical
        out["queue_oldest_job_critical_s"] = float(oldest)
        out["queue_oldest_job_warn_s"] = float(oldest) / 5
    if (failure := get("job_failure_ratio")) is not None:  # JobFailureRatioHigh: warning
        out["job_failure_ratio_warn"] = float(failure)
        out["job_failure_ratio_critical"] = min(1.0, float(failure) * 2)
    if (pg := get("postgres_connections_ratio")) is not None:  # PostgresConnectionsHigh: warning
        out["postgres_connections_warn_ratio"] = float(pg)
        out["postgres_connections_critical_ratio"] = max(float(pg), 0.95)
    if (mem := get("redis_memory_ratio")) is not None:  # RedisMemoryHigh: critical
        out["redis_memory_critical_ratio"] = float(mem)
        out["redis_memory_warn_ratio"] = round(max(0.01, float(mem) - 0.10), 4)
    if (backup_h := get("backup_max_age_h")) is not None:  # BackupTooOld: critical
        out["backup_age_critical_s"] = float(backup_h) * 3600
        out["backup_age_warn_s"] = max(1.0, float(backup_h) - 1) * 3600
    if (p95 := get("latency_p95_s")) is not None:  # ApiHighLatencyP95: warning
        out["api_latency_warn_s"] = float(p95)
        out["api_latency_critical_s"] = float(p95) * 2
    return out


def config_thresholds(cfg: Config) -> dict[str, Any]:
    """Thresholds from a validated configuration: implied by its alerts, then its typed ``health`` section."""
    values = from_alerts(cfg.alerts)
    values.update(cfg.health.model_dump(exclude_none=True))
    return values
