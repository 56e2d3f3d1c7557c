"""The backup sets in a backup directory: complete, failed and in-progress/abandoned ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.create import FAILED_SUFFIX, PARTIAL_SUFFIX
from schedgen_ops.ops.backup.manifest import (
    BACKUP_ID_RE,
    MANIFEST,
    Manifest,
    check_backup_id,
    read_manifest,
)


@dataclass
class BackupEntry:
    """One directory in the backup directory."""

    id: str
    path: Path
    state: str  # complete | failed | partial | invalid
    manifest: Manifest | None
    problem: str | None = None

    @property
    def verified(self) -> bool:
        return self.manifest is not None and self.manifest.verified

    def summary(self) -> dict[str, object]:
        m = self.manifest
        v = m.verification if m else None
        return {
            "id": self.id,
            "path": str(self.path),
            "state": self.state,
            "problem": self.problem,
            "started_at": m.started_at if m else None,
            "finished_at": m.finished_at if m else None,
            "reason": m.reason if m else None,
            "target": m.target if m else None,
            "profile": m.profile if m else None,
            "size_bytes": sum(f.size for f in m.files) if m else None,
            "rows_total": m.postgres.rows_total if m and m.postgres else None,
            "verification": (
                {"status": v.status, "level": v.level, "verified_at": v.verified_at}
                if v is not None
                else None
            ),
        }


def list_backups(directory: Path) -> list[BackupEntry]:
    """Every backup set, oldest first (ids are UTC timestamps, so names sort by time)."""
    if not directory.is_dir():
        return []
    entries: list[BackupEntry] = []
    for path in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        name = path.name
        if name.endswith(PARTIAL_SUFFIX):
            state, backup_id = "partial", name.removesuffix(PARTIAL_SUFFIX)
        elif name.endswith(FAILED_SUFFIX):
            state, backup_id = "failed", name.removesuffix(FAILED_SUFFIX)
        else:
            state, backup_id = "complete", name
        manifest: Manifest | None = None
        problem = None
        if path.is_symlink():  # never followed: prune would otherwise delete wherever it points
            entries.append(BackupEntry(backup_id, path, "invalid", None, "a symbolic link, not a backup set"))
            continue
        if not BACKUP_ID_RE.fullmatch(backup_id):
            entries.append(BackupEntry(backup_id, path, "invalid", None, "not a backup id"))
            continue
        if (path / MANIFEST).exists():
            try:
                manifest = read_manifest(path)
            except SchedgenError as exc:
                state, problem = "invalid", exc.message
        elif state == "complete":
            state, problem = "invalid", "no manifest.json"
        if manifest is not None and manifest.id != backup_id:  # a manifest copied from another set
            state, problem, manifest = "invalid", f"its manifest names backup {manifest.id}", None
        elif manifest is not None and state == "complete" and manifest.status != "complete":
            state, problem = "invalid", f"manifest status is {manifest.status}"
        if manifest is not None and manifest.error:
            problem = manifest.error
        entries.append(BackupEntry(backup_id, path, state, manifest, problem))
    return entries


def find_backup(directory: Path, backup_id: str | None) -> BackupEntry:
    """The complete backup ``backup_id`` or, without an id, the newest complete one."""
    if backup_id is not None:
        check_backup_id(backup_id.removesuffix(PARTIAL_SUFFIX).removesuffix(FAILED_SUFFIX))
    entries = list_backups(directory)
    if backup_id is None:
        complete = [e for e in entries if e.state == "complete"]
        if not complete:
            raise SchedgenError(
                f"no complete backup in {directory}",
                code="backup_not_found",
                hint="run `schedgen backup` first",
            )
        return complete[-1]
    for entry in entries:
        if entry.id == backup_id or entry.path.name == backup_id:
            if entry.state != "complete":
                raise SchedgenError(
                    f"backup {backup_id} is {entry.state}: {entry.problem or 'not usable'}",
                    code="backup_unusable",
                    hint="pick a complete backup from `schedgen backup list`",
                )
            return entry
    raise SchedgenError(
        f"no backup {backup_id!r} in {directory}",
        code="backup_not_found",
        hint="see `schedgen backup list` for the ids",
    )
