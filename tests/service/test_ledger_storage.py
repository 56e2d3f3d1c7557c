"""Ledger (migrations, state machine, job locks), storage backends and client identity, on real servers."""

from __future__ import annotations

import threading
import time
from ipaddress import ip_network
from pathlib import Path

import psycopg
import pytest
from reconcilekit import migrate_to

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.dataservices import free_port
from schedgen_ops.service import db, ledger
from schedgen_ops.service.clients import client_ip, create_key, list_keys, lookup_key, revoke_key
from schedgen_ops.service.settings import ServiceSettings
from schedgen_ops.service.storage import FileStorage, S3Storage, StorageError, open_storage


def _insert(conn: psycopg.Connection, job_id: str, max_attempts: int = 3) -> ledger.Job:
    return ledger.insert_job(
        conn,
        job_id=job_id,
        priority="default",
        client_id="ip:127.0.0.1",
        filename="t.pdf",
        size_bytes=10,
        pages=1,
        sha256="0" * 64,
        storage_key=job_id,
        max_attempts=max_attempts,
    )


def test_concurrent_migrations_apply_each_version_once(database_url: str) -> None:
    results: list[list[db.Migration]] = []
    threads = [threading.Thread(target=lambda: results.append(db.migrate(database_url))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    applied = [m.version for batch in results for m in batch]
    assert sorted(applied) == [m.version for m in db.migrations()]
    assert db.current_version(database_url) == db.migrations()[-1].version
    assert db.migrate(database_url) == []


def test_state_machine_and_dead_worker_detection(database_url: str) -> None:
    db.migrate(database_url)
    job_id = ledger.new_job_id()
    assert ledger.JOB_ID_RE.match(job_id)
    with db.connect(database_url) as conn, db.connect(database_url) as other:
        job = _insert(conn, job_id, max_attempts=2)
        assert job.status == "queued" and job.attempts == 0
        # Worker 1 takes the lock and claims; a second delivery cannot take the lock.
        assert ledger.try_lock(conn, job_id)
        first = ledger.claim(conn, job_id)
        assert first is not None and first.status == "processing" and first.attempts == 1
        assert not ledger.try_lock(other, job_id)
    # Worker 1's connection is gone (as after SIGKILL): its lock is free, so the job can be taken over.
    _wait_for_the_closed_session(database_url, job_id)
    with db.connect(database_url) as conn:
        assert ledger.try_lock(conn, job_id)
        second = ledger.claim(conn, job_id)
        assert second is not None and second.attempts == 2
        # A stale attempt cannot complete; the current one can, exactly once.
        assert not ledger.complete(conn, job_id, 1, "exams", {"kind": "exams"}, 60)
        assert ledger.complete(conn, job_id, 2, "exams", {"kind": "exams"}, 60)
        assert not ledger.complete(conn, job_id, 2, "exams", {"kind": "exams"}, 60)
        assert ledger.claim(conn, job_id) is None  # finished jobs are never claimed again
        assert ledger.result(conn, job_id) == ("exams", {"kind": "exams"})
        assert ledger.status_counts(conn)["completed"] == 1


def test_attempts_are_capped(database_url: str) -> None:
    db.migrate(database_url)
    job_id = ledger.new_job_id()
    with db.connect(database_url) as conn:
        _insert(conn, job_id, max_attempts=1)
        assert ledger.claim(conn, job_id) is not None
        assert ledger.requeue(conn, job_id, 1, "x", "y")
        assert ledger.claim(conn, job_id) is None
        assert ledger.fail(conn, job_id, None, "worker_lost", "gone", 60, from_status=("queued",))
        job = ledger.get_job(conn, job_id)
        assert job is not None and job.status == "failed" and job.error_code == "worker_lost"


def _lock_held_elsewhere(database_url: str, job_id: str) -> bool:
    """Whether some session holds the job's advisory lock (a fresh session cannot take it)."""
    with db.connect(database_url) as probe:
        if ledger.try_lock(probe, job_id):
            ledger.unlock(probe, job_id)
            return False
        return True


def _wait_for_the_closed_session(database_url: str, job_id: str) -> None:
    """The server frees a closed session's advisory locks when its backend exits, which happens after
    the client's close returns: wait for that (5 s at most) instead of racing it."""
    deadline = time.monotonic() + 5
    while _lock_held_elsewhere(database_url, job_id):
        assert time.monotonic() < deadline, "a closed session's advisory lock was never released"
        time.sleep(0.05)


def test_lock_and_claim_is_one_statement_that_refuses_a_double_claim(database_url: str) -> None:
    db.migrate(database_url)
    job_id = ledger.new_job_id()
    with db.connect(database_url) as conn, db.connect(database_url) as other:
        _insert(conn, job_id, max_attempts=2)
        locked, job = ledger.lock_and_claim(conn, job_id)
        assert locked and job is not None and job.status == "processing" and job.attempts == 1
        # A second delivery on another session: not locked, nothing claimed, attempts unchanged.
        assert ledger.lock_and_claim(other, job_id) == (False, None)
        row = ledger.get_job(other, job_id)
        assert row is not None and row.attempts == 1 and row.status == "processing"
        assert _lock_held_elsewhere(database_url, job_id)
    # The holder's connection is gone (as after SIGKILL): the next delivery takes lock and attempt 2.
    _wait_for_the_closed_session(database_url, job_id)
    with db.connect(database_url) as conn:
        locked, job = ledger.lock_and_claim(conn, job_id)
        assert locked and job is not None and job.attempts == 2
        # Out of attempts: locked here, but nothing to claim (the caller finishes or skips the job).
        ledger.unlock(conn, job_id)
        locked, job = ledger.lock_and_claim(conn, job_id)
        assert locked and job is None
        ledger.unlock(conn, job_id)
        assert not _lock_held_elsewhere(database_url, job_id)
        # Unknown job: the lock is taken (and must be released by the caller), nothing claimed.
        unknown = ledger.new_job_id()
        assert ledger.lock_and_claim(conn, unknown) == (True, None)
        ledger.unlock(conn, unknown)


def test_lock_and_claim_races_claim_one_job_once(database_url: str) -> None:
    db.migrate(database_url)
    job_id = ledger.new_job_id()
    with db.connect(database_url) as conn:
        _insert(conn, job_id, max_attempts=3)
    barrier = threading.Barrier(6)
    outcomes: list[tuple[bool, bool]] = []
    connections = [db.connect(database_url) for _ in range(6)]

    def deliver(conn: psycopg.Connection) -> None:
        barrier.wait()
        locked, job = ledger.lock_and_claim(conn, job_id)
        outcomes.append((locked, job is not None))

    try:
        threads = [threading.Thread(target=deliver, args=(c,)) for c in connections]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == [(False, False)] * 5 + [(True, True)]
        job = ledger.get_job(connections[0], job_id)
        assert job is not None and job.attempts == 1
    finally:
        for conn in connections:
            conn.close()


def test_a_failed_lock_and_claim_leaves_no_lock_held(database_url: str) -> None:
    """The lock is taken before the UPDATE runs; when the UPDATE then fails (here: the row is locked by
    another transaction and lock_timeout expires), the session lock must not stay behind."""
    db.migrate(database_url)
    job_id = ledger.new_job_id()
    with db.connect(database_url) as conn:
        _insert(conn, job_id)
    with psycopg.connect(database_url) as blocker, db.connect(database_url) as conn:
        blocker.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job_id,))  # open transaction
        conn.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            ledger.lock_and_claim(conn, job_id)
        assert not _lock_held_elsewhere(database_url, job_id)
        blocker.rollback()
        conn.execute("SET lock_timeout = 0")
        locked, job = ledger.lock_and_claim(conn, job_id)
        assert locked and job is not None and job.attempts == 1


