"""Checks against real servers with injected faults: each fault gives its status and a hint."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from rq import Queue, Worker

from schedgen_ops.ops.health import Endpoints, HealthReport, HealthThresholds, Status, Verdict, run_health
from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, service_tempdir


def _by_id(report: HealthReport) -> dict[str, object]:
    return {c.id: c for c in report.checks}


def _status(report: HealthReport, check_id: str) -> Status:
    checks = {c.id: c for c in report.checks}
    assert check_id in checks, f"{check_id} missing from {sorted(checks)}"
    return checks[check_id].status


def test_api_live_and_ready(http_api, empty_endpoints: Endpoints, thresholds: HealthThresholds) -> None:
    empty_endpoints.api_url = http_api.url
    report = run_health(empty_endpoints, thresholds, only=["api"])
    assert {c.id: c.status for c in report.checks} == {
        "api.liveness": Status.OK,
        "api.latency": Status.OK,
        "api.readiness": Status.OK,
    }
    http_api.state.ready = False
    http_api.state.detail = {"postgres": {"ok": False, "latency_ms": 2000, "detail": "no answer within 2s"}}
    report = run_health(empty_endpoints, thresholds, only=["api"])
    readiness = next(c for c in report.checks if c.id == "api.readiness")
    assert readiness.status is Status.CRITICAL
    assert "postgres: no answer within 2s" in readiness.measured  # the per-dependency detail survives a 503
    assert readiness.hint
    assert report.exit_code == 2


def test_healthy_stack_exits_0(
    http_api,
    database_url: str,
    queue_redis: RedisServer,
    tmp_path: Path,
    thresholds: HealthThresholds,
    write_backup,
) -> None:
    from schedgen_ops.service.db import migrate

    migrate(database_url)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    backups = tmp_path / "backups"
    write_backup(backups, datetime.now(UTC) - timedelta(hours=2), verified=True)
    conn = redis.Redis.from_url(queue_redis.url)
    worker = Worker(["high", "default", "low"], connection=conn, name="health-test-worker")
    worker.register_birth()  # a registered worker with a fresh heartbeat, as a running `rq worker` leaves
    try:
        endpoints = Endpoints(
            api_url=http_api.url,
            database_url=database_url,
            redis_url=queue_redis.url,
            storage_url=f"file://{uploads}",
            data_dir=tmp_path,
            backup_dir=backups,
        )
        report = run_health(endpoints, thresholds)
    finally:
        worker.register_death()
        conn.close()
    bad = [(c.id, c.status.value, c.measured) for c in report.checks if c.status is not Status.OK]
    assert bad == []
    assert report.verdict is Verdict.HEALTHY and report.exit_code == 0
    ids = {c.id for c in report.checks}
    assert {
        "postgres.connections",
        "postgres.longest_transaction",
        "redis.eviction_policy",
        "redis.aof_last_write",
        "queue.backlog",
        "queue.oldest_waiting",
        "queue.workers",
        "queue.heartbeat",
        "queue.failed_ratio",
        "queue.processing_overdue",
        "storage.reachable",
        "disk.data",
        "disk.backups",
        "backup.age",
        "backup.verified",
    } <= ids
    assert "postgres.replication_lag" not in ids  # no replicas: no lag check


def test_redis_stopped_is_critical_with_hint(
    queue_redis: RedisServer, empty_endpoints: Endpoints, thresholds: HealthThresholds
) -> None:
    empty_endpoints.redis_url = queue_redis.url
    assert _status(run_health(empty_endpoints, thresholds, only=["redis"]), "redis.reachable") is Status.OK
    queue_redis.stop()
    report = run_health(empty_endpoints, thresholds, only=["redis", "queue"])
    check = next(c for c in report.checks if c.id == "redis.reachable")
    assert check.status is Status.CRITICAL
    assert "down or unreachable" in (check.hint or "")
    assert _status(report, "queue.backlog") is Status.CRITICAL
    assert report.exit_code == 2


def test_eviction_policy_other_than_noeviction_is_critical(
    queue_redis: RedisServer, empty_endpoints: Endpoints, thresholds: HealthThresholds
) -> None:
    empty_endpoints.redis_url = queue_redis.url
    report = run_health(empty_endpoints, thresholds, only=["redis"])
    assert _status(report, "redis.eviction_policy") is Status.OK
    conn = redis.Redis.from_url(queue_redis.url)
    conn.config_set("maxmemory-policy", "allkeys-lru")
    conn.close()
    report = run_health(empty_endpoints, thresholds, only=["redis"])
    check = next(c for c in report.checks if c.id == "redis.eviction_policy")
    assert check.status is Status.CRITICAL and check.value == "allkeys-lru"
    assert "noeviction" in (check.hint or "")


def test_redis_memory_and_aof(queue_redis: RedisServer, empty_endpoints: Endpoints) -> None:
    empty_endpoints.redis_url = queue_redis.url
    conn = redis.Redis.from_url(queue_redis.url)
    used = int(conn.info("memory")["used_memory"])
    conn.config_set("maxmemory", str(int(used / 0.9)))  # ~90% used: above the 80% critical level
    conn.config_set("appendonly", "no")
    conn.close()
    report = run_health(empty_endpoints, HealthThresholds(), only=["redis"])
    assert _status(report, "redis.memory") is Status.CRITICAL
    assert _status(report, "redis.aof_enabled") is Status.WARN


def test_backlog_without_workers_warns_then_goes_critical_on_age(
    queue_redis: RedisServer, empty_endpoints: Endpoints
) -> None:
    empty_endpoints.redis_url = queue_redis.url
    th = HealthThresholds(queue_depth_warn=5, queue_depth_critical=50)
    conn = redis.Redis.from_url(queue_redis.url)
    queue = Queue("default", connection=conn)
    jobs = [queue.enqueue("os.getpid") for _ in range(8)]
    report = run_health(empty_endpoints, th, only=["queue"])
    backlog = next(c for c in report.checks if c.id == "queue.backlog")
    assert backlog.status is Status.WARN and backlog.value == 8
    assert _status(report, "queue.oldest_waiting") is Status.OK
    assert _status(report, "queue.workers") is Status.CRITICAL  # nobody consumes the queue
    # The jobs keep waiting: make the oldest one as old as a stuck queue's would be.
    old = datetime.now(UTC) - timedelta(seconds=th.queue_oldest_job_critical_s + 30)
    conn.hset(jobs[0].key, "enqueued_at", old.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    report = run_health(empty_endpoints, th, only=["queue"])
    oldest = next(c for c in report.checks if c.id == "queue.oldest_waiting")
    assert oldest.status is Status.CRITICAL and float(oldest.value or 0) >= th.queue_oldest_job_critical_s
    assert oldest.hint
    conn.close()


def test_worker_heartbeat_age(queue_redis: RedisServer, empty_endpoints: Endpoints) -> None:
    empty_endpoints.redis_url = queue_redis.url
    conn = redis.Redis.from_url(queue_redis.url)
    worker = Worker(["default"], connection=conn, name="stale-worker")
    worker.register_birth()
    stale = datetime.now(UTC) - timedelta(seconds=700)
    conn.hset(worker.key, "last_heartbeat", stale.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    report = run_health(empty_endpoints, HealthThresholds(), only=["queue"])
    assert _status(report, "queue.workers") is Status.OK
    assert _status(report, "queue.heartbeat") is Status.CRITICAL
    worker.register_death()
    conn.close()


@pytest.fixture
def small_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own with only 10 connection slots (and none reserved)."""
    base = service_tempdir("schedgen-health-pg-")
    server = PostgresServer.start(
        base / "data",
        settings={"fsync": "off", "max_connections": "10", "superuser_reserved_connections": "0"},
    )
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_connections_warn_then_exhausted_is_critical(
    small_postgres: PostgresServer, empty_endpoints: Endpoints, thresholds: HealthThresholds
) -> None:
    empty_endpoints.database_url = small_postgres.url
    held: list[psycopg.Connection] = []
    try:
        for _ in range(8):
            held.append(psycopg.connect(small_postgres.url))
        report = run_health(empty_endpoints, thresholds, only=["postgres"])
        connections = next(c for c in report.checks if c.id == "postgres.connections")
        assert connections.status is Status.WARN and connections.measured.startswith("8/10")
        while True:  # take every remaining slot
            try:
                held.append(psycopg.connect(small_postgres.url, connect_timeout=2))
            except psycopg.OperationalError:
                break
        assert len(held) == 10
        report = run_health(empty_endpoints, thresholds, only=["postgres"])
        reachable = next(c for c in report.checks if c.id == "postgres.reachable")
        assert reachable.status is Status.CRITICAL
        assert "exhausted" in reachable.measured and "max_connections" in (reachable.hint or "")
        assert report.exit_code == 2
    finally:
        for conn in held:
            conn.close()


