"""How a restore's report reads on a terminal, for every kind of restore (a backup set, a point in time
on the local runtime or on compose): the lines they share are worded once, here."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from schedgen_ops.ops.backup.restore import RestoreReport

_out = Console(highlight=False, soft_wrap=True)


def say(*lines: str) -> None:
    """Print each line as it is: paths and error messages may hold brackets rich would read as markup."""
    for line in lines:
        _out.print(line, markup=False)


def outcome(report: RestoreReport) -> list[str]:
    """What was verified, which safety set holds the state before, and how much came back."""
    return [
        f"  {report.verification}; safety backup: {report.safety_backup_id or 'skipped'}",
        f"  {report.rows_total} rows in {len(report.tables)} tables",
    ]


def took(report: RestoreReport, postgres_step: str) -> str:
    """The whole restore's time and its Postgres step's (``postgres_step`` names that step)."""
    return f"  took {report.duration_s:.1f}s ({postgres_step} {report.postgres_restore_s:.1f}s)"


def health_after(health: dict[str, Any] | None, *, problems: bool = False) -> list[str]:
    """The verdict of `schedgen health` after the restore (and its problems), when it ran."""
    if health is None:
        return []
    lines = [f"  health after the restore: {health['verdict']}"]
    if problems:
        lines += [f"    {problem}" for problem in health["problems"]]
    return lines
