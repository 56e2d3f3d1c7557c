"""`schedgen db migrate|status`: the job ledger's schema."""

from __future__ import annotations

import json

import typer

db_app = typer.Typer(help="Job ledger database: apply and inspect migrations.", no_args_is_help=True)


def _url() -> str:
    from schedgen_ops.service.config import load_settings

    return load_settings(need=("database_url",)).database_url.get_secret_value()


@db_app.command("migrate")
def migrate(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Apply pending migrations (under an advisory lock; safe while the service runs)."""
    from schedgen_ops.service import db

    url = _url()
    applied = db.migrate(url)
    version = db.current_version(url)
    if as_json:
        typer.echo(json.dumps({"applied": [m.version for m in applied], "version": version}))
        return
    if applied:
        for migration in applied:
            typer.echo(f"applied {migration.version:04d}_{migration.name}")
    else:
        typer.echo("nothing to apply")
    typer.echo(f"schema version {version}")


@db_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Show the applied schema version and pending migrations."""
    from schedgen_ops.service import db

    version = db.current_version(_url())
    pending = [m.version for m in db.migrations() if m.version > version]
    if as_json:
        typer.echo(json.dumps({"version": version, "pending": pending}))
        return
    typer.echo(f"schema version {version}; pending: {', '.join(map(str, pending)) or 'none'}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db", help="Job ledger database: apply and inspect migrations.")