def test_long_transaction_and_ledger_checks(database_url: str, empty_endpoints: Endpoints) -> None:
    from schedgen_ops.service.db import migrate

    migrate(database_url)
    empty_endpoints.database_url = database_url
    empty_endpoints.job_timeout_s = 300
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i in range(12):
            status = "failed" if i < 3 else "completed"
            conn.execute(
                """INSERT INTO jobs (id, status, client_id, size_bytes, sha256, storage_key, max_attempts,
                                     started_at, finished_at, expires_at)
                   VALUES (%s, %s, 'c', 1, 'x', 'k', 3, now() - interval '5 minutes', now(),
                           now() + interval '1 day')""",
                (f"job{i}", status),
            )
        conn.execute(
            """INSERT INTO jobs (id, status, client_id, size_bytes, sha256, storage_key, max_attempts,
                                 started_at, expires_at)
               VALUES ('stuck', 'processing', 'c', 1, 'x', 'k', 3, now() - interval '20 minutes',
                       now() + interval '1 day')"""
        )
    th = HealthThresholds(postgres_transaction_warn_s=0.5, postgres_transaction_critical_s=60)
    with psycopg.connect(database_url) as open_tx:
        open_tx.execute("SELECT 1")  # a transaction now open (psycopg is not autocommit by default)
        time.sleep(0.7)
        report = run_health(empty_endpoints, th, only=["postgres", "queue"])
    assert _status(report, "postgres.longest_transaction") is Status.WARN
    failed = next(c for c in report.checks if c.id == "queue.failed_ratio")
    assert failed.status is Status.CRITICAL and failed.value == 0.25  # 3 of 12 > 20%
    overdue = next(c for c in report.checks if c.id == "queue.processing_overdue")
    assert overdue.status is Status.WARN and overdue.value == 1


