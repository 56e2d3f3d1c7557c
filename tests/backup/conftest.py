"""Fixtures for backup tests: the service's job ledger in a fresh database, a Redis whose replication
snapshot (redis-cli --rdb) starts at once, and helpers to capture a database row for row."""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from schedgen_ops.ops.backup.signing import KEY_ENV, SigningKey
from schedgen_ops.runtime.dataservices import RedisServer, service_tempdir
from schedgen_ops.service import db, ledger
from schedgen_ops.service.storage import FileStorage

#: The job data a restore must give back row for row (backup_ledger is re-recorded after a restore).
LEDGER_TABLES = ("public.api_keys", "public.jobs", "public.results", "public.schema_migrations")


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> SigningKey:
    """This test's project key, also in $SCHEDGEN_BACKUP_HMAC_KEY: CLI runs (whose project is the current
    directory unless --project says otherwise) sign with it and never write a secrets file there."""
    text = secrets.token_urlsafe(32)
    monkeypatch.setenv(KEY_ENV, text)
    return SigningKey.from_text(text, "the test")


@pytest.fixture(scope="module")
def snapshot_redis() -> Iterator[RedisServer]:
    """A redis-server with the rendered redis.conf's repl-diskless-sync-max-replicas 1: the snapshot of
    `redis-cli --rdb` starts at once instead of after repl-diskless-sync-delay (Redis default 5 s)."""
    base = service_tempdir("schedgen-test-bk-redis-")
    server = RedisServer.start(base / "data", appendonly="no", repl_diskless_sync_max_replicas="1")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def redis_url_fast(snapshot_redis: RedisServer) -> str:
    client = redis.Redis.from_url(snapshot_redis.url)
    try:
        client.flushall()
    finally:
        client.close()
    return snapshot_redis.url


@pytest.fixture
def ledger_url(database_url: str) -> str:
    """A fresh database with the service's schema (`schedgen db migrate`)."""
    db.migrate(database_url)
    return database_url


def create_jobs(url: str, count: int, *, completed: int = 0, storage: FileStorage | None = None) -> list[str]:
    """Create jobs the way the api does (ledger.insert_job) and complete some the way a worker does."""
    ids: list[str] = []
    with db.connect(url) as conn:
        for n in range(count):
            data = f"%PDF-1.4 upload {n}\n".encode()
            job_id = ledger.new_job_id()
            key = job_id
            ledger.insert_job(
                conn,
                job_id=job_id,
                priority=ledger.PRIORITIES[n % 3],
                client_id=f"client-{n % 7}",
                filename=f"timetable {n}.pdf",
                size_bytes=len(data),
                pages=1 + n % 4,
                sha256=hashlib.sha256(data).hexdigest(),
                storage_key=key,
                max_attempts=3,
            )
            ids.append(job_id)
            if n < completed:
                job = ledger.claim(conn, job_id)
                assert job is not None
                events = [{"module": f"COS {200 + n}", "title": "Lecture\nline two", "note": "tab\there"}]
                assert ledger.complete(conn, job_id, job.attempts, "lectures", {"events": events}, 86400)
            elif storage is not None:
                storage.put(key, data)
    return ids


def rows(url: str, tables: tuple[str, ...] = LEDGER_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: equality means row-for-row equal."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(url) as conn:
        for table in tables:
            out[table] = [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()]
    return out


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A project with schedgen.yaml, a rendered file and a secrets file (to prove it is left out)."""
    project = tmp_path / "project"
    (project / "deploy" / "compose").mkdir(parents=True)
    (project / ".schedgen").mkdir()
    (project / "schedgen.yaml").write_text("profile: small\n")
    (project / "deploy" / "compose" / "compose.yaml").write_text("services: {}\n")
    (project / "deploy" / "compose" / "stack.env").write_text("POSTGRES_PASSWORD=hunter2\n")
    (project / ".schedgen" / "secrets.env").write_text("POSTGRES_PASSWORD=hunter2\n")
    return project


@pytest.fixture
def make_jobs():
    """`create_jobs` as a fixture (test modules here are not a package)."""
    return create_jobs


@pytest.fixture
def capture_rows():
    """`rows` as a fixture."""
    return rows
