"""Write side of the backup ledger: record complete (and verified) sets in Postgres for /metrics.

Recording goes through `Target.psql`, like every other SQL the backup tools run, so it works over
``docker compose exec`` and ``kubectl exec`` as locally. A recording problem never fails the backup
itself (the set on disk is what matters); it is returned as a warning to print.

A restore replaces the table with the restored database's copy, which predates the set being restored
and the safety backup: `resync` re-records every complete set of the backup directory afterwards.
"""

from __future__ import annotations

from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import dbops
from schedgen_ops.ops.backup.catalog import list_backups
from schedgen_ops.ops.backup.manifest import Manifest
from schedgen_ops.ops.backup.targets import Target

HINT = "the api exports the backup age from it; run `schedgen db migrate` if the table is missing"


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def upsert_sql(manifests: list[Manifest]) -> str:
    """One statement recording each complete set; the verification fields only when it has one."""
    rows = []
    for m in manifests:
        v = m.verification
        rows.append(
            "("
            + ", ".join(
                [
                    _literal(m.id),
                    f"{_literal(m.finished_at or m.started_at)}::timestamptz",
                    _literal(m.target),
                    _literal(m.reason or ""),
                    f"{_literal(v.verified_at if v else None)}::timestamptz",
                    _literal(v.level if v else None),
                    _literal(v.status if v else None),
                ]
            )
            + ")"
        )
    return (
        "INSERT INTO backup_ledger (backup_id, finished_at, target, reason, verified_at, verify_level, "
        "verify_status) VALUES " + ", ".join(rows) + " ON CONFLICT (backup_id) DO UPDATE SET "
        "finished_at = EXCLUDED.finished_at, target = EXCLUDED.target, reason = EXCLUDED.reason, "
        "verified_at = coalesce(EXCLUDED.verified_at, backup_ledger.verified_at), "
        "verify_level = coalesce(EXCLUDED.verify_level, backup_ledger.verify_level), "
        "verify_status = coalesce(EXCLUDED.verify_status, backup_ledger.verify_status), "
        "recorded_at = now()"
    )


def record(target: Target, manifests: list[Manifest]) -> str | None:
    """Record ``manifests`` (complete sets); return a one-line warning instead of raising."""
    complete = [m for m in manifests if m.status == "complete"]
    if not complete:
        return None
    try:
        dbops.psql(target, upsert_sql(complete), what="recording the backup in backup_ledger")
    except SchedgenError as exc:
        return f"backup not recorded in backup_ledger ({HINT}): {exc.one_line()}"
    return None


def resync(target: Target, directory: Path) -> str | None:
    """Re-record every complete set in ``directory`` (after a restore replaced the table)."""
    manifests = [e.manifest for e in list_backups(directory) if e.state == "complete" and e.manifest]
    return record(target, manifests)