def test_complete_is_one_statement_and_releases_the_lock_with_the_bytes(database_url: str) -> None:
    db.migrate(database_url)
    job_id = ledger.new_job_id()
    with db.connect(database_url) as conn:
        _insert(conn, job_id)
        locked, job = ledger.lock_and_claim(conn, job_id)
        assert locked and job is not None
        text = '{"kind": "exams", "events": [{"title": "Ä"}]}'
        # A stale attempt stores nothing (no result row without the matching update), the current one once.
        assert not ledger.complete(conn, job_id, 7, "exams", text, 60)
        assert ledger.result(conn, job_id) is None
        assert ledger.complete(conn, job_id, 1, "exams", text, 60)
        assert not ledger.complete(conn, job_id, 1, "exams", text, 60)
        assert ledger.result(conn, job_id) == ("exams", {"kind": "exams", "events": [{"title": "Ä"}]})
        assert _lock_held_elsewhere(database_url, job_id)
        ledger.mark_bytes_deleted(conn, job_id, unlock=True)
        assert not _lock_held_elsewhere(database_url, job_id)
        done = ledger.get_job(conn, job_id)
        assert done is not None and done.status == "completed" and done.bytes_deleted
        assert done.expires_at is not None


def _backdate(conn: psycopg.Connection, job_id: str, sql_interval: str) -> None:
    """Move every timestamp of a job (and its expiry) back by ``sql_interval``, as time passing would."""
    conn.execute(
        "UPDATE jobs SET created_at = created_at - %s::interval, updated_at = updated_at - %s::interval,"
        " started_at = started_at - %s::interval, finished_at = finished_at - %s::interval,"
        " expires_at = expires_at - %s::interval WHERE id = %s",
        (*[sql_interval] * 5, job_id),
    )


