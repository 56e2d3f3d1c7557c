"""`schedgen config show|get|set`: the merged, validated configuration of the project."""

from __future__ import annotations

import json
from typing import Any

import typer
import yaml
from rich.console import Console

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.config import load_config, load_secrets
from schedgen_ops.config.loader import check_key
from schedgen_ops.config.model import Config
from schedgen_ops.config.project import set_value
from schedgen_ops.config.secrets import redact, secrets_path
from schedgen_ops.errors import SchedgenError

app = typer.Typer(help="Show, read and change the project's configuration.", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)


def config_data(config: Config) -> dict[str, Any]:
    """The configuration as plain data, with derived values shown under `derived`."""
    data = config.model_dump(mode="json")
    data["derived"] = {
        "connection_budget": config.connection_budget(),
        "max_connections": config.max_connections(),
        "postgres_tuning": config.postgres_tuning(),
        "backup_cron": config.backup.cron,
        "backup_on_calendar": config.backup.on_calendar,
        "images": config.image_set(),
    }
    return data


def _secrets_view(reveal: bool) -> dict[str, str]:
    if not secrets_path(OPTIONS.project).is_file():
        return {}
    values = load_secrets(OPTIONS.project)
    return values if reveal else {k: redact(v) for k, v in values.items()}


@app.command("show")
def show(
    profile: str = typer.Option(None, "--profile", help="Show with this profile instead."),
    overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE override (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    reveal: bool = typer.Option(False, "--reveal", help="Print secret values (redacted by default)."),
) -> None:
    """Print the merged configuration (profile < schedgen.yaml < env < --set) and the secrets, redacted."""
    data = config_data(load_config(OPTIONS.project, profile=profile, overrides=overrides))
    data["secrets"] = _secrets_view(reveal)
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


def _lookup(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            raise SchedgenError(f"key {'.'.join(parts)!r} has no value", code="unknown_key")
        data = data[part]
    return data


@app.command("get")
def get(
    key: str = typer.Argument(..., help="Dotted key, e.g. api.replicas or service.db_pool_max."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print one value of the merged configuration."""
    parts = key.split(".") if key.startswith("derived.") else check_key(key)
    value = _lookup(config_data(load_config(OPTIONS.project)), parts)
    if as_json or isinstance(value, (dict, list)):
        typer.echo(json.dumps(value, sort_keys=True))
    else:
        typer.echo("" if value is None else value)


@app.command("set")
def set_(
    key: str = typer.Argument(..., help="Dotted key."),
    value: str = typer.Argument(..., help="Value (YAML)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write KEY=VALUE into schedgen.yaml; refused (file unchanged) if the result does not validate."""
    parsed = set_value(OPTIONS.project, key, value)
    if as_json:
        typer.echo(json.dumps({"key": key, "value": parsed, "file": str(OPTIONS.project / "schedgen.yaml")}))
        return
    _out.print(f"set {key} = {parsed!r} in {OPTIONS.project / 'schedgen.yaml'}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="config", help="Show, read and change the project's configuration.")
