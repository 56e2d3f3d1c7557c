"""The job ledger: the jobs table's state machine (queued -> processing -> completed | failed).

Every transition is a conditional UPDATE, so a stale attempt (one the reconciler already gave up on, or a
duplicate delivery) cannot overwrite a newer state. A worker holds the job's advisory lock
(`job_lock_key`) on its connection while it processes the job: a job that is ``processing`` while nobody
holds its lock belongs to a worker that died, which is how the reconciler and the next delivery detect a
SIGKILLed attempt.

Retention: a job expires only once it finished (``completed`` or ``failed``), counted from then
(`complete` and `fail` set ``expires_at``). An unfinished job has no expiry, so an accepted upload that
waits out a worker outage or comes back with an old backup is processed, never purged.

The reconciler reads the ledger in keyset pages (`queued_page`, `processing_page`, `expired`), so one
pass over a large backlog never loads every row at once and each page is an index range scan.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
STATUSES = ("queued", "processing", "completed", "failed")
PRIORITIES = ("high", "default", "low")
T = TypeVar("T")


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
    expires_at: dt.datetime | None  # set when the job finishes; None while queued or processing

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
) -> Job:
    """Insert a queued job (committed before it is enqueued); it has no expiry until it finishes."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO jobs (id, status, priority, client_id, filename, size_bytes, pages, sha256,"
            " storage_key, max_attempts)"
            " VALUES (%s, 'queued', %s, %s, %s, %s, %s, %s, %s, %s)"
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
            ),
        )
        row = cur.fetchone()
    assert row is not None
    return Job.from_row(row)


GET_JOB_SQL = "SELECT * FROM jobs WHERE id = %s"  # also run on the api's async status pool


