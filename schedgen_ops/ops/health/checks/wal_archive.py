"""backup.wal_archive: is Postgres archiving WAL (point-in-time recovery), and how far behind is it?

From pg_stat_archiver (readable by any role): archiving is failing when the last failure is newer than
the last success; it lags when a completed segment is still unarchived, and the lag is the age of the
last success. An idle server is not lagging: archive_timeout switches segments only after writes, so
its current segment is the one after the last archived. With archive_mode off it reports nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg

from schedgen_ops.ops.health.checks.postgres import connect, connect_failure
from schedgen_ops.ops.health.model import CheckResult, Status
from schedgen_ops.ops.health.runner import ProbeContext

C = "backup"
#: An unarchived completed segment older than this is critical: the recovery point is slipping (the alert
#: WalArchiveLagging uses the same 5 minutes).
LAG_CRITICAL_S = 300

ARCHIVER_SQL = """
SELECT current_setting('archive_mode'), archived_count, last_archived_wal, last_archived_time,
       failed_count, last_failed_wal, last_failed_time, clock_timestamp(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')
FROM pg_stat_archiver
"""


def _segment_number(name: str, segment_bytes: int) -> int:
    """Position of WAL file ``name`` (TTTTTTTTLLLLLLLLSSSSSSSS) in the WAL stream, ignoring the timeline."""
    per_log = 0x100000000 // segment_bytes
    return int(name[8:16], 16) * per_log + int(name[16:24], 16)


def judge(row: tuple[Any, ...]) -> list[CheckResult]:
    """The checks for one pg_stat_archiver row (pure: unit-tested with literal rows)."""
    mode, archived, last_wal, last_time, failed, failed_wal, failed_time, now, current, seg_bytes = row
    if mode == "off":
        return []  # point-in-time recovery is off: nothing to judge (the checklist asks for it in production)
    results = []
    failing = failed and failed_time is not None and (last_time is None or failed_time > last_time)
    if failing:
        since = f"{(now - failed_time).total_seconds():.0f} s ago"
        results.append(
            CheckResult(
                C,
                "wal_archive_failures",
                Status.CRITICAL,
                f"archive_command failing: {failed} failure(s), last {since} on {failed_wal}",
                value=int(failed),
                threshold="the last archive attempt succeeded",
                hint="WAL is not reaching the repository: read the pgBackRest log (.schedgen/pgbackrest/log) "
                "and Postgres' log; check the repository's disk, permissions or S3 credentials",
            )
        )
    else:
        results.append(
            CheckResult(
                C,
                "wal_archive_failures",
                Status.OK,
                f"{archived} archived, last {last_wal or 'none yet'}",
                value=int(failed or 0),
                threshold="the last archive attempt succeeded",
            )
        )
    pending = 0
    if current and last_wal and seg_bytes:
        pending = max(0, _segment_number(current, seg_bytes) - _segment_number(last_wal, seg_bytes) - 1)
    age = (now - last_time).total_seconds() if last_time is not None else None
    lagging = pending > 0 and (age is None or age > LAG_CRITICAL_S)
    measured = (
        f"{pending} completed segment(s) unarchived, last archived {age:.0f} s ago"
        if age is not None
        else f"{pending} completed segment(s) unarchived, none archived yet"
    )
    results.append(
        CheckResult(
            C,
            "wal_archive_age",
            Status.CRITICAL if lagging else Status.OK,
            measured,
            value=round(age, 1) if age is not None else None,
            unit="s",
            threshold=f"no completed segment waits more than {LAG_CRITICAL_S} s",
            hint="archiving lags: a lost disk now costs more than archive_timeout of work; see the failures "
            "check and the pgBackRest log"
            if lagging
            else None,
        )
    )
    return results


def probe(ctx: ProbeContext) -> list[CheckResult]:
    url = ctx.endpoints.database_url
    if not url:
        return [CheckResult(C, "wal_archive", Status.UNKNOWN, "no database URL")]
    try:
        with connect(url, ctx) as conn:
            row = conn.execute(ARCHIVER_SQL).fetchone()
    except psycopg.Error as exc:
        measured, hint = connect_failure(exc, url, ctx.thresholds.check_budget_s)
        return [CheckResult(C, "wal_archive", Status.UNKNOWN, measured, hint=hint)]
    assert row is not None
    return judge(tuple(row))
