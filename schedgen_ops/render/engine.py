"""Render templates/ into a deployment tree, deterministically and stamped with the toolkit version.

Template directory -> output directory per target is fixed in `LAYOUT`. ``*.j2`` files are rendered
with StrictUndefined (a missing value is an error, never an empty string); other files are copied.
A template that renders to nothing is skipped (profile-specific files). `render.json` records the
inputs' facts and each file's sha256 so `render --check` can spot hand edits.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jinja2
import yaml

from schedgen_ops import __version__
from schedgen_ops.config.model import Config
from schedgen_ops.config.secrets import FILE_MODE
from schedgen_ops.errors import SchedgenError
from schedgen_ops.render.alerts import HEALTH_CHECKS, alert_rules, rules_file
from schedgen_ops.render.context import build_context, secret_env_files
from schedgen_ops.render.dashboards import overview
from schedgen_ops.render.frontdoor import frontdoor_context, public_url, slots
from schedgen_ops.render.promtests import rule_tests
from schedgen_ops.resources import data_dir
from schedgen_ops.targets import TARGETS, check_target

# target -> [(template dir, output dir)]; "common" is rendered with every target.
LAYOUT: dict[str, list[tuple[str, str]]] = {
    "compose": [
        ("compose", "compose"),
        ("traefik", "compose/traefik"),
        ("redis", "compose/redis"),
        ("postgres", "compose/postgres"),
        ("prometheus", "compose/prometheus"),
        ("alertmanager", "compose/alertmanager"),
        ("grafana", "compose/grafana"),
    ],
    "kubernetes": [
        ("k8s", "kubernetes"),
        ("redis", "kubernetes/redis"),
        ("postgres", "kubernetes/postgres"),
        ("prometheus", "kubernetes/prometheus"),
        ("alertmanager", "kubernetes/alertmanager"),
        ("grafana", "kubernetes/grafana"),
    ],
    "local": [("supervisor", "local"), ("local", "local")],
    "common": [("systemd", "systemd"), ("docs", "docs")],
}
MANIFEST = "render.json"
SECRETS_DIR = "secrets"
_COMMENT = {
    ".yml": "#",
    ".yaml": "#",
    ".conf": "#",
    ".cron": "#",
    ".service": "#",
    ".timer": "#",
    ".env": "#",
    ".ini": "#",
    ".rules": "#",
    ".sh": "#",
}


def _yaml_filter(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


def _quote(value: Any) -> str:
    return json.dumps(str(value))


def py_http(url: str) -> list[str]:
    """Healthcheck for our image: python is there, wget/curl are not."""
    return ["CMD", "python", "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=4)"]


def environment(templates: Path | None = None) -> jinja2.Environment:
    """The Jinja environment of a template root, shared: compiling the templates is most of a render."""
    return _environment(str(templates or data_dir("templates")))


@functools.cache
def _environment(templates: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["yaml"] = _yaml_filter
    env.filters["q"] = _quote
    env.globals["py_http"] = py_http
    env.globals["rule_tests"] = rule_tests
    env.globals["grafana_overview"] = overview
    env.globals["rules_file"] = rules_file
    env.globals["alert_rules"] = alert_rules
    env.globals["alert_health_checks"] = HEALTH_CHECKS
    env.filters["to_yaml"] = lambda v: yaml.safe_dump(v, sort_keys=False, width=10_000)
    env.filters["tojson_sorted"] = lambda v, indent=2: json.dumps(v, indent=indent, sort_keys=True)
    return env


def _stamp(rel: Path, text: str, profile: str, source: str) -> str:
    mark = _COMMENT.get(rel.suffix)
    line = f"Rendered by schedgen {__version__} (profile {profile}) from templates/{source}; do not edit."
    if rel.name.endswith(".cron") or rel.suffix in (".timer", ".service"):
        mark = "#"
    if mark:
        if text.startswith("#!"):
            first, _, rest = text.partition("\n")
            return f"{first}\n{mark} {line}\n{rest}"
        return f"{mark} {line}\n{text}"
    if rel.suffix == ".md":
        return f"<!-- {line} -->\n{text}"
    return text


def _targets(target: str) -> list[str]:
    """The targets to render, in name order (the rendered files' order never depends on the choice)."""
    return sorted(TARGETS) if check_target(target, allow_all=True) == "all" else [target]


def _render_dir(
    env: jinja2.Environment,
    tpl_root: Path,
    src: str,
    dest: str,
    context: dict[str, Any],
    out_dir: Path,
    profile: str,
) -> dict[str, str]:
    files: dict[str, str] = {}
    base = tpl_root / src
    if not base.is_dir():
        return files
    for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith("_")):
        rel_src = path.relative_to(tpl_root).as_posix()
        rel_out = Path(dest) / path.relative_to(base)
        if path.suffix == ".j2":
            rel_out = rel_out.with_suffix("")
            try:
                text = env.get_template(rel_src).render(**context)
            except jinja2.TemplateError as exc:
                raise SchedgenError(f"template {rel_src}: {exc}", code="template_error") from exc
            if not text.strip():
                continue
            text = _stamp(rel_out, text.rstrip("\n") + "\n", profile, rel_src)
        else:
            text = path.read_text(encoding="utf-8")
        files[rel_out.as_posix()] = text
    return files


