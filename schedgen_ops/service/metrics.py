"""Prometheus metrics, correct with several processes (prometheus_client multiprocess mode).

Every api and worker process writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` (set from
``SCHEDGEN_METRICS_DIR`` by `metrics_dir.prepare` before prometheus_client is imported); each
``/metrics`` endpoint aggregates the whole directory. Queue and ledger gauges are read at scrape time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from schedgen_ops.service.metrics_dir import ENV

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PARSE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

HTTP_REQUESTS = Counter(
    "schedgen_http_requests_total",
    "HTTP requests by route and status (all statuses).",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "schedgen_http_request_duration_seconds",
    "HTTP request latency by route.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
UPLOADS = Counter(
    "schedgen_uploads_total", "Uploads by outcome (accepted or the rejection code).", ["outcome"]
)
JOBS = Counter(
    "schedgen_jobs_total", "Job attempts finished, by resulting status and kind.", ["status", "kind"]
)
PARSE_DURATION = Histogram(
    "schedgen_parse_duration_seconds", "Time to parse one PDF, by kind.", ["kind"], buckets=_PARSE_BUCKETS
)
DB_POOL = Gauge(
    "schedgen_db_pool_connections",
    "Database pool connections by state, summed over live processes.",
    ["state"],
    multiprocess_mode="livesum",
)
WORKER_PROCESSES = Gauge(
    "schedgen_worker_processes", "Worker processes alive (this replica).", multiprocess_mode="livesum"
)

# prometheus_client's ProcessCollector does nothing in multiprocess mode, so each process publishes its
# own RSS. 'liveall' keeps one series per live pid (label ``pid``) and drops a process's file when it is
# marked dead (`process_exited`), so restarted workers never leave stale series behind.
PROCESS_MEMORY = Gauge(
    "schedgen_process_resident_memory_bytes",
    "Resident memory (RSS) of each live api and worker process, by role and pid.",
    ["role"],
    multiprocess_mode="liveall",
)
MEMORY_INTERVAL_S = 5.0
_SELF: psutil.Process | None = None


def update_process_memory(role: str) -> None:
    """Set this process's RSS gauge (cheap: one read of /proc)."""
    global _SELF
    if _SELF is None or _SELF.pid != os.getpid():  # a forked child must not report its parent
        _SELF = psutil.Process()
    PROCESS_MEMORY.labels(role).set(_SELF.memory_info().rss)


def start_memory_updates(role: str, interval_s: float = MEMORY_INTERVAL_S) -> threading.Event:
    """Refresh this process's RSS gauge now, then every ``interval_s`` until the returned event is set.

    A thread, not a job hook: a worker busy with one long parse still reports, and so does an idle one.
    """
    stop = threading.Event()
    update_process_memory(role)

    def _run() -> None:
        while not stop.wait(interval_s):
            update_process_memory(role)

    threading.Thread(target=_run, name=f"{role}-memory-gauge", daemon=True).start()
    return stop


def update_pool_gauges(*pools: Any) -> None:
    """Copy the stats of this process's psycopg_pool pools (sync and async; None skipped), summed, into the
    pool gauges (in-use, idle, waiting): an api process has its sync pool and its status pool."""
    size = idle = waiting = 0
    for pool in pools:
        if pool is None:
            continue
        stats = pool.get_stats()
        size += stats.get("pool_size", 0)
        idle += stats.get("pool_available", 0)
        waiting += stats.get("requests_waiting", 0)
    DB_POOL.labels("in_use").set(max(0, size - idle))
    DB_POOL.labels("idle").set(idle)
    DB_POOL.labels("waiting").set(waiting)


class ScrapeCollector:
    """Gauges computed when Prometheus scrapes: queue depth, oldest waiting age, workers, jobs by status."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            data = self.read()
        except Exception:
            up = GaugeMetricFamily("schedgen_queue_stats_up", "1 when queue stats could be read.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("schedgen_queue_stats_up", "1 when queue stats could be read.")
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("schedgen_queue_depth", "Jobs waiting per queue.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "schedgen_queue_oldest_waiting_seconds",
            "Age of the oldest waiting job per queue.",
            labels=["queue"],
        )
        for name, queue in data["queue"]["queues"].items():
            depth.add_metric([name], queue["waiting"])
            oldest.add_metric([name], queue["oldest_waiting_age_s"])
        yield depth
        yield oldest
        workers = GaugeMetricFamily("schedgen_workers_live", "RQ workers with a live heartbeat.")
        workers.add_metric([], len(data["queue"]["workers"]))
        yield workers
        if "jobs" in data:
            jobs = GaugeMetricFamily(
                "schedgen_ledger_jobs", "Jobs in the ledger by status.", labels=["status"]
            )
            for status, count in data["jobs"].items():
                jobs.add_metric([status], count)
            yield jobs
            age = GaugeMetricFamily(
                "schedgen_oldest_queued_job_seconds", "Age of the oldest job the ledger holds as queued."
            )
            age.add_metric([], data.get("oldest_queued_s", 0.0))
            yield age


class BackupCollector:
    """Backup age from the Postgres backup ledger, read at scrape time (the api's /metrics).

    A series is exported only once a backup (or a passed verification) has been recorded, so the
    BackupTooOld alert's absent() fires on a deployment that has never been backed up.
    """

    def __init__(self, read: Callable[[], Any]) -> None:
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("schedgen_backup_ledger_up", "1 when the backup ledger could be read.")
        try:
            times = self.read()
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, documentation, value in (
            (
                "schedgen_backup_last_success_timestamp_seconds",
                "Unix time the newest complete backup set finished (backup ledger).",
                times.last_success,
            ),
            (
                "schedgen_backup_last_verified_timestamp_seconds",
                "Unix time of the newest passed backup verification (backup ledger).",
                times.last_verified,
            ),
        ):
            if value is not None:
                gauge = GaugeMetricFamily(name, documentation)
                gauge.add_metric([], value)
                yield gauge


def render(*extra: ScrapeCollector | BackupCollector) -> tuple[bytes, str]:
    """The exposition text of every process sharing the multiprocess dir (plus ``extra`` gauges)."""
    registry = CollectorRegistry()
    if os.environ.get(ENV):
        MultiProcessCollector(registry)
    else:  # single process (tests in-process): the default registry holds our metrics
        from prometheus_client import REGISTRY

        registry = REGISTRY
    if extra:
        registry = _with_extra(registry, extra)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _with_extra(
    registry: CollectorRegistry, extra: tuple[ScrapeCollector | BackupCollector, ...]
) -> CollectorRegistry:
    combined = CollectorRegistry()

    class _Both:
        def collect(self) -> Iterable[Any]:
            yield from registry.collect()
            for collector in extra:
                yield from collector.collect()

    combined.register(_Both())
    return combined


def process_exited(pid: int) -> None:
    """Drop a dead process's live gauges from the multiprocess dir."""
    if os.environ.get(ENV):
        mark_process_dead(pid)
