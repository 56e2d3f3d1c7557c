"""Grafana dashboards in file-provisioning format: the bare dashboard model, not the HTTP API's
``{"dashboard": ..., "overwrite": ...}`` envelope (which file provisioning rejects)."""

from __future__ import annotations

from typing import Any

from schedgen_ops.config.model import Config

_DS = {"type": "prometheus", "uid": "prometheus"}


def _panel(
    pid: int,
    title: str,
    exprs: list[tuple[str, str]],
    x: int,
    y: int,
    unit: str,
    threshold: float | None = None,
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": _DS,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(65 + i), "datasource": _DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def overview(config: Config) -> dict[str, Any]:
    """The service overview dashboard; thresholds drawn from the alert settings."""
    a = config.alerts
    panels = [
        (
            "Requests by status",
            [("sum by (status) (rate(schedgen_http_requests_total[5m]))", "{{status}}")],
            "reqps",
            None,
        ),
        (
            "5xx ratio",
            [
                (
                    'sum(rate(schedgen_http_requests_total{status=~"5.."}[5m])) / '
                    "sum(rate(schedgen_http_requests_total[5m]))",
                    "5xx",
                )
            ],
            "percentunit",
            a.error_ratio_5xx,
        ),
        (
            "p95 latency",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(schedgen_http_request_duration_seconds_bucket[5m])))",
                    "p95",
                )
            ],
            "s",
            a.latency_p95_s,
        ),
        ("Queue depth", [("max by (queue) (schedgen_queue_depth)", "{{queue}}")], "short", a.queue_backlog),
        (
            "Oldest queued job",
            [("max(schedgen_queue_oldest_waiting_seconds)", "age")],
            "s",
            a.oldest_job_age_s,
        ),
        ("Live workers", [("max(schedgen_workers_live)", "workers")], "short", None),
        ("Job outcomes", [("sum by (status) (rate(schedgen_jobs_total[15m]))", "{{status}}")], "ops", None),
        (
            "p95 parse time",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(schedgen_parse_duration_seconds_bucket[15m])))",
                    "p95",
                )
            ],
            "s",
            a.parse_p95_s,
        ),
        (
            "Postgres connections",
            [("sum(pg_stat_activity_count)", "in use"), ("max(pg_settings_max_connections)", "max")],
            "short",
            None,
        ),
        (
            "Redis memory",
            [("max(redis_memory_used_bytes)", "used"), ("max(redis_memory_max_bytes)", "max")],
            "bytes",
            None,
        ),
    ]
    return {
        "uid": "schedgen-overview",
        "title": "schedgen overview",
        "tags": ["schedgen"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": [
            _panel(i + 1, title, exprs, (i % 2) * 12, (i // 2) * 8, unit, thr)
            for i, (title, exprs, unit, thr) in enumerate(panels)
        ],
    }
