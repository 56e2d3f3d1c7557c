"""`schedgen health` of a stack that was just restored, summed up for the restore report.

Lives in health, not backup: backup's catalog is read by health's backup probe, so the restore must
not reach back into health (no import cycle between the two packages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schedgen_ops.config import Config
from schedgen_ops.ops.health import load_thresholds, resolve_endpoints, run_health


def health_after_restore(
    target_name: str,
    project: Path,
    *,
    database_url: str,
    redis_url: str,
    storage_url: str,
    backup_dir: Path,
    config: Config | None = None,
) -> dict[str, Any]:
    """Run `schedgen health` against what was just restored; the verdict and components go in the report."""
    endpoints = resolve_endpoints(
        target_name,
        project,
        database_url=database_url or None,
        redis_url=redis_url or None,
        storage_url=storage_url or None,
        backup_dir=backup_dir,
        config=config,
    )
    report = run_health(endpoints, load_thresholds(project, config=config)).to_dict()
    failing = [
        f"{c['component']}.{c['name']}: {c.get('measured', '')}".strip()
        for c in report["checks"]
        if c.get("status") != "ok"
    ]
    return {
        "verdict": report["verdict"],
        "exit_code": report["exit_code"],
        "components": report["components"],
        "problems": failing,
    }
