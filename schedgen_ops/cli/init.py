"""`schedgen init`: create a project (schedgen.yaml + .schedgen/secrets.env, mode 0600)."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.config.project import init_project
from schedgen_ops.layout import ProjectLayout

_out = Console(highlight=False, soft_wrap=True)


def init(
    profile: str = typer.Option(None, "--profile", help="Scale profile: small, medium or large."),
    domain: str = typer.Option(None, "--domain", help="Public domain of the deployment."),
    force: bool = typer.Option(False, "--force", help="Rewrite schedgen.yaml (secrets are kept)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create schedgen.yaml and strong random secrets (generated once, never overwritten)."""
    result = init_project(OPTIONS.project, profile=profile, domain=domain, force=force)
    if as_json:
        typer.echo(json.dumps(result, sort_keys=True))
        return
    verb = "created" if result["created_project"] else "kept"
    _out.print(f"{verb} {OPTIONS.project / 'schedgen.yaml'} (profile {result['profile']})")
    secrets_verb = "generated" if result["created_secrets"] else "kept existing"
    _out.print(f"{secrets_verb} secrets in {ProjectLayout.of(OPTIONS.project).secrets} (mode 0600)")


def register(app: typer.Typer) -> None:
    app.command("init", help="Create a project: schedgen.yaml plus generated secrets.")(init)
