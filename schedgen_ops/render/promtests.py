"""promtool unit tests for the rendered alert rules, generated from the same thresholds.

Each alert gets a firing case (synthetic series just past its threshold for longer than its
``for``) and a silent case (healthy series), so a rule that can never fire - or always fires - fails
`promtool test rules` inside `schedgen render`.
"""

from __future__ import annotations

import re
from typing import Any

from schedgen_ops.config.model import Config
from schedgen_ops.render.alerts import alert_rules

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", duration)
    if not match:
        raise ValueError(f"bad duration {duration!r}")
    return int(int(match.group(1)) * _UNITS[match.group(2)])


def _minutes_after(for_s: int, window_s: int = 900) -> int:
    """An evaluation time (minutes) safely past rate windows plus the alert's `for`."""
    return (for_s + window_s) // 60 + 5


def _counter(per_min: float, steps: int) -> str:
    return f"0+{per_min:g}x{steps}"


def _steady(series: str, value: float, steps: int) -> dict[str, str]:
    """A series that holds one value for ``steps`` minutes (a gauge that neither rises nor falls)."""
    return {"series": series, "values": f"{value}x{steps}"}


def _shares(
    bad: str, rest: str, per_min: int, ratio: float, steps: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Counters of ``per_min`` events a minute split between ``bad`` and ``rest``: twice the alert's
    ``ratio`` bad (it fires), then half of it (it stays quiet)."""

    def split(bad_per_min: int) -> list[dict[str, str]]:
        return [
            {"series": bad, "values": _counter(bad_per_min, steps)},
            {"series": rest, "values": _counter(per_min - bad_per_min, steps)},
        ]

    return split(round(per_min * min(0.99, ratio * 2))), split(round(per_min * ratio / 2))


def _case(
    name: str,
    alert: str,
    minutes: int,
    series: list[dict[str, str]],
    fires: bool,
    labels: dict[str, str],
    annotations: dict[str, str],
    interval: str = "1m",
) -> dict[str, Any]:
    exp = (
        [{"exp_labels": {"severity": labels.pop("severity"), **labels}, "exp_annotations": annotations}]
        if fires
        else []
    )
    return {
        "name": name,
        "interval": interval,
        "input_series": series,
        "alert_rule_test": [{"eval_time": f"{minutes}m", "alertname": alert, "exp_alerts": exp}],
    }


def _histogram(metric: str, threshold: float, slow: bool, steps: int) -> list[dict[str, str]]:
    """Bucket series whose p95 is ~3.8x (slow) or under half (fast) the threshold."""
    bounds = [threshold / 2, threshold * 4]
    out = []
    for le in [*(f"{b:g}" for b in bounds), "+Inf"]:
        per_min = 0 if (slow and le == f"{bounds[0]:g}") else 60
        out.append({"series": f'{metric}_bucket{{le="{le}"}}', "values": _counter(per_min, steps)})
    return out


def _histograms(
    metric: str, threshold: float, steps: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The slow buckets (the alert fires), then the fast ones (it stays quiet)."""
    return _histogram(metric, threshold, True, steps), _histogram(metric, threshold, False, steps)


def rule_tests(config: Config) -> dict[str, Any]:
    """The promtool test file (as a mapping) for config's alert thresholds."""
    a = config.alerts
    tests: list[dict[str, Any]] = []
    notes = {rule["alert"]: rule["annotations"] for rule in alert_rules(config)}

    def both(
        alert: str,
        minutes: int,
        bad: list[dict[str, str]],
        good: list[dict[str, str]],
        labels: dict[str, str],
        interval: str = "1m",
    ) -> None:
        for fires, series in ((True, bad), (False, good)):
            name = f"{alert} {'fires' if fires else 'stays silent'}"
            tests.append(_case(name, alert, minutes, series, fires, dict(labels), notes[alert], interval))

    m = _minutes_after(seconds(a.api_down_for), 0)
    both(
        "ApiDown",
        m,
        [_steady('up{job="api", instance="api-1"}', 0, m + 5)],
        [_steady('up{job="api", instance="api-1"}', 1, m + 5)],
        {"severity": "critical", "job": "api", "instance": "api-1"},
    )

    m = _minutes_after(seconds(a.error_ratio_for), 300)
    http = ('schedgen_http_requests_total{status="500"}', 'schedgen_http_requests_total{status="200"}')
    both("ApiHigh5xxRatio", m, *_shares(*http, 1000, a.error_ratio_5xx, m + 5), {"severity": "critical"})

    m = _minutes_after(seconds(a.latency_for), 300)
    metric = "schedgen_http_request_duration_seconds"
    both("ApiHighLatencyP95", m, *_histograms(metric, a.latency_p95_s, m + 5), {"severity": "warning"})

    m = _minutes_after(seconds(a.queue_backlog_for), 0)
    both(
        "QueueBacklog",
        m,
        [_steady('schedgen_queue_depth{queue="default"}', a.queue_backlog + 1, m + 5)],
        [_steady('schedgen_queue_depth{queue="default"}', a.queue_backlog, m + 5)],
        {"severity": "warning"},
    )

    m = _minutes_after(60, 0)
    both(
        "OldestQueuedJobTooOld",
        m,
        [_steady('schedgen_queue_oldest_waiting_seconds{queue="default"}', a.oldest_job_age_s + 1, m + 5)],
        [_steady('schedgen_queue_oldest_waiting_seconds{queue="default"}', a.oldest_job_age_s // 2, m + 5)],
        {"severity": "critical"},
    )

    # The ledger holds an old queued job that Redis does not show waiting (lost, or re-enqueued after a
    # restore): fires; a young one stays silent, and so does one OldestQueuedJobTooOld already covers.
    m = _minutes_after(300, 0)
    ledger_age = "schedgen_oldest_queued_job_seconds"
    redis_age = 'schedgen_queue_oldest_waiting_seconds{queue="default"}'
    restored = 3 * 86400  # uploaded three days before a restore

    def ages(ledger_s: int, redis_s: int) -> list[dict[str, str]]:
        return [
            _steady(f'{ledger_age}{{instance="api-1"}}', ledger_s, m + 5),
            _steady(f'{ledger_age}{{instance="api-2"}}', ledger_s // 2, m + 5),
            _steady(redis_age, redis_s, m + 5),
        ]

    both(
        "QueuedJobNotWaitingInRedis",
        m,
        ages(restored, 0),
        ages(a.oldest_job_age_s // 2, 0),
        {"severity": "critical"},
    )
    tests.append(
        _case(
            "QueuedJobNotWaitingInRedis stays silent while OldestQueuedJobTooOld fires",
            "QueuedJobNotWaitingInRedis",
            m,
            ages(restored, a.oldest_job_age_s + 1),
            False,
            {"severity": "critical"},
            dict(notes["QueuedJobNotWaitingInRedis"]),
        )
    )
    # The edge: exactly at the threshold stays silent, one second past it fires.
    for age, fires in ((a.oldest_job_age_s, False), (a.oldest_job_age_s + 1, True)):
        tests.append(
            _case(
                f"QueuedJobNotWaitingInRedis {'fires' if fires else 'stays silent'} at {age}s",
                "QueuedJobNotWaitingInRedis",
                m,
                [ages(age, 0)[0], ages(age, 0)[2]],
                fires,
                {"severity": "critical"},
                dict(notes["QueuedJobNotWaitingInRedis"]),
            )
        )

    m = _minutes_after(seconds(a.job_failure_for), 900)
    jobs = ('schedgen_jobs_total{status="failed"}', 'schedgen_jobs_total{status="completed"}')
    both("JobFailureRatioHigh", m, *_shares(*jobs, 100, a.job_failure_ratio, m + 5), {"severity": "warning"})

    m = _minutes_after(seconds(a.no_workers_for), 0)
    both(
        "NoWorkers",
        m,
        [_steady('schedgen_workers_live{instance="w1"}', 0, m + 5)],
        [_steady('schedgen_workers_live{instance="w1"}', 2, m + 5)],
        {"severity": "critical"},
    )

    m = _minutes_after(seconds(a.parse_slow_for), 900)
    metric = "schedgen_parse_duration_seconds"
    both("SlowParses", m, *_histograms(metric, a.parse_p95_s, m + 5), {"severity": "warning"})

    m = _minutes_after(300, 0)
    limit = config.max_connections()
    busy = int(limit * a.postgres_connections_ratio) + 1
    calm = int(limit * a.postgres_connections_ratio / 2)
    both(
        "PostgresConnectionsHigh",
        m,
        [
            _steady('pg_stat_activity_count{datname="schedgen", state="active"}', busy, m + 5),
            _steady("pg_settings_max_connections", limit, m + 5),
        ],
        [
            _steady('pg_stat_activity_count{datname="schedgen", state="active"}', calm, m + 5),
            _steady("pg_settings_max_connections", limit, m + 5),
        ],
        {"severity": "warning"},
    )

    m = _minutes_after(300, 0)
    maxmem = config.redis.maxmemory_mb * 1024 * 1024
    both(
        "RedisMemoryHigh",
        m,
        [
            _steady("redis_memory_used_bytes", int(maxmem * (a.redis_memory_ratio + 0.05)), m + 5),
            _steady("redis_memory_max_bytes", maxmem, m + 5),
        ],
        [
            _steady("redis_memory_used_bytes", int(maxmem * a.redis_memory_ratio / 2), m + 5),
            _steady("redis_memory_max_bytes", maxmem, m + 5),
        ],
        {"severity": "critical"},
    )

    # Backup: evaluated past the maximum age, 5-minute steps. The api exports the ledger's newest backup
    # time from every replica; the healthy series (two replicas) tracks time(), the stale one stopped at 0.
    steps = (a.backup_max_age_h * 3600 + 1800) // 300
    last = "schedgen_backup_last_success_timestamp_seconds"
    both(
        "BackupTooOld",
        steps * 5,
        [{"series": f'{last}{{instance="api-1"}}', "values": f"0x{steps + 2}"}],
        [
            {"series": f'{last}{{instance="api-1"}}', "values": f"0+300x{steps + 2}"},
            {"series": f'{last}{{instance="api-2"}}', "values": f"0+300x{steps + 2}"},
        ],
        {"severity": "critical"},
        interval="5m",
    )
    # Never backed up: the ledger is readable but holds no backup, so the series is absent.
    tests.append(
        _case(
            "BackupTooOld fires when no backup was ever recorded",
            "BackupTooOld",
            60,
            [{"series": 'schedgen_backup_ledger_up{instance="api-1"}', "values": "1x20"}],
            True,
            {"severity": "critical"},
            dict(notes["BackupTooOld"]),
            interval="5m",
        )
    )

    return {"rule_files": ["../rules/schedgen.yml"], "evaluation_interval": "1m", "tests": tests}