def get_job(conn: psycopg.Connection, job_id: str) -> Job | None:
    """The job, or None when unknown or expired-and-purged."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(GET_JOB_SQL, (job_id,))
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
            "UPDATE jobs SET " + _CLAIM_SET + " WHERE id = %s AND " + _CLAIMABLE + " RETURNING *", (job_id,)
        )
        row = cur.fetchone()
    return Job.from_row(row) if row else None


_CLAIM_SET = "status = 'processing', attempts = attempts + 1, started_at = now(), updated_at = now()"
_CLAIMABLE = "status IN ('queued', 'processing') AND attempts < max_attempts"


def lock_and_claim(conn: psycopg.Connection, job_id: str) -> tuple[bool, Job | None]:
    """`try_lock` then `claim` in one statement (one round trip instead of two): (locked, job).

    The lock is taken first (a materialized CTE, evaluated once before the UPDATE reads it), and the row
    is claimed only when it was: ``(False, None)`` means another session holds the job, ``(True, None)``
    that it is held here now but was not claimable (as `claim`). The lock stays held as with `try_lock`.

    When the statement fails the lock may have been taken before the UPDATE failed (a session lock
    survives the statement's rollback), so it is released before the error goes up: no lock outlives a
    failed claim on a pooled connection, as with `try_lock`, `claim` and the caller's unlock before.
    """
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "WITH taken AS MATERIALIZED (SELECT pg_try_advisory_lock(%s) AS locked),"
                " claimed AS (UPDATE jobs SET "
                + _CLAIM_SET
                + " WHERE id = %s AND "
                + _CLAIMABLE
                + " AND (SELECT locked FROM taken) RETURNING jobs.*)"
                " SELECT taken.locked AS lock_taken, claimed.* FROM taken LEFT JOIN claimed ON true",
                (job_lock_key(job_id), job_id),
            )
            row = cur.fetchone()
    except psycopg.Error:
        if not conn.closed:
            with contextlib.suppress(psycopg.Error):
                unlock(conn, job_id)  # not held: Postgres answers false (and a warning), nothing else
        raise
    assert row is not None
    return bool(row["lock_taken"]), Job.from_row(row) if row["id"] is not None else None


def complete(
    conn: psycopg.Connection,
    job_id: str,
    attempt: int,
    kind: str,
    timetable: dict[str, Any] | str,
    ttl_s: int,
) -> bool:
    """Store the result and mark the job completed, only if ``attempt`` is still the current one.

    One statement, so one round trip and its own transaction: the result row is inserted from the
    UPDATE's RETURNING, so it exists exactly when the conditional update matched. ``timetable`` is the
    result as a dict or already as JSON text (`BaseModel.model_dump_json`, no second encoding here).
    """
    payload = timetable if isinstance(timetable, str) else Jsonb(timetable)
    cur = conn.execute(
        "WITH done AS (UPDATE jobs SET status = 'completed', kind = %s, finished_at = now(),"
        " updated_at = now(), error_code = NULL, error_message = NULL,"
        " expires_at = now() + make_interval(secs => %s)"
        " WHERE id = %s AND status = 'processing' AND attempts = %s RETURNING id)"
        " INSERT INTO results (job_id, kind, timetable) SELECT id, %s, %s::jsonb FROM done",
        (kind, ttl_s, job_id, attempt, kind, payload),
    )
    return cur.rowcount == 1


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


def mark_bytes_deleted(conn: psycopg.Connection, job_id: str, *, unlock: bool = False) -> None:
    """Record that the upload's bytes are gone; with ``unlock`` also release the job's advisory lock
    held by ``conn`` in the same statement (the end of a successful attempt: one round trip, not two)."""
    if not unlock:
        conn.execute("UPDATE jobs SET bytes_deleted = true WHERE id = %s", (job_id,))
        return
    conn.execute(
        "WITH gone AS (UPDATE jobs SET bytes_deleted = true WHERE id = %s) SELECT pg_advisory_unlock(%s)",
        (job_id, job_lock_key(job_id)),
    )


def result(conn: psycopg.Connection, job_id: str) -> tuple[str, dict[str, Any]] | None:
    """(kind, timetable) of a completed job."""
    row = conn.execute("SELECT kind, timetable FROM results WHERE job_id = %s", (job_id,)).fetchone()
    return (row[0], row[1]) if row else None


#: Where a keyset page ended: (its sort timestamp as Postgres prints it, id) of the page's last row. Text
#: round-trips exactly and costs no timestamp parsing (pure-Python psycopg pays ~10 us per timestamp).
Cursor = tuple[str, str]


class QueuedRef(NamedTuple):
    """What the reconciler needs of a queued job (a page holds thousands: no full rows)."""

    id: str
    priority: str
    cursor_at: str  # created_at as text, for the keyset cursor


@dataclass(frozen=True)
class Page(Generic[T]):
    """One keyset page; ``after`` is where the next one starts (None: this was the last page)."""

    rows: list[T]
    after: Cursor | None


def _keyset(after: Cursor | None, column: str) -> tuple[str, list[Any]]:
    if after is None:
        return "", []
    return f" AND (jobs.{column}, jobs.id) > (%s::timestamptz, %s)", list(after)


def _next(rows: list[Any], limit: int, cursor_at: str | None, last_id: str | None) -> Cursor | None:
    if len(rows) < limit or cursor_at is None or last_id is None:
        return None
    return (cursor_at, last_id)


def queued_page(
    conn: psycopg.Connection, changed_before: dt.datetime, after: Cursor | None, limit: int
) -> Page[QueuedRef]:
    """One keyset page of queued jobs last changed before ``changed_before``, oldest first.

    Ordered by (created_at, id) and resumed after ``after``: rows that change while a pass pages
    through neither repeat nor shift later pages, unlike OFFSET; each page is a range scan of
    ``jobs_status_created_idx``.
    """
    after_sql, params = _keyset(after, "created_at")
    rows = conn.execute(
        "SELECT id, priority, created_at::text AS cursor_at FROM jobs"
        " WHERE status = 'queued' AND updated_at < %s"
        + after_sql
        + " ORDER BY jobs.created_at, jobs.id LIMIT %s",
        (changed_before, *params, limit),
    ).fetchall()
    refs = list(map(QueuedRef._make, rows))
    last = refs[-1] if refs else None
    return Page(refs, _next(refs, limit, last.cursor_at if last else None, last.id if last else None))


def processing_page(
    conn: psycopg.Connection, changed_before: dt.datetime, after: Cursor | None, limit: int
) -> Page[Job]:
    """One keyset page (as `queued_page`) of processing jobs, as full rows."""
    after_sql, params = _keyset(after, "created_at")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT *, created_at::text AS cursor_at FROM jobs WHERE status = 'processing'"
            " AND updated_at < %s" + after_sql + " ORDER BY jobs.created_at, jobs.id LIMIT %s",
            (changed_before, *params, limit),
        )
        rows = cur.fetchall()
    last = rows[-1] if rows else {}
    return Page(
        [Job.from_row(row) for row in rows], _next(rows, limit, last.get("cursor_at"), last.get("id"))
    )


def still_queued(conn: psycopg.Connection, job_ids: list[str]) -> set[str]:
    """Those of ``job_ids`` that are queued right now (a worker may have claimed some since a page)."""
    rows = conn.execute("SELECT id FROM jobs WHERE id = ANY(%s) AND status = 'queued'", (job_ids,)).fetchall()
    return {row[0] for row in rows}


def db_now(conn: psycopg.Connection) -> dt.datetime:
    """The database's clock (``updated_at`` is written with it, so cut-offs must use it too)."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    moment: dt.datetime = row[0]
    return moment


def expired(conn: psycopg.Connection, limit: int = 1000, after: Cursor | None = None) -> Page[Job]:
    """Finished jobs past their retention, oldest expiry first (keyset-paged after ``after``).

    Only ``completed`` and ``failed`` jobs ever expire: a queued or processing job is never returned,
    whatever its ``expires_at`` says (rows restored from before migration 0004 may carry one).
    """
    after_sql, params = _keyset(after, "expires_at")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT *, expires_at::text AS cursor_at FROM jobs"
            " WHERE status IN ('completed', 'failed') AND expires_at < now()"
            + after_sql
            + " ORDER BY jobs.expires_at, jobs.id LIMIT %s",
            (*params, limit),
        )
        rows = cur.fetchall()
    last = rows[-1] if rows else {}
    return Page(
        [Job.from_row(row) for row in rows], _next(rows, limit, last.get("cursor_at"), last.get("id"))
    )


