"""`schedgen deploy` and `schedgen rollback`: gated releases with automatic rollback."""

from __future__ import annotations

import json

import typer

from schedgen_ops.cli._ops import DRY_RUN, LOCK_WAIT, make_ops, out
from schedgen_ops.runtime import operations
from schedgen_ops.targets import check_target


def deploy(
    target: str = typer.Option("local", "--target", "-t", help="local, compose or kubernetes."),
    profile: str = typer.Option(None, "--profile", help="Scale profile (default: the project's)."),
    overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE override (repeatable)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan and every command; change nothing."
    ),
    no_rollback: bool = typer.Option(
        False, "--no-rollback", help="Leave a release that fails its gate in place."
    ),
    no_canary: bool = typer.Option(False, "--no-canary", help="Skip the canary upload in the health gate."),
    lock_wait: float = LOCK_WAIT,
    gate_timeout: float = typer.Option(
        90.0, "--gate-timeout", min=1, help="Seconds each gate check may take."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Render, validate, apply, pass the health gate, record the release; roll back if the gate fails."""
    ops = make_ops(dry_run=dry_run, lock_wait=lock_wait, gate_timeout=gate_timeout)
    outcome = operations.deploy(
        ops,
        target=check_target(target),
        profile=profile,
        overrides=overrides,
        rollback_on_failure=not no_rollback,
        canary=not no_canary,
    )
    if dry_run:
        if as_json:
            typer.echo(json.dumps({"dry_run": True, "commands": outcome.planned}, indent=2))
        return
    assert outcome.release is not None
    from schedgen_ops.cli.pitr import enable_after_deploy  # backup.pitr: stanza + first backup

    pitr = enable_after_deploy(ops, target, profile, overrides)
    result = {
        "release": outcome.release.id,
        "previous": outcome.previous,
        "target": target,
        "gate": outcome.gate.checks if outcome.gate else {},
        "canary_job": outcome.gate.canary_job if outcome.gate else None,
        **({"pitr": pitr} if pitr is not None else {}),
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        out.print(
            f"release {outcome.release.id} is live on {target} (previous: {outcome.previous or 'none'})"
        )


def rollback(
    release: str = typer.Argument(None, help="Release id (default: the one before the current)."),
    dry_run: bool = DRY_RUN,
    no_canary: bool = typer.Option(False, "--no-canary", help="Skip the canary upload after rolling back."),
    lock_wait: float = LOCK_WAIT,
    gate_timeout: float = typer.Option(
        90.0, "--gate-timeout", min=1, help="Seconds each gate check may take."
    ),
) -> None:
    """Put an earlier release back (configuration and processes; data is never restored)."""
    ops = make_ops(dry_run=dry_run, lock_wait=lock_wait, gate_timeout=gate_timeout)
    restored = operations.rollback(ops, release, canary=not no_canary)
    if not dry_run:
        out.print(f"release {restored.id} is live again")


def register(app: typer.Typer) -> None:
    app.command("deploy", help="Deploy a gated release (automatic rollback on failure).")(deploy)
    app.command("rollback", help="Put an earlier release back.")(rollback)
