"""`schedgen secrets rotate NAME`: regenerate one secret of the project."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.config.secrets import SECRET_NAMES, rotate_secret, secrets_path

app = typer.Typer(help="Manage the project's generated secrets.", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)


@app.command("rotate")
def rotate(
    name: str = typer.Argument(..., help=f"One of: {', '.join(SECRET_NAMES)}."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (never the value)."),
) -> None:
    """Regenerate one secret; re-render and redeploy afterwards so every service picks it up."""
    rotate_secret(OPTIONS.project, name)
    if as_json:
        typer.echo(json.dumps({"rotated": name, "file": str(secrets_path(OPTIONS.project))}))
        return
    _out.print(f"rotated {name} in {secrets_path(OPTIONS.project)}; re-run `schedgen render` and redeploy")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the secret names (never their values)."""
    if as_json:
        typer.echo(json.dumps(list(SECRET_NAMES)))
        return
    for name in SECRET_NAMES:
        typer.echo(name)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="secrets", help="Manage the project's generated secrets.")
