"""`schedgen secrets rotate NAME` regenerates one generated secret; `schedgen secrets set NAME` stores one the
operator provides (a webhook URL), read from stdin so it never lands in argv or shell history."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.config.secrets import (
    OPERATOR_SECRETS,
    SECRET_NAMES,
    rotate_secret,
    secrets_path,
    set_operator_secret,
)

app = typer.Typer(help="Manage the project's generated secrets.", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
#: `rotate` and `set` answer with the same document: what changed, and in which file.
_JSON_RESULT = typer.Option(False, "--json", help="Print the result as JSON (never the value).")


@app.command("rotate")
def rotate(
    name: str = typer.Argument(..., help=f"One of: {', '.join(SECRET_NAMES)}."),
    as_json: bool = _JSON_RESULT,
    force: bool = typer.Option(
        False,
        "--force",
        help="Rotate a key existing data depends on (PGBACKREST_CIPHER_PASS, BACKUP_HMAC_KEY); refused "
        "without it, with what would be lost and how to rotate safely.",
    ),
) -> None:
    """Regenerate one secret; re-render and redeploy afterwards so every service picks it up."""
    rotate_secret(OPTIONS.project, name, force=force)
    if as_json:
        typer.echo(json.dumps({"rotated": name, "file": str(secrets_path(OPTIONS.project))}))
        return
    _out.print(f"rotated {name} in {secrets_path(OPTIONS.project)}; re-run `schedgen render` and redeploy")


@app.command("set")
def set_(
    name: str = typer.Argument(..., help=f"One of: {', '.join(OPERATOR_SECRETS)}."),
    as_json: bool = _JSON_RESULT,
) -> None:
    """Store a secret you provide, read from stdin (empty input clears it); never echoed back."""
    import sys

    value = "" if sys.stdin.isatty() else sys.stdin.read()
    set_operator_secret(OPTIONS.project, name, value)
    state = "stored" if value.strip() else "cleared"
    if as_json:
        typer.echo(json.dumps({state: name, "file": str(secrets_path(OPTIONS.project))}))
        return
    _out.print(f"{state} {name} in {secrets_path(OPTIONS.project)}; re-run `schedgen render` and redeploy")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the secret names (never their values): generated ones, then the ones you set."""
    names = [*SECRET_NAMES, *OPERATOR_SECRETS]
    if as_json:
        typer.echo(json.dumps(names))
        return
    for name in names:
        typer.echo(name if name in SECRET_NAMES else f"{name} (set with `schedgen secrets set`)")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="secrets", help="Manage the project's generated secrets.")