def delete_finished(conn: psycopg.Connection, job_ids: list[str]) -> int:
    """Remove these jobs (and their results) if they are finished; returns how many went."""
    cur = conn.execute(
        "DELETE FROM jobs WHERE id = ANY(%s) AND status IN ('completed', 'failed')", (job_ids,)
    )
    return cur.rowcount


def status_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Number of jobs per status."""
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
        counts[status] = int(count)
    return counts


def oldest_queued_age_s(conn: psycopg.Connection) -> float:
    """Age in seconds of the oldest queued job (0 when none); read at every scrape.

    Cheap at any backlog: the first entry of ``jobs_status_created_idx`` (an index-only lookup).
    """
    row = conn.execute(
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM jobs WHERE status = 'queued'"
    ).fetchone()
    return float(row[0]) if row else 0.0


# --- calendar subscriptions (migration 0005): capability token -> jobs + choices ----------------------


@dataclass(frozen=True)
class Subscription:
    """A stored subscription: the jobs it merges (in upload order) and the student's choices."""

    job_ids: list[str]
    choices: dict[str, Any]
    created_at: dt.datetime
    expires_at: dt.datetime


def insert_subscription(
    conn: psycopg.Connection, token_hash: str, job_ids: list[str], choices: dict[str, Any]
) -> dt.datetime | None:
    """Store a subscription over completed jobs; it expires with the last of their results.

    Returns its expiry, or None when a job is unknown, not completed or already past its retention
    (nothing is stored then). Expired subscriptions are deleted here too (no purge loop of their own).
    """
    with conn.transaction():
        conn.execute("DELETE FROM subscriptions WHERE expires_at < now()")
        row = conn.execute(
            "SELECT count(*), max(expires_at) FROM jobs WHERE id = ANY(%s) AND status = 'completed'"
            " AND expires_at > now()",
            (job_ids,),
        ).fetchone()
        if row is None or row[0] != len(set(job_ids)) or row[1] is None:
            return None
        conn.execute(
            "INSERT INTO subscriptions (token_hash, job_ids, choices, expires_at) VALUES (%s, %s, %s, %s)",
            (token_hash, job_ids, Jsonb(choices), row[1]),
        )
    expires: dt.datetime = row[1]
    return expires


def get_subscription(conn: psycopg.Connection, token_hash: str) -> Subscription | None:
    """The live subscription with this token hash (None when unknown or expired)."""
    row = conn.execute(
        "SELECT job_ids, choices, created_at, expires_at FROM subscriptions"
        " WHERE token_hash = %s AND expires_at > now()",
        (token_hash,),
    ).fetchone()
    return Subscription(list(row[0]), dict(row[1]), row[2], row[3]) if row else None


def results_of(conn: psycopg.Connection, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Timetables of those of ``job_ids`` that completed and are still kept, by job id."""
    rows = conn.execute(
        "SELECT r.job_id, r.timetable FROM results r JOIN jobs j ON j.id = r.job_id"
        " WHERE r.job_id = ANY(%s) AND j.status = 'completed'",
        (job_ids,),
    ).fetchall()
    return {row[0]: row[1] for row in rows}
