"""`schedgen scale SERVICE=N ...`: replicas within the profile's bounds."""

from __future__ import annotations

import typer

from schedgen_ops.cli._ops import DRY_RUN, LOCK_WAIT, make_ops, out
from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime import operations
from schedgen_ops.targets import check_target


def parse_counts(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise SchedgenError(
                f"{item!r} is not SERVICE=N",
                code="usage",
                hint="e.g. schedgen scale pdf-worker=4",
                exit_code=2,
            )
        counts[name.strip()] = int(value)
    return counts


def scale(
    assignments: list[str] = typer.Argument(..., help="SERVICE=N pairs; services: api, pdf-worker."),
    target: str = typer.Option(
        None, "--target", help="local, compose or kubernetes (default: the current release's)."
    ),
    dry_run: bool = DRY_RUN,
    lock_wait: float = LOCK_WAIT,
) -> None:
    """Scale services; scaling workers down lets busy ones finish their current job first."""
    ops = make_ops(dry_run=dry_run, lock_wait=lock_wait)
    counts = operations.scale(ops, parse_counts(assignments), target=target and check_target(target))
    if not dry_run:
        out.print("scaled " + ", ".join(f"{k}={v}" for k, v in counts.items()))


def register(app: typer.Typer) -> None:
    app.command("scale", help="Scale api / pdf-worker within the profile's bounds.")(scale)
