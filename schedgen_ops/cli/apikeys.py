"""`schedgen apikeys create|list|revoke`: API keys for clients (rate limits are per key)."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.console import Console
from rich.table import Table

from schedgen_ops.errors import SchedgenError

keys_app = typer.Typer(help="API keys for clients of the parsing service.", no_args_is_help=True)


def _connect():  # type: ignore[no-untyped-def]
    from schedgen_ops.service import db
    from schedgen_ops.service.config import load_settings

    url = load_settings(need=("database_url",)).database_url.get_secret_value()
    db.migrate(url)
    return db.connect(url)


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="Who the key is for (shown in listings)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from schedgen_ops.service.clients import create_key

    with _connect() as conn:
        key_id, key = create_key(conn, name)
    if as_json:
        typer.echo(json.dumps({"id": key_id, "name": name, "key": key}))
    else:
        typer.echo(f"created key {key_id} for {name!r}; send it as X-API-Key (shown only now):")
        typer.echo(key)


@keys_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """List keys (ids and names; never the keys themselves)."""
    from schedgen_ops.service.clients import list_keys

    with _connect() as conn:
        keys = list_keys(conn)
    if as_json:
        typer.echo(json.dumps([asdict(k) for k in keys]))
        return
    table = Table("id", "name", "created", "revoked", "last used")
    for k in keys:
        table.add_row(k.id, k.name, k.created_at, k.revoked_at or "-", k.last_used_at or "-")
    Console().print(table)


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key id from `schedgen apikeys list`."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Revoke a key (api processes honour it within 30 s, their cache lifetime)."""
    from schedgen_ops.service.clients import revoke_key

    with _connect() as conn:
        if not revoke_key(conn, key_id):
            raise SchedgenError(
                f"no active key {key_id!r}", code="unknown_key", hint="see `schedgen apikeys list`"
            )
    if as_json:
        typer.echo(json.dumps({"id": key_id, "revoked": True}))
    else:
        typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="apikeys", help="API keys for clients of the parsing service.")
