"""`schedgen up` / `schedgen down`: the local stack on this machine (supervisord)."""

from __future__ import annotations

import json

import typer

from schedgen_ops.cli._ops import DRY_RUN, LOCK_WAIT, make_ops, out
from schedgen_ops.runtime import operations
from schedgen_ops.targets import check_target


def up(
    profile: str = typer.Option(None, "--profile", help="Scale profile (default: the project's)."),
    overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE override (repeatable)."),
    dry_run: bool = DRY_RUN,
    lock_wait: float = LOCK_WAIT,
    timeout: float = typer.Option(90.0, "--timeout", min=1, help="Seconds to wait for readiness."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Start the local stack (render if needed) and wait until the api is ready and a worker is alive.

    Idempotent: when everything already runs with the same configuration, nothing restarts.
    """
    ops = make_ops(dry_run=dry_run, lock_wait=lock_wait, gate_timeout=timeout)
    outcome = operations.up(ops, profile=profile, overrides=overrides)
    if dry_run:
        return
    from schedgen_ops.cli.pitr import enable_after_deploy

    pitr = enable_after_deploy(ops, "local", profile, overrides)
    stack = operations.status(ops, target="local")
    result = {
        "release": outcome.release.id if outcome.release else None,
        "unchanged": outcome.unchanged,
        "urls": stack.urls,
        "page_url": page_url(stack.urls),
        "pitr": pitr,
        "services": {s.name: {"desired": s.desired, "running": s.running} for s in stack.services},
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    verb = "already up" if outcome.unchanged else "up"
    out.print(f"local stack {verb}: release {result['release']}")
    for name, url in stack.urls.items():
        out.print(f"  {name:<12} {url}   (metrics {url}/metrics)")
    if result["page_url"]:
        out.print(f"  {'page':<12} {result['page_url']}   (open it in a browser: upload a timetable PDF)")
    for service in stack.services:
        out.print(f"  {service.name:<12} {service.running}/{service.desired} running")


def page_url(urls: dict[str, str]) -> str | None:
    """The student page (/ of the api), from the stack's api URL."""
    api = urls.get("api") or next(iter(urls.values()), None)
    return api.rstrip("/") + "/" if api else None


def down(
    volumes: bool = typer.Option(
        False, "--volumes", help="Also delete the local data (Postgres, Redis, uploads)."
    ),
    dry_run: bool = DRY_RUN,
    lock_wait: float = LOCK_WAIT,
    target: str = typer.Option(
        None, "--target", help="local, compose or kubernetes (default: the current release's)."
    ),
) -> None:
    """Stop the stack (workers finish their current job first). Data stays unless --volumes."""
    ops = make_ops(dry_run=dry_run, lock_wait=lock_wait)
    operations.down(ops, volumes=volumes, target=target and check_target(target))
    if not dry_run:
        out.print("stack stopped" + (" and its data deleted" if volumes else " (data kept)"))


def register(app: typer.Typer) -> None:
    app.command("up", help="Start the local stack and wait until it is ready.")(up)
    app.command("down", help="Stop the stack (data is kept unless --volumes).")(down)
