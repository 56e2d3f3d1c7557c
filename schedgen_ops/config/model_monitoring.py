"""The monitoring, alerts and health sections: Prometheus stack sizes, alert thresholds, health overrides."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field, create_model, field_validator

from schedgen_ops.config.health import HealthThresholds
from schedgen_ops.config.model_common import DURATION_RE, Size, Strict, no_webhook_here


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
        return no_webhook_here(value, "ALERT_WEBHOOK_URL")

    @field_validator("retention", "scrape_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a duration like 30s, 5m, 15d")
        return value


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
