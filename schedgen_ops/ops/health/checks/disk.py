"""disk: free space on the filesystems holding the service data and the backups."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from schedgen_ops.ops.health.model import CheckResult, Level, Status, judged
from schedgen_ops.ops.health.runner import ProbeContext

C = "disk"


def _existing_parent(path: Path) -> Path:
    """The nearest existing directory (a backup dir not created yet still lives on some filesystem)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def probe(ctx: ProbeContext) -> list[CheckResult]:
    ep = ctx.endpoints
    th = ctx.thresholds
    data = ep.data_dir
    if data is None and ep.storage_url.startswith("file://"):
        data = Path(unquote(urlparse(ep.storage_url).path))
    level = Level(th.disk_free_warn_ratio, th.disk_free_critical_ratio, rising=False)
    results: list[CheckResult] = []
    for name, path in (("data", data), ("backups", ep.backup_dir)):
        if path is None:
            results.append(
                CheckResult(
                    C,
                    name,
                    Status.UNKNOWN,
                    "no directory known",
                    hint="pass --data-dir DIR (local data) to check its free space",
                )
            )
            continue
        where = _existing_parent(path)
        try:
            usage = shutil.disk_usage(where)
        except OSError as exc:
            results.append(
                CheckResult(
                    C,
                    name,
                    Status.UNKNOWN,
                    f"{where}: {exc.strerror or exc}",
                    hint="check the path's permissions",
                )
            )
            continue
        free = usage.free / usage.total if usage.total else 0.0
        results.append(
            judged(
                C,
                name,
                level,
                free,
                f"{free:.0%} free ({usage.free / 2**30:.1f} of {usage.total / 2**30:.1f} GiB) at {where}",
                note=" free",
                value=round(free, 4),
                unit="ratio",
                hint=f"the {name} filesystem is filling up: prune backups (`schedgen backup prune`), "
                "clear old logs, or grow the volume",
            )
        )
    return results
