"""Read side of the backup ledger (migration 0002): the newest complete and verified backup times.

The write side is `schedgen_ops.ops.backup.ledger`, which records through the target's psql so it works
on every runtime; the api reads here at scrape time to export the backup age series.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

TABLE = "backup_ledger"


@dataclass(frozen=True)
class BackupTimes:
    """Unix times of the newest complete backup set and the newest one that passed verification."""

    last_success: float | None
    last_verified: float | None


def latest(conn: psycopg.Connection) -> BackupTimes:
    """One statement; ``None`` for a time nothing has recorded yet."""
    row = conn.execute(
        "SELECT extract(epoch FROM max(finished_at)), "
        "extract(epoch FROM max(verified_at) FILTER (WHERE verify_status = 'passed')) "
        f"FROM {TABLE}"
    ).fetchone()
    if row is None:
        return BackupTimes(None, None)
    return BackupTimes(
        float(row[0]) if row[0] is not None else None, float(row[1]) if row[1] is not None else None
    )
