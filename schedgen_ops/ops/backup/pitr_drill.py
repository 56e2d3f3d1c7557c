"""`backup verify --deep` with PITR on: a point-in-time restore drill into a scratch instance.

Restores the repository to ``latest`` (or a given time) beside the live data directory, recovers it on
its own port with archiving off, counts every table and compares the job count with the live server's:
the drill passes when recovery reaches the target and the recovered ledger is readable. The scratch
directory is removed afterwards, whatever happened.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.manifest import utcnow
from schedgen_ops.ops.backup.pgbackrest import PitrSite
from schedgen_ops.ops.backup.pitr_restore import _counts
from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget, recovered, remove_tree, restore_files


@dataclass
class DrillResult:
    target: str
    ok: bool = False
    detail: str = ""
    recovered_rows: dict[str, int] = field(default_factory=dict)
    restore_s: float = 0.0
    recover_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def judge(self, database: str) -> DrillResult:
        """The verdict on the counted tables (every runtime's drill): ok when the ledger's jobs are there."""
        jobs = jobs_count(self.recovered_rows)
        self.ok = jobs is not None
        self.detail = (
            f"recovered to {self.target}: {jobs} jobs, {sum(self.recovered_rows.values())} rows in "
            f"{len(self.recovered_rows)} tables"
            if self.ok
            else f"the recovered database {database} has no jobs table (tables: "
            f"{', '.join(self.recovered_rows) or 'none'})"
        )
        return self


def jobs_count(counts: dict[str, int]) -> int | None:
    """Rows of the ledger's ``jobs`` table, whichever schema holds it (the app role's own, or public)."""
    found = [n for table, n in counts.items() if table.rpartition(".")[2] == "jobs"]
    return found[0] if len(found) == 1 else None


def drill(site: PitrSite, database: str, target: RecoveryTarget | None = None) -> DrillResult:
    target = target or RecoveryTarget(None)
    result = DrillResult(target=target.describe())
    scratch = site.pg_data.parent / f"{site.pg_data.name}.drill-{utcnow().strftime('%Y%m%dt%H%M%Sz')}"
    try:
        clock = time.monotonic()
        restore_files(site, scratch, target)
        result.restore_s = round(time.monotonic() - clock, 3)
        clock = time.monotonic()
        with recovered(scratch, max_connections=site.config.max_connections()) as server:
            result.recovered_rows = _counts(server.url_for(database))
        result.recover_s = round(time.monotonic() - clock, 3)
    except SchedgenError as exc:
        result.detail = exc.one_line()
        remove_tree(scratch, keep_log=True)
        return result
    remove_tree(scratch)
    return result.judge(database)