def test_postgres_latency_is_the_median_of_three_and_stops_at_critical(
    database_url: str, empty_endpoints: Endpoints
) -> None:
    empty_endpoints.database_url = database_url
    warn_only = HealthThresholds(postgres_latency_warn_s=1e-6, postgres_latency_critical_s=5)
    latency = _by_id(run_health(empty_endpoints, warn_only, only=["postgres"]))["postgres.latency"]
    assert latency.status is Status.WARN and latency.measured.endswith("(median of 3)"), latency.measured
    critical = HealthThresholds(postgres_latency_warn_s=1e-7, postgres_latency_critical_s=1e-6)
    latency = _by_id(run_health(empty_endpoints, critical, only=["postgres"]))["postgres.latency"]
    assert latency.status is Status.CRITICAL and latency.measured.endswith("(median of 1)"), latency.measured


def test_one_slow_round_trip_of_three_is_not_a_slow_database() -> None:
    from schedgen_ops.ops.health.checks.postgres import latency_samples

    delays = iter([0.15, 0.0, 0.0])  # the first sample lost the CPU for 150 ms
    samples = latency_samples(lambda: time.sleep(next(delays)), critical_ms=500)
    assert len(samples) == 3 and samples[0] >= 150 and statistics.median(samples) < 100, samples
    slow = latency_samples(lambda: time.sleep(0.06), critical_ms=50)
    assert len(slow) == 1  # already critical: Postgres is not asked again


def test_ledger_missing_is_unknown_with_hint(database_url: str, empty_endpoints: Endpoints) -> None:
    empty_endpoints.database_url = database_url
    report = run_health(empty_endpoints, HealthThresholds(), only=["queue"])
    check = next(c for c in report.checks if c.id == "queue.failed_ratio")
    assert check.status is Status.UNKNOWN and "db migrate" in (check.hint or "")


