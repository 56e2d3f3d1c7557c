"""`schedgen profiles list|show|diff`: the built-in scale profiles."""

from __future__ import annotations

import json
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from schedgen_ops.cli.config import config_data
from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.config import available_profiles, load_config

app = typer.Typer(help="List, show and compare the built-in scale profiles.", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)


def _profile_data(name: str) -> dict[str, Any]:
    """The profile merged over base (no project overrides, no environment)."""
    return config_data(load_config(OPTIONS.project / ".schedgen-no-project", profile=name, environ={}))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The profiles with their platform and sizing."""
    rows = []
    for name in available_profiles():
        d = _profile_data(name)
        rows.append(
            {
                "name": name,
                "platform": d["platform"],
                "description": d["description"],
                "api": f"{d['api']['min_replicas']}-{d['api']['max_replicas']}",
                "workers": f"{d['worker']['min_replicas']}-{d['worker']['max_replicas']}",
                "max_connections": d["derived"]["max_connections"],
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("profile", "platform", "api", "workers", "max_connections", "description")
    for r in rows:
        table.add_row(
            r["name"], r["platform"], r["api"], r["workers"], str(r["max_connections"]), r["description"]
        )
    _out.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Every value of one profile (merged over base.yaml)."""
    data = _profile_data(name)
    typer.echo(
        json.dumps(data, indent=2, sort_keys=True) if as_json else yaml.safe_dump(data, sort_keys=False),
        nl=as_json,
    )


@app.command("diff")
def diff(
    a: str = typer.Argument(...),
    b: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The keys whose values differ between two profiles."""
    fa, fb = _flatten(_profile_data(a)), _flatten(_profile_data(b))
    keys = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k) and k != "profile")
    rows = [{"key": k, a: fa.get(k), b: fb.get(k)} for k in keys]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("key", a, b)
    for r in rows:
        table.add_row(r["key"], str(r[a]), str(r[b]))
    _out.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="profiles", help="List, show and compare the built-in scale profiles.")
