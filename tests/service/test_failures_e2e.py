"""Failure behaviour with real processes: SIGKILLed worker, Redis restart/flush, Postgres outage.

These tests stop or flush servers, so each starts its own Postgres and Redis instead of the session ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from rq import Worker
from stackkit import Stack, service_env

from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, free_port, service_tempdir


@dataclass
class OwnServers:
    pg: PostgresServer
    redis: RedisServer
    workdir: Path

    def stack(self, **extra: str) -> Stack:
        env = service_env(self.pg.url, self.redis.url, self.workdir, **extra)
        return Stack(env, self.workdir, free_port())


@pytest.fixture
def own(tmp_path: Path) -> Iterator[OwnServers]:
    base = service_tempdir("schedgen-failures-")
    pg = PostgresServer.start(base / "pg", settings={"fsync": "off", "synchronous_commit": "off"})
    rd = RedisServer.start(base / "redis", appendonly="yes")
    stacks: list[Stack] = []
    servers = OwnServers(pg, rd, tmp_path)
    original = servers.stack

    def tracked(**extra: str) -> Stack:
        stack = original(**extra)
        stacks.append(stack)
        return stack

    servers.stack = tracked  # type: ignore[method-assign]
    try:
        yield servers
    finally:
        for stack in stacks:
            stack.stop()
        rd.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkilled_worker_mid_job_is_retried_and_completes(
    own: OwnServers, synthetic_pdfs: dict[str, bytes]
) -> None:
    stack = own.stack(SCHEDGEN_TEST_SLOW_FIRST_ATTEMPT_S="60")
    stack.start_api()
    stack.start_worker(1)
    job = stack.upload(synthetic_pdfs["lectures"]).json()
    job_id = job["job_id"]
    _wait(lambda: stack.client.get(job["status_url"]).json()["status"] == "processing", 30, "processing")
    conn = redis.Redis.from_url(own.redis.url)
    busy = [w for w in Worker.all(connection=conn) if w.get_current_job_id() == job_id]
    assert len(busy) == 1
    os.kill(busy[0].pid, signal.SIGKILL)
    done = stack.wait_done(job_id, timeout=60)
    assert done["status"] == "completed", stack.logs()
    assert done["attempts"] == 2
    assert stack.client.get(job["events_url"]).status_code == 200
    assert list((stack.workdir / "uploads").glob("*.pdf")) == []
    conn.close()


def test_queued_jobs_survive_a_redis_restart_with_aof(
    own: OwnServers, synthetic_pdfs: dict[str, bytes]
) -> None:
    stack = own.stack()
    stack.start_api()
    ids = [stack.upload(synthetic_pdfs["exams"]).json()["job_id"] for _ in range(5)]
    own.redis.restart()
    # No reconciler: the jobs must come back from Redis' append-only file alone.
    stack.start_worker(1, "--no-reconcile")
    for job_id in ids:
        assert stack.wait_done(job_id, timeout=60)["status"] == "completed"
    # The api reconnects to the restarted Redis by itself.
    assert stack.upload(synthetic_pdfs["exams"]).status_code == 202


def test_reconciler_reenqueues_every_queued_job_after_redis_is_flushed(
    own: OwnServers, synthetic_pdfs: dict[str, bytes]
) -> None:
    stack = own.stack()
    stack.start_api()
    ids = {stack.upload(synthetic_pdfs["tests"]).json()["job_id"] for _ in range(5)}
    redis.Redis.from_url(own.redis.url).flushall()
    time.sleep(2.2)  # past the reconciler's grace period for freshly committed rows
    once = subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", "serve", "reconciler", "--once", "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert once.returncode == 0, once.stderr
    report = json.loads(once.stdout.strip().splitlines()[-1])
    assert set(report["requeued"]) == ids
    stack.start_worker(1, "--no-reconcile")
    for job_id in ids:
        done = stack.wait_done(job_id, timeout=60)
        assert done["status"] == "completed" and done["attempts"] == 1


def test_postgres_outage_gives_503_with_detail_and_recovers(
    own: OwnServers, synthetic_pdfs: dict[str, bytes]
) -> None:
    stack = own.stack(
        SCHEDGEN_DB_ACQUIRE_TIMEOUT_S="1", SCHEDGEN_READINESS_TIMEOUT_S="1", SCHEDGEN_RATE_UPLOADS="1000/hour"
    )
    stack.start_api()
    job = stack.upload(synthetic_pdfs["exams"]).json()
    own.pg.stop()
    ready = stack.client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert ready.json()["status"] == "not_ready"
    assert checks["postgres"]["ok"] is False and checks["postgres"]["detail"]
    assert checks["redis"]["ok"] is True and checks["storage"]["ok"] is True
    upload = stack.upload(synthetic_pdfs["exams"])
    assert upload.status_code == 503, upload.text
    assert upload.json()["error"]["code"] == "database_unavailable"
    assert stack.client.get(job["status_url"]).status_code == 503
    assert stack.client.get("/healthz").status_code == 200
    assert len(list((stack.workdir / "uploads").glob("*.pdf"))) == 1  # only the accepted job's bytes
    own.pg.restart()
    _wait(lambda: stack.client.get("/readyz").status_code == 200, 30, "readiness after restart")
    # Each api process's pools (the sync pool and the status pool) reconnect on their own schedules, each
    # bounded by POOL_RECONNECT_TIMEOUT_S: uploads and polls must work again within that bound, not
    # necessarily on the very first request (a CI run polled while the status pool was still backing off).
    _wait(lambda: stack.upload(synthetic_pdfs["exams"]).status_code == 202, 20, "uploads after restart")
    _wait(lambda: stack.client.get(job["status_url"]).status_code == 200, 20, "status polls after restart")
    assert stack.client.get(job["status_url"]).json()["status"] == "queued"
    with psycopg.connect(own.pg.url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (2,)


def test_redis_down_uploads_still_accepted_and_enqueued_by_the_reconciler(
    own: OwnServers, synthetic_pdfs: dict[str, bytes]
) -> None:
    stack = own.stack(SCHEDGEN_READINESS_TIMEOUT_S="1")
    stack.start_api()
    own.redis.stop()
    ready = stack.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False
    accepted = stack.upload(synthetic_pdfs["exams"])  # limiter fails open; the row is the record
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert stack.client.get(job["status_url"]).json()["status"] == "queued"
    own.redis.restart()
    stack.start_worker(1)  # its reconciler finds the job the ledger holds and Redis does not
    done = stack.wait_done(job["job_id"], timeout=60)
    assert done["status"] == "completed" and done["attempts"] == 1