def test_only_finished_jobs_expire_counted_from_when_they_finished(database_url: str) -> None:
    db.migrate(database_url)
    ids = {name: ledger.new_job_id() for name in ("queued", "processing", "completed", "failed", "recent")}
    with db.connect(database_url) as conn:
        for job_id in ids.values():
            assert _insert(conn, job_id).expires_at is None  # no expiry while unfinished
            _backdate(conn, job_id, "3 days")  # all uploaded 3 days ago
        for name in ("processing", "completed", "failed", "recent"):
            assert ledger.try_lock(conn, ids[name]) and ledger.claim(conn, ids[name]) is not None
        assert ledger.complete(conn, ids["completed"], 1, "exams", {"kind": "exams"}, 3600)
        assert ledger.fail(conn, ids["failed"], 1, "corrupt_pdf", "bad", 3600)
        assert ledger.complete(conn, ids["recent"], 1, "exams", {"kind": "exams"}, 3600)
        recent = ledger.get_job(conn, ids["recent"])
        assert recent is not None and recent.finished_at is not None and recent.expires_at is not None
        # The retention runs from the finish, not from the upload 3 days ago.
        assert (recent.expires_at - recent.finished_at).total_seconds() == 3600
        assert ledger.expired(conn).rows == []
        for name in ("completed", "failed"):
            _backdate(conn, ids[name], "2 hours")  # finished 2 hours ago, 1 hour retention
        # Even an expiry in the past on unfinished rows (as written before migration 0004) never counts.
        conn.execute(
            "UPDATE jobs SET expires_at = now() - interval '1 day' WHERE id = ANY(%s)",
            ([ids["queued"], ids["processing"]],),
        )
        page = ledger.expired(conn)
        assert sorted(job.id for job in page.rows) == sorted([ids["completed"], ids["failed"]])
        assert page.after is None
        assert ledger.delete_finished(conn, [ids["completed"], ids["queued"]]) == 1  # never a queued one
        assert ledger.result(conn, ids["completed"]) is None
        assert ledger.get_job(conn, ids["queued"]) is not None
        with pytest.raises(psycopg.errors.CheckViolation):  # a finished job always expires some day
            conn.execute("UPDATE jobs SET expires_at = NULL WHERE id = %s", (ids["failed"],))


def test_expired_pages_by_expiry_then_id(database_url: str) -> None:
    """Keyset paging over 7 finished jobs with one expiry, pages of 3: each once, in order."""
    db.migrate(database_url)
    with db.connect(database_url) as conn:
        ids = sorted(ledger.new_job_id() for _ in range(7))
        for job_id in ids:
            _insert(conn, job_id)
        conn.execute(
            "UPDATE jobs SET status = 'failed', finished_at = now(), expires_at = now() - interval '1 hour'"
        )
        seen, after = [], None
        while True:
            page = ledger.expired(conn, 3, after)
            seen.extend(job.id for job in page.rows)
            if page.after is None:
                break
            after = page.after
    assert seen == ids


