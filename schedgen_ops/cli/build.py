"""`schedgen build`: the service image, from a host-made wheelhouse (no network inside the build)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from schedgen_ops.cli._ops import err, human_bytes, make_ops, out
from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.runtime.imagebuild import DEFAULT_BASE, BuildResult, build_image
from schedgen_ops.runtime.operations import Ops


def _default_tag() -> str:
    """The project's `images.service` at the toolkit version, else the built-in repository."""
    from schedgen_ops import __version__
    from schedgen_ops.config import load_config
    from schedgen_ops.config.project import is_project

    if is_project(OPTIONS.project):
        return load_config(OPTIONS.project).service_image()
    return f"schedgen/service:{__version__}"


def build(
    base_image: str = typer.Option(
        DEFAULT_BASE,
        "--base-image",
        help="Base image with python3 + python3-venv (python:3.11-slim, or a plain Debian bookworm).",
    ),
    tag: str | None = typer.Option(
        None, "--tag", help="Image tag (default: images.service of the project at the toolkit version)."
    ),
    wheelhouse: Path | None = typer.Option(
        None,
        "--wheelhouse",
        help="Use these wheels (schedgen-ops and its dependencies) instead of building them here.",
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Rebuild every image layer (the host's wheel cache is still used)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print every command; build nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (progress on stderr)."),
) -> None:
    """Build the service image that `deploy --target compose` runs.

    Wheels are made here at the constraints.txt versions, so the build needs no network (air-gapped).

    Tag images.service:VERSION, labels with version and git commit; needs a running Docker engine.

    Examples:

      schedgen build                                  # python:3.11-slim base

      schedgen build --base-image my/debian:12        # needs python3 + python3-venv

      schedgen build --json | jq .image_id
    """
    ops = make_ops(dry_run=dry_run)
    result = build_image(
        ops.runner,
        tag=tag or _default_tag(),
        base_image=base_image,
        wheelhouse=wheelhouse,
        no_cache=no_cache,
        progress=lambda line: err.print(line, markup=False, highlight=False),
    )
    postgres = _build_pitr_postgres(ops, no_cache=no_cache)
    if result is None:
        return
    if as_json:
        document = result.to_dict()
        if postgres is not None:
            document["postgres_pitr"] = postgres.to_dict()
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        out.print(
            f"built {result.tag} ({result.image_id[:19]}, {human_bytes(result.size_bytes)}) "
            f"on {result.base_image} in {result.duration_s:.0f}s, commit {result.commit[:12]}"
        )
        if postgres is not None:
            out.print(f"postgres with pgBackRest (backup.pitr): {postgres.tag} ({postgres.image_id[:19]})")


def _build_pitr_postgres(ops: Ops, *, no_cache: bool) -> BuildResult | None:
    """With backup.pitr on, compose runs postgres.image plus pgBackRest: build that too (once per content)."""
    from schedgen_ops.config import load_config
    from schedgen_ops.config.project import is_project
    from schedgen_ops.runtime.imagebuild import build_pitr_postgres

    if not is_project(OPTIONS.project):
        return None
    config = load_config(OPTIONS.project)
    if not config.backup.pitr.enabled:
        return None
    return build_pitr_postgres(
        ops.runner,
        config,
        force=no_cache,
        progress=lambda line: err.print(line, markup=False, highlight=False),
    )


def register(app: typer.Typer) -> None:
    app.command("build", short_help="Build the service image (compose runs it).")(build)
