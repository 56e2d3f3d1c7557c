"""backup: age and verification of the newest backup set, read from its manifest.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schedgen_ops.ops.health.model import CheckResult, Status
from schedgen_ops.ops.health.runner import ProbeContext
from schedgen_ops.ops.health.thresholds import Level

C = "backup"

#: manifest keys that may hold the backup's completion time, first match wins.
_TIME_KEYS = ("finished_at", "ended_at", "end_time", "completed_at", "end", "created_at", "started_at")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def newest_manifest(backup_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete backup set (``*.partial`` ignored) and its manifest."""
    if not backup_dir.is_dir():
        return None
    sets = sorted(
        (p for p in backup_dir.iterdir() if p.is_dir() and not p.name.endswith(".partial")),
        key=lambda p: p.name,
        reverse=True,
    )
    for path in sets:
        manifest = path / "manifest.json"
        if manifest.is_file():
            try:
                return path, json.loads(manifest.read_text())
            except (OSError, ValueError):
                return path, {"_unreadable": True}
    return None


def verification_of(manifest: dict[str, Any]) -> tuple[bool | None, str]:
    """(passed, description) from the manifest's verification record; None when never verified."""
    record = manifest.get("verification", manifest.get("verify"))
    if record is None:
        return None, "never verified"
    if isinstance(record, bool):
        return record, "passed" if record else "failed"
    if isinstance(record, dict):
        raw = record.get("ok", record.get("passed", record.get("result", record.get("status"))))
        when = record.get("verified_at", record.get("at", record.get("time", "")))
        passed = raw if isinstance(raw, bool) else (str(raw).lower() in ("ok", "passed", "pass", "verified"))
        level = record.get("level", record.get("tier", ""))
        text = ("passed" if passed else f"failed ({raw})") + (f" [{level}]" if level else "")
        return passed, text + (f" at {when}" if when else "")
    return None, f"unreadable verification record {record!r}"[:120]


def probe(ctx: ProbeContext) -> list[CheckResult]:
    th = ctx.thresholds
    backup_dir = ctx.endpoints.backup_dir
    if backup_dir is None:
        return [CheckResult(C, "age", Status.UNKNOWN, "no backup directory", hint="pass --backup-dir DIR")]
    found = newest_manifest(backup_dir)
    if found is None:
        return [
            CheckResult(
                C,
                "age",
                Status.UNKNOWN,
                f"no backup in {backup_dir}",
                threshold=None,
                hint="skipped: run `schedgen backup` (and schedule it) or pass --backup-dir DIR",
            )
        ]
    path, manifest = found
    if manifest.get("_unreadable"):
        return [
            CheckResult(
                C,
                "age",
                Status.CRITICAL,
                f"{path.name}: manifest.json unreadable",
                hint="the newest backup set is damaged: run `schedgen backup` and `backup verify`",
            )
        ]
    moment = next((t for t in (_parse_time(manifest.get(k)) for k in _TIME_KEYS) if t), None)
    if moment is None:
        moment = datetime.fromtimestamp((path / "manifest.json").stat().st_mtime, UTC)
    age = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    level = Level(th.backup_age_warn_s, th.backup_age_critical_s)
    status = level.judge(age)
    results = [
        CheckResult(
            C,
            "age",
            status,
            f"{age / 3600:.1f} h ({path.name})",
            value=round(age, 0),
            unit="s",
            threshold=level.describe("{:g} s"),
            hint=None
            if status is Status.OK
            else "the newest backup is too old: check the backup timer/CronJob log, run `schedgen backup`",
        )
    ]
    backup_status = str(manifest.get("status", "complete")).lower()
    passed, text = verification_of(manifest)
    if backup_status in ("failed", "error"):
        passed, text = False, f"backup status {backup_status}"
    verify_status = Status.OK if passed else (Status.WARN if passed is None else Status.CRITICAL)
    results.append(
        CheckResult(
            C,
            "verified",
            verify_status,
            f"{path.name}: {text}",
            value=passed,
            threshold="verification passed",
            hint=None
            if passed
            else (
                f"run `schedgen backup verify {path.name}`"
                if passed is None
                else f"the newest backup does not restore: do not rely on it; run `schedgen backup` then "
                f"`schedgen backup verify --deep` and investigate {path.name}"
            ),
        )
    )
    return results