def test_backup_age_and_verification(empty_endpoints: Endpoints, write_backup) -> None:
    th = HealthThresholds()
    backups = empty_endpoints.backup_dir
    assert backups is not None
    report = run_health(empty_endpoints, th, only=["backup"])
    assert [(c.id, c.status) for c in report.checks] == [
        ("backup.age", Status.UNKNOWN),
        ("backup.wal_archive", Status.UNKNOWN),  # no database to read pg_stat_archiver from
    ]
    assert "schedgen backup" in (report.checks[0].hint or "")
    now = datetime.now(UTC)
    write_backup(backups, now - timedelta(hours=30), verified=True)
    report = run_health(empty_endpoints, th, only=["backup"])
    assert _status(report, "backup.age") is Status.CRITICAL  # older than the 26 h alert
    assert _status(report, "backup.verified") is Status.OK
    write_backup(backups, now - timedelta(hours=2), verified=None)
    report = run_health(empty_endpoints, th, only=["backup"])
    assert _status(report, "backup.age") is Status.OK
    assert _status(report, "backup.verified") is Status.WARN  # never verified
    write_backup(backups, now - timedelta(hours=1), verified=False)
    write_backup(
        backups, now - timedelta(minutes=30), verified=None, state_suffix=".partial", status="running"
    )
    report = run_health(empty_endpoints, th, only=["backup"])
    assert _status(report, "backup.verified") is Status.CRITICAL
    assert "backup.last_run" not in {c.id for c in report.checks}  # a running set is not a failure
    failed = write_backup(
        backups, now - timedelta(minutes=10), verified=None, state_suffix=".failed", status="failed"
    )
    report = run_health(empty_endpoints, th, only=["backup"])
    last = next(c for c in report.checks if c.id == "backup.last_run")
    assert last.status is Status.WARN and "connection refused" in last.measured
    assert "schedgen backup list" in (last.hint or "")
    # The newer failed set is never read as the latest backup: age and verification stay on the newest
    # complete set (the catalog's notion), 1 h old and failed verification.
    age = next(c for c in report.checks if c.id == "backup.age")
    complete_id = (now - timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    assert complete_id in age.measured and failed.name.removesuffix(".failed") not in age.measured
    assert age.status is Status.OK and 3500 <= float(age.value) <= 3700  # type: ignore[arg-type]
    assert _status(report, "backup.verified") is Status.CRITICAL


def test_storage_and_disk(tmp_path: Path, empty_endpoints: Endpoints) -> None:
    empty_endpoints.storage_url = f"file://{tmp_path / 'missing'}"
    report = run_health(empty_endpoints, HealthThresholds(), only=["storage", "disk"])
    assert _status(report, "storage.reachable") is Status.CRITICAL
    (tmp_path / "missing").mkdir()
    tight = HealthThresholds(disk_free_warn_ratio=0.999, disk_free_critical_ratio=0.0001)
    report = run_health(empty_endpoints, tight, only=["storage", "disk"])
    assert _status(report, "storage.reachable") is Status.OK
    assert list((tmp_path / "missing").iterdir()) == []  # the probe file is removed
    assert _status(report, "disk.data") is Status.WARN
    assert _status(report, "disk.backups") is Status.WARN  # not created yet: its filesystem is measured


def test_replication_lag_on_primary_and_replica(empty_endpoints: Endpoints) -> None:
    """A real streaming replica (pg_basebackup -R): lag shown on both ends; paused replay -> warn."""
    import subprocess

    from schedgen_ops.runtime.dataservices import _as_service_user

    base = service_tempdir("schedgen-health-repl-")
    primary = PostgresServer.start(base / "primary", settings={"fsync": "off"})
    replica: PostgresServer | None = None
    try:
        subprocess.run(
            _as_service_user(
                [
                    *(str(primary.bindir / "pg_basebackup"), "-h", primary.host, "-p", str(primary.port)),
                    *("-U", "postgres", "-D", str(base / "replica"), "-R", "-X", "stream", "--no-sync"),
                ]
            ),
            capture_output=True,
            check=True,
        )
        replica = PostgresServer.start(base / "replica", settings={"fsync": "off"})
        th = HealthThresholds(postgres_replication_lag_warn_s=0.5, postgres_replication_lag_critical_s=60)
        empty_endpoints.database_url = primary.url
        on_primary = next(
            c
            for c in run_health(empty_endpoints, th, only=["postgres"]).checks
            if c.name == "replication_lag"
        )
        assert on_primary.status is Status.OK and "1 replica" in on_primary.measured
        primary.execute("CREATE TABLE replayed (x int)")  # gives the replica a replayed commit time
        with psycopg.connect(replica.url, autocommit=True) as conn:
            deadline = time.monotonic() + 10
            while conn.execute("SELECT to_regclass('replayed')").fetchone() == (None,):
                assert time.monotonic() < deadline, "the replica never replayed the primary's commit"
                time.sleep(0.05)
            conn.execute("SELECT pg_wal_replay_pause()")
        primary.execute("CREATE TABLE written_after_pause (x int)")
        time.sleep(1.2)
        empty_endpoints.database_url = replica.url
        on_replica = next(
            c
            for c in run_health(empty_endpoints, th, only=["postgres"]).checks
            if c.name == "replication_lag"
        )
        assert on_replica.status is Status.WARN and float(on_replica.value or 0) >= 1.0
        assert "this replica" in on_replica.measured and on_replica.hint
    finally:
        if replica is not None:
            replica.stop(mode="immediate")
        primary.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)