def render_files(
    config: Config, secrets: dict[str, str], target: str, project_dir: Path, templates: Path | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Render in memory: (ordinary files, secret files) as relative path -> text."""
    tpl_root = templates or data_dir("templates")
    env = environment(tpl_root)
    files: dict[str, str] = {}
    secret_files: dict[str, str] = {}
    targets = _targets(target)
    for name in [*targets, "common"]:
        ctx_target = name if name != "common" else ("local" if targets == ["local"] else targets[0])
        context = build_context(config, secrets, ctx_target, project_dir)
        context["targets"] = targets
        if ctx_target == "local":
            context.update(frontdoor_context(config))
        for src, dest in LAYOUT[name]:
            files.update(_render_dir(env, tpl_root, src, dest, context, Path(), config.profile))
        if name in ("compose", "kubernetes", "local"):
            out = {"compose": "compose", "kubernetes": "kubernetes", "local": "local"}[name]
            for stem, values in secret_env_files(config, secrets, name).items():
                body = "".join(f"{k}={v}\n" for k, v in values.items())
                if stem == "minio-tenant":
                    body = values["config.env"] + "\n"
                secret_files[f"{out}/{SECRETS_DIR}/{stem}.env"] = body
    return files, secret_files


def local_ports(config: Config) -> dict[str, int]:
    """The port each local supervisord program listens on (its ``-p``/``--port``), by program name:
    the runtime reads these from render.json instead of parsing the commands back out of the conf."""
    ports = {"postgres": config.ports.postgres, "redis": config.ports.redis}
    ports.update({slot["name"]: int(slot["port"]) for slot in slots(config)["api"]})
    return ports


def manifest(
    config: Config,
    target: str,
    files: dict[str, str],
    secret_files: dict[str, str],
    kept: dict[str, Any] | None = None,
) -> str:
    """render.json: inputs' facts and every file's sha256 (plus other targets' entries still on disk)."""
    kept = kept or {"files": {}, "secret_files": [], "targets": []}
    digests = {**kept["files"], **{p: hashlib.sha256(t.encode()).hexdigest() for p, t in files.items()}}
    data = {
        "toolkit_version": __version__,
        "profile": config.profile,
        "targets": sorted({*kept["targets"], *_targets(target)}),
        "facts": {
            "connection_budget": config.connection_budget(),
            "max_connections": config.max_connections(),
            "redis_maxmemory_mb": config.redis.maxmemory_mb,
            "worker_stop_grace_s": config.role_settings("worker").job_timeout_s + 30,
            "job_timeout_s": config.role_settings("worker").job_timeout_s,
            "api_replicas": config.api.replicas,
            "worker_replicas": config.worker.replicas,
            "minio": config.minio.enabled,
            "local_ports": local_ports(config),
            "public_url": public_url(config),
        },
        "files": dict(sorted(digests.items())),
        "secret_files": sorted({*kept["secret_files"], *secret_files}),
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _remove_previous(out_dir: Path, tops: set[str], profile: str) -> dict[str, Any]:
    """Delete the previous render's files under ``tops`` (per its render.json), then empty directories.

    Returns the previous manifest's entries outside ``tops`` (other targets' files stay valid). A
    previous render of another profile is removed whole: mixed trees would contradict each other.
    """
    kept: dict[str, Any] = {"files": {}, "secret_files": [], "targets": []}
    path = out_dir / MANIFEST
    if not path.is_file():
        return kept
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return kept
    root = out_dir.resolve()
    if previous.get("profile") != profile or previous.get("toolkit_version") != __version__:
        listed = [*previous.get("files", {}), *previous.get("secret_files", [])]
        tops = tops | {Path(rel).parts[0] for rel in listed}
    for rel, digest in previous.get("files", {}).items():
        if Path(rel).parts[0] not in tops:
            kept["files"][rel] = digest
    kept["secret_files"] = [r for r in previous.get("secret_files", []) if Path(r).parts[0] not in tops]
    kept["targets"] = [t for t in previous.get("targets", []) if t not in tops]
    for rel in [*previous.get("files", {}), *previous.get("secret_files", [])]:
        target = (out_dir / rel).resolve()
        if Path(rel).parts[0] in tops and target.is_relative_to(root) and target.is_file():
            target.unlink()
    for top in sorted(tops):
        base = out_dir / top
        if not base.is_dir():
            continue
        for directory in sorted((d for d in base.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            if not any(directory.iterdir()):
                directory.rmdir()
        if not any(base.iterdir()):
            base.rmdir()
    return kept


def render_tree(
    config: Config,
    secrets: dict[str, str],
    target: str,
    out_dir: Path,
    *,
    project_dir: Path | None = None,
    templates: Path | None = None,
) -> list[Path]:
    """Write the rendered tree for ``target`` into ``out_dir``; returns every written path.

    Files of the previous render (listed in its render.json) are removed first, so a file a profile
    no longer produces cannot linger; files schedgen did not write are never deleted, and a
    directory holding such files where the tree would go is refused.
    """
    project = project_dir or out_dir.resolve().parent
    files, secret_files = render_files(config, secrets, target, project, templates)
    out_dir.mkdir(parents=True, exist_ok=True)
    tops = {Path(p).parts[0] for p in [*files, *secret_files]}
    kept = _remove_previous(out_dir, tops, config.profile)
    for top in sorted(tops):
        if (out_dir / top).exists() and any((out_dir / top).rglob("*")):
            raise SchedgenError(
                f"{out_dir / top} holds files schedgen did not render",
                code="output_not_empty",
                hint="render into an empty directory (-o DIR) or the project's deploy/",
            )
    written: list[Path] = []
    for rel, text in sorted(files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for rel, text in sorted(secret_files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, FILE_MODE)
        written.append(path)
    (out_dir / ".gitignore").write_text("# rendered secrets never go to git\n*/secrets/\n", encoding="utf-8")
    (out_dir / MANIFEST).write_text(manifest(config, target, files, secret_files, kept), encoding="utf-8")
    written += [out_dir / ".gitignore", out_dir / MANIFEST]
    return written
