"""The job ledger: the jobs table's state machine (queued -> processing -> completed | failed).

Every transition is a conditional UPDATE, so a stale attempt (one the reconciler already gave up on, or a
duplicate delivery) cannot overwrite a newer state. A worker holds the job's advisory lock
(`job_lock_key`) on its connection while it processes the job: a job that is ``processing`` while nobody
holds its lock belongs to a worker that died, which is how the reconciler and the next delivery detect a
SIGKILLed attempt.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
STATUSES = ("queued", "processing", "completed", "failed")
PRIORITIES = ("high", "default", "low")


def new_job_id() -> str:
    """A 128-bit random, unguessable job id (32 hex characters)."""
    return secrets.token_hex(16)


def job_lock_key(job_id: str) -> int:
    """The signed 64-bit advisory-lock key of a job."""
    return int.from_bytes(bytes.fromhex(job_id[:16]), "big", signed=True)


@dataclass(frozen=True)
class Job:
    """One row of the jobs table."""

    id: str
    status: str
    kind: str | None
    priority: str
    client_id: str
    filename: str | None
    size_bytes: int
    pages: int | None
    sha256: str
    storage_key: str
    attempts: int
    max_attempts: int
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error_code: str | None
    error_message: str | None
    bytes_deleted: bool
    expires_at: dt.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def insert_job(
    conn: psycopg.Connection,
    *,
    job_id: str,
    priority: str,
    client_id: str,
    filename: str | None,
    size_bytes: int,
    pages: int | None,
    sha256: str,
    storage_key: str,
    max_attempts: int,
    ttl_s: int,
) -> Job:
    """Insert a queued job (committed before it is enqueued)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO jobs (id, status, priority, client_id, filename, size_bytes, pages, sha256,"
            " storage_key, max_attempts, expires_at)"
            " VALUES (%s, 'queued', %s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
            " RETURNING *",
            (
                job_id,
                priority,
                client_id,
                filename,
                size_bytes,
                pages,
                sha256,
                storage_key,
                max_attempts,
                ttl_s,
            ),
        )
        row = cur.fetchone()
    assert row is not None
    return Job.from_row(row)


def get_job(conn: psycopg.Connection, job_id: str) -> Job | None:
    """The job, or None when unknown or expired-and-purged."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM jobs WHERE id = %s", (job_id,))
        row = cur.fetchone()
    return Job.from_row(row) if row else None


def try_lock(conn: psycopg.Connection, job_id: str) -> bool:
    """Take the job's session advisory lock on ``conn`` without waiting."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (job_lock_key(job_id),)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection, job_id: str) -> None:
    """Release the job's advisory lock held by ``conn``."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (job_lock_key(job_id),))


def claim(conn: psycopg.Connection, job_id: str) -> Job | None:
    """Start an attempt; the caller must hold the job's lock on ``conn``.

    A ``processing`` job can be claimed only because its lock was free, i.e. its previous worker died.
    Returns None when the job is unknown, finished, or out of attempts.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE jobs SET status = 'processing', attempts = attempts + 1, started_at = now(),"
            " updated_at = now() WHERE id = %s AND status IN ('queued', 'processing')"
            " AND attempts < max_attempts RETURNING *",
            (job_id,),
        )
        row = cur.fetchone()
    return Job.from_row(row) if row else None


def complete(
    conn: psycopg.Connection, job_id: str, attempt: int, kind: str, timetable: dict[str, Any], ttl_s: int
) -> bool:
    """Store the result and mark the job completed, only if ``attempt`` is still the current one."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE jobs SET status = 'completed', kind = %s, finished_at = now(), updated_at = now(),"
            " error_code = NULL, error_message = NULL, expires_at = now() + make_interval(secs => %s)"
            " WHERE id = %s AND status = 'processing' AND attempts = %s",
            (kind, ttl_s, job_id, attempt),
        )
        if cur.rowcount != 1:
            return False
        conn.execute(
            "INSERT INTO results (job_id, kind, timetable) VALUES (%s, %s, %s)",
            (job_id, kind, Jsonb(timetable)),
        )
    return True


def requeue(conn: psycopg.Connection, job_id: str, attempt: int | None, code: str, message: str) -> bool:
    """Put a failed attempt back to ``queued`` for a retry (``attempt`` None: whatever attempt it was)."""
    cur = conn.execute(
        "UPDATE jobs SET status = 'queued', updated_at = now(), error_code = %s, error_message = %s"
        " WHERE id = %s AND status = 'processing' AND (%s::int IS NULL OR attempts = %s::int)",
        (code, message, job_id, attempt, attempt),
    )
    return cur.rowcount == 1


def fail(
    conn: psycopg.Connection,
    job_id: str,
    attempt: int | None,
    code: str,
    message: str,
    ttl_s: int,
    *,
    from_status: tuple[str, ...] = ("processing",),
) -> bool:
    """Mark the job finally failed (no more retries)."""
    cur = conn.execute(
        "UPDATE jobs SET status = 'failed', finished_at = now(), updated_at = now(), error_code = %s,"
        " error_message = %s, expires_at = now() + make_interval(secs => %s)"
        " WHERE id = %s AND status = ANY(%s) AND (%s::int IS NULL OR attempts = %s::int)",
        (code, message, ttl_s, job_id, list(from_status), attempt, attempt),
    )
    return cur.rowcount == 1


def mark_bytes_deleted(conn: psycopg.Connection, job_id: str) -> None:
    conn.execute("UPDATE jobs SET bytes_deleted = true WHERE id = %s", (job_id,))


def result(conn: psycopg.Connection, job_id: str) -> tuple[str, dict[str, Any]] | None:
    """(kind, timetable) of a completed job."""
    row = conn.execute("SELECT kind, timetable FROM results WHERE job_id = %s", (job_id,)).fetchone()
    return (row[0], row[1]) if row else None


def jobs_with_status(conn: psycopg.Connection, status: str, older_than_s: float) -> list[Job]:
    """Jobs in ``status`` whose last change is older than ``older_than_s`` seconds (reconciler input)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT * FROM jobs WHERE status = %s AND updated_at < now() - make_interval(secs => %s)"
            " ORDER BY created_at",
            (status, older_than_s),
        )
        return [Job.from_row(row) for row in cur.fetchall()]


def expired(conn: psycopg.Connection, limit: int = 1000) -> list[Job]:
    """Jobs past their retention (any status), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM jobs WHERE expires_at < now() ORDER BY expires_at LIMIT %s", (limit,))
        return [Job.from_row(row) for row in cur.fetchall()]


def delete_job(conn: psycopg.Connection, job_id: str) -> None:
    """Remove a job and (by cascade) its result."""
    conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))


def status_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Number of jobs per status."""
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
        counts[status] = int(count)
    return counts


def oldest_queued_age_s(conn: psycopg.Connection) -> float:
    """Age in seconds of the oldest queued job (0 when none)."""
    row = conn.execute(
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM jobs WHERE status = 'queued'"
    ).fetchone()
    return float(row[0]) if row else 0.0
