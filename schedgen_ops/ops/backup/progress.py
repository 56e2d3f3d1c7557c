"""Progress of long backup steps: rich bars on a terminal, one plain line per step otherwise (CI logs).

Reports go to stderr so ``--json`` output on stdout stays a clean document.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from schedgen_ops.ops.backup.streaming import ProgressFn


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


class Reporter:
    """Step-wise progress; ``quiet`` reports nothing (library use, tests, --json)."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.warnings: list[str] = []

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False)

    def warn(self, message: str) -> None:
        """A decision the operator must know about: kept, and printed even when quiet (stderr)."""
        self.warnings.append(message)
        self.console.print(f"warning: {message}", markup=False)

    @contextmanager
    def step(self, label: str, total: int | None = None) -> Iterator[ProgressFn]:
        """Yield a function to call with each chunk's byte count while ``label`` runs."""
        if self.quiet:
            yield lambda _n: None
            return
        started = time.monotonic()
        if self.console.is_terminal:
            columns = [
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeElapsedColumn(),
            ]
            with Progress(*columns, console=self.console, transient=False) as bar:
                task = bar.add_task(label, total=total)
                yield lambda n: bar.advance(task, n)
                bar.update(task, total=bar.tasks[0].completed if total is None else total)
            return
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n

        yield advance
        elapsed = time.monotonic() - started
        size = f" {human_bytes(done)}" if done else ""
        self.console.print(f"{label}:{size} in {elapsed:.2f}s", markup=False)
