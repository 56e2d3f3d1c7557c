"""The Prometheus alert rules, built from the profile's `alerts:` thresholds.

Kept as data (not template text) so the promtool unit tests generated in `promtests` can expect
exactly these labels and annotations, and `schedgen health` / the checklist can list the same rules.
Metric names are the service's (schedgen_ops/service/metrics.py). Queue and worker gauges are
computed by every api replica at scrape time, so the rules take ``max`` across replicas, not ``sum``.
"""

from __future__ import annotations

from typing import Any

from schedgen_ops.config.model import Config

#: Alert -> the `schedgen health` check that measures the same thing (its anchor in docs/HEALTH.md), so the
#: runbook sends on-call from a firing alert to the check that confirms it and its hint.
HEALTH_CHECKS: dict[str, str] = {
    "ApiDown": "api-liveness",
    "ApiHighLatencyP95": "api-latency",
    "QueueBacklog": "queue-backlog",
    "OldestQueuedJobTooOld": "queue-oldest-waiting",
    "QueuedJobNotWaitingInRedis": "queue-oldest-queued",
    "JobFailureRatioHigh": "queue-failed-ratio",
    "NoWorkers": "queue-workers",
    "PostgresConnectionsHigh": "postgres-connections",
    "RedisMemoryHigh": "redis-memory",
    "BackupTooOld": "backup-age",
}


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def alert_rules(config: Config) -> list[dict[str, Any]]:
    a = config.alerts
    rules = [
        (
            "ApiDown",
            'up{job="api"} == 0 or absent(up{job="api"})',
            a.api_down_for,
            "critical",
            f"an api instance has not answered scrapes for {a.api_down_for}",
        ),
        (
            "ApiHigh5xxRatio",
            'sum(rate(schedgen_http_requests_total{status=~"5.."}[5m])) / '
            f"sum(rate(schedgen_http_requests_total[5m])) > {a.error_ratio_5xx}",
            a.error_ratio_for,
            "critical",
            f"more than {_pct(a.error_ratio_5xx)} of api responses are 5xx",
        ),
        (
            "ApiHighLatencyP95",
            "histogram_quantile(0.95, sum by (le) (rate(schedgen_http_request_duration_seconds_bucket[5m]))) "
            f"> {a.latency_p95_s}",
            a.latency_for,
            "warning",
            f"api p95 latency above {a.latency_p95_s}s",
        ),
        (
            "QueueBacklog",
            f"sum(max by (queue) (schedgen_queue_depth)) > {a.queue_backlog}",
            a.queue_backlog_for,
            "warning",
            f"more than {a.queue_backlog} jobs waiting",
        ),
        (
            "OldestQueuedJobTooOld",
            f"max(schedgen_queue_oldest_waiting_seconds) > {a.oldest_job_age_s}",
            "1m",
            "critical",
            f"a job has waited more than {a.oldest_job_age_s}s",
        ),
        (
            # The ledger's view: an upload still queued that Redis does not show waiting that long (Redis
            # lost it, it came back with a restored backup, the reconciler is not running). Silent while
            # OldestQueuedJobTooOld already fires for the same wait. Such a job is never purged.
            "QueuedJobNotWaitingInRedis",
            f"max(schedgen_oldest_queued_job_seconds) > {a.oldest_job_age_s} "
            f"unless max(schedgen_queue_oldest_waiting_seconds) > {a.oldest_job_age_s}",
            "5m",
            "critical",
            f"an upload has been queued in the ledger for more than {a.oldest_job_age_s}s but is not "
            "waiting that long in Redis (lost or re-enqueued after a restore); it is kept until processed",
        ),
        (
            "JobFailureRatioHigh",
            'sum(rate(schedgen_jobs_total{status="failed"}[15m])) / '
            f'sum(rate(schedgen_jobs_total{{status=~"completed|failed"}}[15m])) > {a.job_failure_ratio}',
            a.job_failure_for,
            "warning",
            f"more than {_pct(a.job_failure_ratio)} of jobs fail",
        ),
        (
            "NoWorkers",
            "(max(schedgen_workers_live) or vector(0)) == 0",
            a.no_workers_for,
            "critical",
            "no live queue workers: uploads wait forever",
        ),
        (
            "SlowParses",
            "histogram_quantile(0.95, sum by (le) (rate(schedgen_parse_duration_seconds_bucket[15m]))) "
            f"> {a.parse_p95_s}",
            a.parse_slow_for,
            "warning",
            f"p95 parse time above {a.parse_p95_s}s",
        ),
        (
            "PostgresConnectionsHigh",
            "sum(pg_stat_activity_count) / max(pg_settings_max_connections) > "
            f"{a.postgres_connections_ratio}",
            "5m",
            "warning",
            f"Postgres connections above {_pct(a.postgres_connections_ratio)} of max_connections",
        ),
        (
            "RedisMemoryHigh",
            f"max(redis_memory_used_bytes / redis_memory_max_bytes) > {a.redis_memory_ratio}",
            "5m",
            "critical",
            f"queue Redis above {_pct(a.redis_memory_ratio)} of maxmemory (noeviction: writes will fail)",
        ),
        (
            "BackupTooOld",
            f"(time() - max(schedgen_backup_last_success_timestamp_seconds)) > {a.backup_max_age_h * 3600} "
            "or absent(schedgen_backup_last_success_timestamp_seconds)",
            "10m",
            "critical",
            f"no successful backup in {a.backup_max_age_h}h",
        ),
    ]
    return [
        {
            "alert": name,
            "expr": expr,
            "for": duration,
            "labels": {"severity": severity},
            "annotations": {"summary": summary},
        }
        for name, expr, duration, severity, summary in rules
    ]


def rules_file(config: Config) -> dict[str, Any]:
    return {"groups": [{"name": "schedgen", "rules": alert_rules(config)}]}
