"""`schedgen status`: desired/running, health, uptime, restarts, CPU and memory per service."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from schedgen_ops.cli._ops import human_bytes, human_duration, make_ops, out
from schedgen_ops.runtime import operations
from schedgen_ops.runtime.lock import read_holder
from schedgen_ops.targets import check_target


def status(
    target: str = typer.Option(
        None, "--target", help="local, compose or kubernetes (default: the current release's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show the running stack. Exit 1 when a service runs fewer processes than desired."""
    ops = make_ops()
    stack = operations.status(ops, target=target and check_target(target))
    holder = read_holder(ops.state / "deploy.lock")
    data = stack.to_dict()
    data["lock"] = None if holder is None else holder.__dict__
    degraded = any(s.running < s.desired for s in stack.services)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        out.print(f"target {stack.target}, release {stack.release or 'none'}")
        if holder is not None:
            out.print(f"deploy lock held: {holder.describe()}")
        if not stack.services:
            out.print("not running")
        table = Table("service", "running", "health", "uptime", "restarts", "cpu", "memory", box=None)
        for service in stack.services:
            table.add_row(
                service.name,
                f"{service.running}/{service.desired}",
                service.health,
                human_duration(service.uptime_s),
                str(service.restarts),
                "-" if service.cpu_percent is None else f"{service.cpu_percent:.1f}%",
                human_bytes(service.memory_bytes),
            )
        if stack.services:
            out.print(table)
        for service in stack.services:  # the front door and each api upstream, one line each
            if service.name in ("frontdoor", "api"):
                for process in service.processes:
                    if process.health:
                        out.print(f"  {process.name:<14} {process.health}")
        for name, url in stack.urls.items():
            out.print(f"{name}: {url}")
    if degraded or not stack.services:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("status", help="Show services: desired/running, health, uptime, restarts, CPU, memory.")(
        status
    )
