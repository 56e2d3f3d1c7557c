"""backup: age and verification of the newest complete backup set, read through the backup catalog.

The manifest (ops/backup/manifest.py) is the contract: ``finished_at`` dates the set and ``verification``
holds the last `schedgen backup verify` result. A failed or unfinished newer run is reported too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schedgen_ops.ops.backup.catalog import BackupEntry, list_backups
from schedgen_ops.ops.health.model import CheckResult, Level, Status, judged, passed
from schedgen_ops.ops.health.runner import ProbeContext

C = "backup"


def _finished(entry: BackupEntry) -> datetime:
    manifest = entry.manifest
    stamp = (manifest.finished_at or manifest.started_at) if manifest else None
    if stamp:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.fromtimestamp(entry.path.stat().st_mtime, UTC)


def probe(ctx: ProbeContext) -> list[CheckResult]:
    th = ctx.thresholds
    backup_dir = ctx.endpoints.backup_dir
    if backup_dir is None:
        return [CheckResult(C, "age", Status.UNKNOWN, "no backup directory", hint="pass --backup-dir DIR")]
    try:
        entries = list_backups(backup_dir)
    except OSError as exc:
        return [
            CheckResult(
                C,
                "age",
                Status.UNKNOWN,
                f"{backup_dir}: {exc.strerror or exc}",
                hint="this user cannot read the backup directory: run as the backup owner",
            )
        ]
    complete = [e for e in entries if e.state == "complete"]
    if not complete:
        return [
            CheckResult(
                C,
                "age",
                Status.UNKNOWN,
                f"no complete backup in {backup_dir}",
                hint="skipped: run `schedgen backup` (and schedule it) or pass --backup-dir DIR",
            )
        ]
    newest = complete[-1]
    age = max(0.0, (datetime.now(UTC) - _finished(newest)).total_seconds())
    level = Level(th.backup_age_warn_s, th.backup_age_critical_s)
    results = [
        judged(
            C,
            "age",
            level,
            age,
            f"{age / 3600:.1f} h ({newest.id})",
            value=round(age),
            unit="s",
            hint="the newest backup is too old: check the backup timer/CronJob log, run `schedgen backup`",
        )
    ]
    results.append(_verified(newest))
    later = [e for e in entries if e.state in ("failed", "invalid") and e.id > newest.id]
    if later:
        last = later[-1]
        results.append(
            CheckResult(
                C,
                "last_run",
                Status.WARN,
                f"{last.id} {last.state}: {last.problem or 'no detail'}"[:200],
                value=last.state,
                threshold="complete",
                hint="the latest backup run did not complete: see `schedgen backup list` and the backup log",
            )
        )
    return results


def _verified(entry: BackupEntry) -> CheckResult:
    verification = entry.manifest.verification if entry.manifest else None
    if verification is None:
        return CheckResult(
            C,
            "verified",
            Status.WARN,
            f"{entry.id}: never verified",
            value=None,
            threshold="verification passed",
            hint=f"an unverified backup is a hope: run `schedgen backup verify {entry.id}`",
        )
    ok = verification.status == "passed"
    return passed(
        C,
        "verified",
        ok,
        f"{entry.id}: {verification.level} verification {verification.status} at {verification.verified_at}",
        value=ok,
        threshold="verification passed",
        hint=f"the newest backup does not restore: do not rely on it; run `schedgen backup` then "
        f"`schedgen backup verify --deep` and investigate {entry.id}",
    )
