"""A project directory: schedgen.yaml (safe to commit) plus .schedgen/secrets.env (never committed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from schedgen_ops.config.loader import (
    DEFAULT_PROFILE,
    PROJECT_FILE,
    check_key,
    load_config,
    parse_value,
    profile_layer,
    read_project,
    set_path,
)
from schedgen_ops.config.secrets import ensure_secrets
from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import ProjectLayout

_HEADER = (
    "# schedgen project: the scale profile plus this deployment's overrides (safe to commit).\n"
    "# Precedence: profile < this file < SCHEDGEN_<SECTION>__<KEY> env < --set KEY=VALUE.\n"
    "# See docs/CONFIGURATION.md; `schedgen config show` prints the merged result.\n"
)
_GITIGNORE = "# schedgen: secrets and local runtime data never go to git\nsecrets.env\ndata/\n*.tmp\n"


def is_project(project_dir: Path) -> bool:
    return (project_dir / PROJECT_FILE).is_file()


def write_project(project_dir: Path, data: dict[str, Any]) -> None:
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    (project_dir / PROJECT_FILE).write_text(_HEADER + body, encoding="utf-8")


def init_project(
    project_dir: Path, *, profile: str | None = None, domain: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Create schedgen.yaml and the secrets file; existing secrets are never regenerated."""
    project_dir.mkdir(parents=True, exist_ok=True)
    existed = is_project(project_dir)
    if existed and not force and (profile or domain):
        raise SchedgenError(
            f"{project_dir / PROJECT_FILE} already exists",
            code="project_exists",
            hint="use `schedgen config set profile P` / `config set domain D` to change it",
        )
    name = profile or DEFAULT_PROFILE
    profile_layer(name)  # unknown profile -> error with a suggestion
    if not existed or force:
        data: dict[str, Any] = {"profile": name}
        if domain:
            data["domain"] = domain
        write_project(project_dir, data)
        load_config(project_dir, environ={})
    state = ProjectLayout.of(project_dir).state
    state.mkdir(exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text(_GITIGNORE, encoding="utf-8")
    _, created = ensure_secrets(project_dir)
    return {
        "project": str(project_dir),
        "profile": read_project(project_dir).get("profile", name),
        "created_project": not existed,
        "created_secrets": created,
    }


def set_value(project_dir: Path, key: str, value: str) -> Any:
    """Write KEY=VALUE into schedgen.yaml after validating the whole merged result."""
    if not is_project(project_dir):
        raise SchedgenError(
            f"no {PROJECT_FILE} in {project_dir}", code="no_project", hint="run `schedgen init` first"
        )
    check_key(key)
    data = read_project(project_dir)
    parsed = parse_value(value)
    set_path(data, key, parsed)
    backup = (project_dir / PROJECT_FILE).read_text(encoding="utf-8")
    write_project(project_dir, data)
    try:
        load_config(project_dir, environ={})
    except SchedgenError:
        (project_dir / PROJECT_FILE).write_text(backup, encoding="utf-8")
        raise
    return parsed
