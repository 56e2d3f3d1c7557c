"""Retention with a backlog, and a restored old backup with queued jobs, on real Postgres, Redis, storage.

Issue 13 item 3: an accepted upload that waits longer than the retention (a worker outage, a restore of a
backup older than 48 h) must be processed, never purged; only finished jobs expire, from their finish.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from reconcilekit import migrate_to, seed_jobs, service_context
from stackkit import service_env

from schedgen_ops.service import db, ledger, reconciler
from schedgen_ops.service.reconciler import reconcile_once
from schedgen_ops.service.storage import FileStorage


def test_retention_with_a_backlog_purges_only_finished_jobs(
    database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 uploads waited out a 3-day worker outage (and Redis lost them) beside 10 long-finished jobs."""
    monkeypatch.setattr(reconciler, "PURGE_PAGE", 4)  # several purge pages
    db.migrate(database_url)
    uploads = tmp_path / "uploads"
    store = FileStorage(uploads)
    with psycopg.connect(database_url, autocommit=True) as conn:
        waiting = seed_jobs(conn, 300, tag="backlog", age="3 days")
        dead = seed_jobs(conn, 1, tag="dead", status="processing", age="3 days", attempts=1)
        expired = seed_jobs(conn, 5, tag="done", status="completed", age="2 days")
        expired += seed_jobs(conn, 5, tag="bad", status="failed", age="2 days")
        fresh = seed_jobs(conn, 3, tag="fresh", status="completed", age="1 hour")
    for job_id in waiting + dead + expired[:2]:
        store.put(job_id, b"%PDF-1.4 bytes of " + job_id.encode())
    with service_context(database_url, redis_url, uploads) as ctx:
        report = reconcile_once(ctx)
        assert sorted(report.requeued) == sorted(waiting) and report.recovered == dead
        assert report.purged == 10 and report.failed == []
        again = reconcile_once(ctx)
    assert (again.requeued, again.recovered, again.purged) == ([], [], 0)
    assert all(store.exists(job_id) for job_id in waiting + dead)  # waiting bytes are kept
    assert not any(store.exists(job_id) for job_id in expired)
    with psycopg.connect(database_url) as conn:
        left: dict[str, str] = dict(conn.execute("SELECT id, status FROM jobs").fetchall())
    assert set(left) == set(waiting + dead + fresh)
    assert {left[j] for j in waiting + dead} == {"queued"}


def test_purge_limits_per_pass_and_storage_failures(
    database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler, "PURGE_PER_PASS", 4)
    monkeypatch.setattr(reconciler, "PURGE_PAGE", 3)
    monkeypatch.setattr(reconciler, "PURGE_MAX_STORAGE_ERRORS", 2)
    db.migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_jobs(conn, 6, tag="old", status="completed", age="2 days")
    uploads = tmp_path / "uploads"
    with service_context(database_url, redis_url, uploads) as ctx:
        assert reconcile_once(ctx).purged == 4  # the per-pass limit
        uploads.rmdir()
        uploads.write_text("not a directory")  # every delete now fails with a real OSError
        assert reconcile_once(ctx).purged == 0
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (2,)  # kept for a later pass
        uploads.unlink()
        uploads.mkdir()
        assert reconcile_once(ctx).purged == 2


def test_restored_old_backup_keeps_and_processes_its_queued_jobs(
    database_url: str, redis_url: str, tmp_path: Path, synthetic_pdfs: dict[str, bytes]
) -> None:
    """A backup taken by the version-3 service, restored 3 days later; Redis holds none of its queue.

    The service starts (migrates), its reconciler re-enqueues the waiting jobs and recovers the one a
    worker was busy with when the backup was taken; a worker then completes them all.
    """
    migrate_to(database_url, 3)
    env = service_env(database_url, redis_url, tmp_path, SCHEDGEN_JOB_RETRY_BACKOFF_S="0")
    store = FileStorage(tmp_path / "uploads")
    kinds = ["lectures", "tests", "exams", "exams"]
    ids = [ledger.new_job_id() for _ in kinds]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for job_id, kind, status in zip(
            ids, kinds, ("queued", "queued", "queued", "processing"), strict=True
        ):
            store.put(job_id, synthetic_pdfs[kind])
            # As the version-3 api wrote them: expiry = upload + 48 h, long past at restore time.
            conn.execute(
                "INSERT INTO jobs (id, status, client_id, size_bytes, sha256, storage_key, attempts,"
                " max_attempts, created_at, updated_at, started_at, expires_at) VALUES (%s, %s, 'ip:1', 1,"
                " 'x', %s, %s, 3, now() - interval '3 days', now() - interval '3 days',"
                " now() - interval '3 days', now() - interval '1 day')",
                (job_id, status, job_id, 1 if status == "processing" else 0),
            )
    assert db.migrate(database_url)  # what the api and workers do when they start
    with service_context(database_url, redis_url, tmp_path / "uploads") as ctx:
        ctx.redis.flushdb()
        report = reconcile_once(ctx)
        assert sorted(report.requeued) == sorted(ids[:3]) and report.recovered == [ids[3]]
        assert report.purged == 0
    burst = subprocess.run(
        [sys.executable, "-m", "schedgen_ops.service.worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert burst.returncode == 0, burst.stderr[-2000:]
    with db.connect(database_url) as conn:
        for job_id, kind in zip(ids, kinds, strict=True):
            job = ledger.get_job(conn, job_id)
            assert job is not None and job.status == "completed", (job_id, job)
            assert job.kind == kind and job.expires_at is not None and job.finished_at is not None
            assert (job.expires_at - job.finished_at).total_seconds() == 24 * 3600  # from the finish
            assert ledger.result(conn, job_id) is not None
    assert not any(store.exists(job_id) for job_id in ids)  # bytes go once processed
