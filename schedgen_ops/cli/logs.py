"""`schedgen logs SERVICE`: a service's logs (all replicas), optionally followed and filtered."""

from __future__ import annotations

import typer

from schedgen_ops.cli._ops import make_ops
from schedgen_ops.runtime import operations
from schedgen_ops.runtime.base import Runtime
from schedgen_ops.targets import check_target

_TARGET_OPT = typer.Option(
    None, "--target", help="local, compose or kubernetes (default: the current release's)."
)


def _runtime(target: str | None) -> Runtime:
    """The runtime of ``target``, or of the current release's target, on that release's rendered tree."""
    ops = make_ops()
    chosen = target and check_target(target)
    return operations.runtime_for(
        ops,
        chosen or operations.current_target(ops),
        tree=ops.releases.tree(cur.id) if (cur := ops.releases.current()) else None,
    )


def logs(
    service: str = typer.Argument(..., help="api, pdf-worker, postgres, redis, prometheus or supervisord."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    since: str = typer.Option(None, "--since", help="Only lines newer than this (10m, 2h, or a timestamp)."),
    lines: int = typer.Option(100, "-n", "--lines", min=0, help="Last N lines (0 = none before following)."),
    grep: str = typer.Option(None, "--grep", help="Only lines containing TEXT (case-insensitive)."),
    target: str = _TARGET_OPT,
) -> None:
    """Print a service's logs, merged across replicas in time order, each line prefixed with its replica."""
    runtime = _runtime(target)
    needle = grep.lower() if grep else None
    try:
        for line in runtime.logs(service, follow=follow, since=since, tail=lines):
            if needle is None or needle in line.lower():
                typer.echo(line)
    except KeyboardInterrupt:
        pass


def exec_command(
    service: str = typer.Argument(..., help="api or pdf-worker."),
    command: list[str] = typer.Argument(..., help="The command, after --."),
    target: str = _TARGET_OPT,
) -> None:
    """Run a command in a service's environment: local, with its settings and secrets; compose/kubernetes,
    inside one replica. Exits with the command's exit code."""
    runtime = _runtime(target)
    raise typer.Exit(runtime.exec(service, command))


def register(app: typer.Typer) -> None:
    app.command("logs", help="Show a service's logs (-f to follow, --since, -n, --grep).")(logs)
    app.command("exec", help="Run a command in a service's environment (schedgen exec api -- CMD).")(
        exec_command
    )
