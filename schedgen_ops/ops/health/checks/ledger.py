"""queue (the Postgres job ledger): failed-job ratio over the last hour, jobs processing past the timeout,
the oldest job still queued.

The ledger is the system of record: it knows when jobs finished (RQ's registries only know expiries),
which ones are still marked processing after their worker should have given up, and which uploads are
still waiting even when Redis has lost them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pg_errors

from schedgen_ops.ops.health.checks.postgres import connect, connect_failure
from schedgen_ops.ops.health.model import UNIT_FORMATS, CheckResult, Level, Status, judged, outcome
from schedgen_ops.ops.health.runner import ProbeContext

C = "queue"

FAILED_RATIO_SQL = """
SELECT count(*) FILTER (WHERE status = 'failed'), count(*)
  FROM jobs
 WHERE status IN ('completed', 'failed') AND finished_at >= now() - interval '1 hour'
"""
OLDEST_QUEUED_SQL = """
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
  FROM jobs
 WHERE status = 'queued'
"""
OVERDUE_SQL = """
SELECT count(*), coalesce(max(extract(epoch FROM now() - started_at)), 0)
  FROM jobs
 WHERE status = 'processing' AND started_at < now() - make_interval(secs => %s)
"""


def probe(ctx: ProbeContext) -> list[CheckResult]:
    url = ctx.endpoints.database_url
    if not url:
        how = ctx.endpoints.notes.get("database_url", "--database-url or SCHEDGEN_DATABASE_URL")
        return [CheckResult(C, "failed_ratio", Status.UNKNOWN, "no database URL", hint=f"pass {how}")]
    try:
        conn = connect(url, ctx)
    except psycopg.Error as exc:
        measured, hint = connect_failure(exc, url, ctx.thresholds.check_budget_s)
        return [
            CheckResult(C, "failed_ratio", Status.UNKNOWN, f"ledger unreachable: {measured}"[:200], hint=hint)
        ]
    with conn:
        try:
            return [_failed_ratio(conn, ctx), _overdue(conn, ctx), _oldest_queued(conn, ctx)]
        except (pg_errors.UndefinedTable, pg_errors.UndefinedColumn) as exc:
            return [
                CheckResult(
                    C,
                    "failed_ratio",
                    Status.UNKNOWN,
                    f"no job ledger in this database ({str(exc).splitlines()[0]})"[:200],
                    hint="point --database-url at the service database, or run `schedgen db migrate`",
                )
            ]


def _failed_ratio(conn: psycopg.Connection[Any], ctx: ProbeContext) -> CheckResult:
    th = ctx.thresholds
    row = conn.execute(FAILED_RATIO_SQL).fetchone()
    failed, finished = (int(row[0]), int(row[1])) if row else (0, 0)
    level = Level(th.job_failure_ratio_warn, th.job_failure_ratio_critical)
    ratio = failed / finished if finished else 0.0
    if finished < th.job_failure_min_jobs:
        status = Status.OK
        measured = f"{failed}/{finished} failed in the last hour (too few jobs to judge)"
    else:
        status = level.judge(ratio)
        measured = f"{failed}/{finished} failed in the last hour ({ratio:.1%})"
    return outcome(
        C,
        "failed_ratio",
        status,
        measured,
        value=round(ratio, 4),
        unit="ratio",
        threshold=level.describe(UNIT_FORMATS["ratio"]) + f" (judged from {th.job_failure_min_jobs} jobs)",
        hint="many jobs fail: read the error codes (`schedgen logs pdf-worker`); a new release may parse "
        "badly (`schedgen rollback`)",
    )


def _count_and_seconds(
    conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] | None = None
) -> tuple[int, float]:
    """The (how many, how many seconds) row both job-age queries return; (0, 0.0) when there is none."""
    row = conn.execute(sql, params).fetchone()
    return (int(row[0]), float(row[1])) if row else (0, 0.0)


def _overdue(conn: psycopg.Connection[Any], ctx: ProbeContext) -> CheckResult:
    th = ctx.thresholds
    timeout = ctx.endpoints.job_timeout_s
    count, longest = _count_and_seconds(conn, OVERDUE_SQL, (timeout,))
    level = Level(th.overdue_jobs_warn, th.overdue_jobs_critical)
    return judged(
        C,
        "processing_overdue",
        level,
        count,
        f"{count} job(s) processing longer than {timeout} s"
        + (f" (longest {longest:.0f} s)" if count else ""),
        note=f" (job timeout {timeout} s)",
        value=count,
        unit="jobs",
        hint="jobs outlived the job timeout: their worker died or hangs; the reconciler should fail or "
        "retry them — check it runs (`schedgen logs pdf-worker`)",
    )


def _oldest_queued(conn: psycopg.Connection[Any], ctx: ProbeContext) -> CheckResult:
    """Age since upload of the oldest job still queued (QueuedJobNotWaitingInRedis measures this)."""
    th = ctx.thresholds
    count, oldest = _count_and_seconds(conn, OLDEST_QUEUED_SQL)
    level = Level(th.queue_oldest_job_warn_s, th.queue_oldest_job_critical_s)
    return judged(
        C,
        "oldest_queued",
        level,
        oldest,
        f"{count} job(s) queued, the oldest uploaded {oldest:.0f} s ago" if count else "no job queued",
        value=round(oldest, 1),
        unit="s",
        hint="an upload waits too long: if queue.oldest_waiting is fine, Redis does not hold it (lost, or a "
        "restored backup) and the reconciler must re-enqueue it - check it runs (`schedgen logs "
        "pdf-worker`, `schedgen serve reconciler --once`); else workers are down or too few. Waiting jobs "
        "are never purged",
    )
