"""`schedgen render`: write and validate the deployment tree (or `--check` an existing one)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.config import load_config, load_secrets
from schedgen_ops.config.project import init_project, is_project
from schedgen_ops.errors import SchedgenError
from schedgen_ops.render import render_tree, validate_tree

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def render(
    profile: str = typer.Option(None, "--profile", help="Scale profile (default: the project's)."),
    target: str = typer.Option("all", "--target", "-t", help="compose, kubernetes, local or all."),
    output: Path = typer.Option(None, "--output", "-o", help="Output directory (default: <project>/deploy)."),
    overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE override (repeatable)."),
    check: bool = typer.Option(False, "--check", help="Validate the existing tree; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Render compose, Kubernetes, local, systemd and runbook files, then validate them."""
    project = OPTIONS.project
    out_dir = (output or project / "deploy").resolve()
    written: list[Path] = []
    notes: list[str] = []
    if check:
        if not out_dir.is_dir():
            raise SchedgenError(
                f"nothing to check at {out_dir}", code="no_tree", hint="run `schedgen render` first"
            )
    else:
        if not is_project(project):
            init_project(project, profile=profile)
            notes.append(f"initialised a new project in {project} (schedgen.yaml, .schedgen/secrets.env)")
        config = load_config(project, profile=profile, overrides=overrides)
        written = render_tree(config, load_secrets(project), target, out_dir, project_dir=project)
    problems = validate_tree(out_dir)
    result = {
        "output": str(out_dir),
        "files": len(written),
        "checked_only": check,
        "valid": not problems,
        "problems": [{"file": p.file, "message": p.message} for p in problems],
        "notes": notes,
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for note in notes:
            _out.print(note)
        for problem in problems:
            _err.print(f"invalid: {problem}", markup=False)
        if not problems:
            verb = "checked" if check else f"rendered {len(written)} files into"
            _out.print(f"{verb} {out_dir}: valid")
    if problems:
        raise SchedgenError(
            f"{len(problems)} problem(s) in {out_dir}: {problems[0]}",
            code="render_invalid",
            hint="fix the configuration (or template) and render again",
        )


def register(app: typer.Typer) -> None:
    app.command("render", help="Render and validate the deployment files from the profile.")(render)
