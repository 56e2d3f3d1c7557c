"""`schedgen backup prune`: apply the retention selection to a backup directory.

Failed and abandoned (.partial, when no run holds the lock) sets are removed as well; the lock is
held throughout so a concurrent backup is never pruned mid-write.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from schedgen_ops.ops.backup.catalog import list_backups
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.retention import Policy, Selection, Snapshot, select


@dataclass
class PruneResult:
    selection: Selection
    removed: list[str] = field(default_factory=list)
    debris: list[str] = field(default_factory=list)  # failed and abandoned (.partial) directories
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "keep": self.selection.keep,
            "prune": self.selection.prune,
            "debris": self.debris,
            "removed": self.removed,
        }


def prune_backups(directory: Path, policy: Policy, *, dry_run: bool = False) -> PruneResult:
    with backup_lock(directory, "prune"):
        entries = list_backups(directory)
        snapshots = [
            Snapshot(
                id=e.id,
                created=e.manifest.created(),
                verified=e.verified,
                verification_failed=e.manifest.verification is not None and not e.verified,
            )
            for e in entries
            if e.state == "complete" and e.manifest is not None
        ]
        selection = select(snapshots, policy)
        by_id = {e.id: e for e in entries if e.state == "complete"}
        result = PruneResult(selection=selection, dry_run=dry_run)
        # Holding the lock means no run is writing: every .partial here was abandoned by a crash.
        debris = [e for e in entries if e.state in ("failed", "partial")]
        result.debris = [e.path.name for e in debris]
        if dry_run:
            return result
        for backup_id in selection.prune:
            shutil.rmtree(by_id[backup_id].path)
            result.removed.append(backup_id)
        for entry in debris:
            shutil.rmtree(entry.path)
            result.removed.append(entry.path.name)
        return result