def test_migration_0004_clears_the_insert_time_expiry_of_unfinished_jobs(database_url: str) -> None:
    """A database at version 3 (or restored from a backup of one) keeps its waiting jobs after migrating."""
    migrate_to(database_url, 3)
    with db.connect(database_url) as conn:
        # As the version-3 api wrote them: expiry = upload + RESULT_TTL + FAILED_TTL, long past here.
        for job_id, status in (("a" * 32, "queued"), ("b" * 32, "processing"), ("c" * 32, "completed")):
            conn.execute(
                "INSERT INTO jobs (id, status, client_id, size_bytes, sha256, storage_key, max_attempts,"
                " created_at, updated_at, finished_at, expires_at) VALUES (%s, %s, 'c', 1, 'x', %s, 3,"
                " now() - interval '3 days', now() - interval '3 days', now() - interval '3 days',"
                " now() - interval '1 day')",
                (job_id, status, job_id),
            )
    assert [m.version for m in db.migrate(database_url)] == [m.version for m in db.migrations()][3:]
    with db.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT status, expires_at IS NULL FROM jobs").fetchall())
        assert rows == {"queued": True, "processing": True, "completed": False}
        assert [job.id for job in ledger.expired(conn).rows] == ["c" * 32]


def test_unreachable_database_is_a_one_line_error() -> None:
    with pytest.raises(SchedgenError) as info:
        db.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/x", timeout_s=1)
    assert info.value.code == "database_unavailable"
    assert "\n" not in info.value.one_line()


def test_api_keys_are_stored_hashed_and_revocable(database_url: str) -> None:
    db.migrate(database_url)
    with db.connect(database_url) as conn:
        key_id, key = create_key(conn, "partner")
        stored = conn.execute("SELECT key_hash FROM api_keys").fetchone()
        assert stored is not None and key not in stored[0]
        assert lookup_key(conn, key) == key_id
        assert lookup_key(conn, key + "x") is None
        assert [k.name for k in list_keys(conn)] == ["partner"]
        assert revoke_key(conn, key_id) and not revoke_key(conn, key_id)
        assert lookup_key(conn, key) is None


def test_client_ip_believes_forwarded_for_only_from_trusted_proxies() -> None:
    trusted = [ip_network("10.0.0.0/8")]
    assert client_ip("203.0.113.5", "1.2.3.4", trusted) == "203.0.113.5"  # spoofed, untrusted peer
    assert client_ip("10.0.0.2", "1.2.3.4", trusted) == "1.2.3.4"
    assert client_ip("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.9", trusted) == "1.2.3.4"  # nearest untrusted hop
    assert client_ip("10.0.0.2", "not-an-ip", trusted) == "10.0.0.2"
    assert client_ip("10.0.0.2", None, trusted) == "10.0.0.2"


def test_file_storage_round_trip(tmp_path: Path) -> None:
    store = FileStorage(tmp_path / "uploads")
    store.put("abc", b"%PDF-1")
    assert store.exists("abc") and store.get("abc") == b"%PDF-1"
    store.check()
    store.delete("abc")
    assert not store.exists("abc")
    with pytest.raises(KeyError):
        store.get("abc")
    with pytest.raises(ValueError):
        store.put("../etc", b"x")
    with pytest.raises(StorageError):
        FileStorage(tmp_path / "missing").check()


def test_s3_storage_against_an_s3_protocol_server(s3_endpoint: str, s3_bucket_name: str) -> None:
    bucket = s3_bucket_name
    settings = ServiceSettings(  # type: ignore[call-arg]
        storage_url=f"s3://{bucket}/incoming",
        s3_endpoint_url=s3_endpoint,
        s3_access_key="test",
        s3_secret_key="test",
    )
    store = open_storage(settings, timeout_s=5)
    assert isinstance(store, S3Storage)
    with pytest.raises(StorageError, match="not reachable"):
        store.check()  # bucket not created yet
    store.client.create_bucket(Bucket=bucket)
    store.check()
    store.put("job1", b"%PDF-1.7 data")
    listed = store.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [obj["Key"] for obj in listed] == ["incoming/job1.pdf"]
    assert store.get("job1") == b"%PDF-1.7 data"
    store.delete("job1")
    assert not store.exists("job1")
    with pytest.raises(KeyError):
        store.get("job1")


def test_storage_url_must_be_file_or_s3() -> None:
    with pytest.raises(SchedgenError, match="file:///dir or s3://"):
        open_storage(ServiceSettings(storage_url="ftp://x"))  # type: ignore[call-arg]
