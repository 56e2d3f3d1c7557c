"""Shared plumbing of the runtime commands: the `Ops` object, progress lines, duration formatting."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.runtime.operations import Ops

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)
if not out.is_terminal:  # pipes and CI: do not squeeze tables into 80 columns
    out = Console(highlight=False, width=200)


#: Options every stack-changing command shares: one definition, one --help text.
DRY_RUN: Any = typer.Option(False, "--dry-run", help="Print what would run; change nothing.")
LOCK_WAIT: Any = typer.Option(0.0, "--lock-wait", min=0, help="Wait up to SECONDS for the deploy lock.")


def make_ops(*, dry_run: bool = False, lock_wait: float = 0.0, gate_timeout: float = 90.0) -> Ops:
    """Progress and every command run go to stderr, so stdout stays clean for --json."""
    return Ops(
        OPTIONS.project,
        dry_run=dry_run,
        echo=lambda line: err.print(line, markup=False),
        lock_wait_s=lock_wait,
        gate_timeout_s=gate_timeout,
    )


def human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
