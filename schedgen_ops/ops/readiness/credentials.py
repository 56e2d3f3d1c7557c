"""Where each runtime of a rendered tree keeps the credentials it hands out: the service's environment, the
Postgres superuser, the roles script and what applies it, the exporter's, the backups' and MinIO's root.

The least-privilege checks (checks_privilege) judge what these say; this module only finds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.inspect import (
    containers,
    parse_env_file,
    pod_template,
    service_env,
    service_role,
    workload_role,
)
from schedgen_ops.ops.readiness.tree import RenderedTree


@dataclass(frozen=True)
class Target:
    """What one runtime of the tree gives the service and its helpers (files relative to the tree)."""

    name: str
    app_env: dict[str, str]
    app_file: str
    superuser: str
    script: str | None  # the roles script (roles.sql) path, when rendered
    script_applied: str | None  # what runs it (a one-shot, a Job), None when nothing does
    exporter_env: dict[str, str]
    exporter_file: str | None
    backup_env: dict[str, str]
    backup_file: str | None


def env_file(tree: RenderedTree, rel: str) -> dict[str, str]:
    """A KEY=VALUE file of the tree ({} when it is not rendered)."""
    return parse_env_file(tree.text(rel)) if tree.exists(rel) else {}


def k8s_secret_files(tree: RenderedTree) -> dict[str, list[str]]:
    """secretGenerator name -> its env files (relative to the tree)."""
    out: dict[str, list[str]] = {}
    for rel, kustomization in tree.kustomizations():
        base = Path(rel).parent
        for gen in kustomization.get("secretGenerator") or []:
            out[str(gen.get("name"))] = [(base / str(e)).as_posix() for e in gen.get("envs") or []]
    return out


def k8s_env(tree: RenderedTree, files: dict[str, list[str]], names: list[str]) -> tuple[dict[str, str], str]:
    """The environment the named generated Secrets hold, and the last env file it came from."""
    env: dict[str, str] = {}
    where = ""
    for name in names:
        for rel in files.get(name, []):
            if tree.exists(rel):
                env.update(env_file(tree, rel))
                where = rel
    return env, where


def _secret_refs(container: dict[str, Any]) -> list[str]:
    return [
        str((src.get("secretRef") or {}).get("name"))
        for src in container.get("envFrom") or []
        if src.get("secretRef")
    ]


def _compose_target(tree: RenderedTree) -> Target | None:
    services = tree.services()
    app: tuple[dict[str, str], str] | None = None
    for name, svc in services.items():
        if service_role(name, svc or {}) in ("api", "worker"):
            env = service_env(tree, svc or {})
            if env.get("SCHEDGEN_DATABASE_URL") or env.get("SCHEDGEN_REDIS_URL"):
                files = (svc or {}).get("env_file") or []
                app = (
                    env,
                    f"compose/{files[0]}"
                    if isinstance(files, list) and files
                    else tree.compose_origin("services", name),
                )
                break
    if app is None:
        return None
    superuser = "postgres"
    for name, svc in services.items():
        if service_role(name, svc or {}) == "postgres" and "exporter" not in name:
            superuser = service_env(tree, svc or {}).get("POSTGRES_USER") or superuser
    script = next(iter(tree.files("compose/postgres/*.sql")), None)
    applied = None
    if script:
        for name, svc in services.items():
            mounts = " ".join(str(v) for v in (svc or {}).get("volumes") or [])
            if Path(script).name in mounts:
                applied = f"services.{name}"
    exporter: tuple[dict[str, str], str | None] = next(
        (
            (service_env(tree, svc or {}), name)
            for name, svc in services.items()
            if "postgres" in name and "exporter" in name
        ),
        ({}, None),
    )
    return Target(
        "compose",
        app[0],
        app[1],
        superuser,
        script,
        applied,
        exporter[0],
        tree.compose_origin("services", exporter[1]) if exporter[1] else None,
        {},
        None,
    )


def _k8s_target(tree: RenderedTree) -> Target | None:
    files = k8s_secret_files(tree)
    app_env: dict[str, str] = {}
    app_file = ""
    superuser = "postgres"
    exporter: tuple[dict[str, str], str] = ({}, "")
    backup: tuple[dict[str, str], str] = ({}, "")
    applied = None
    script = next(iter(tree.files("kubernetes/postgres/*.sql")), None)
    maps_with_script = {
        str(gen.get("name"))
        for _, k in tree.kustomizations()
        for gen in k.get("configMapGenerator") or []
        if script and any(str(f).endswith(Path(script).name) for f in gen.get("files") or [])
    }
    for manifest in tree.manifests():
        tmpl = pod_template(manifest)
        if tmpl is None:
            continue
        mounted = {str((v.get("configMap") or {}).get("name")) for v in tmpl.spec.get("volumes") or []}
        if manifest.kind == "Job" and mounted & maps_with_script:
            applied = manifest.ref
        for _, container in containers(tmpl):
            refs = _secret_refs(container)
            if workload_role(manifest) in ("api", "worker") and not app_env:
                app_env, app_file = k8s_env(tree, files, refs)
            if "postgres-exporter" in manifest.name:
                exporter = k8s_env(tree, files, refs)
            if manifest.kind == "CronJob" and "backup" in manifest.name:
                backup = k8s_env(tree, files, refs)
            if workload_role(manifest) == "postgres" and manifest.kind == "StatefulSet":
                for item in container.get("env") or []:
                    if item.get("name") == "POSTGRES_USER" and item.get("value"):
                        superuser = str(item["value"])
    if not app_env:
        return None
    return Target(
        "kubernetes",
        app_env,
        app_file,
        superuser,
        script,
        applied,
        exporter[0],
        exporter[1] or None,
        backup[0],
        backup[1] or None,
    )


def _local_target(tree: RenderedTree) -> Target | None:
    app_env = env_file(tree, "local/secrets/app.env")
    if not app_env:
        return None
    script = "local/roles.sql" if tree.exists("local/roles.sql") else None
    return Target(
        "local",
        app_env,
        "local/secrets/app.env",
        "postgres",
        script,
        "the local runtime's bootstrap" if script else None,
        {},
        None,
        env_file(tree, "local/secrets/ops.env"),
        "local/secrets/ops.env" if tree.exists("local/secrets/ops.env") else None,
    )


def targets(ctx: Context) -> Iterator[Target]:
    """Every runtime in scope whose service credentials the tree holds."""
    tree = ctx.static_tree()
    found = [
        ctx.has_compose() and _compose_target(tree),
        ctx.has_kubernetes() and _k8s_target(tree),
        ctx.has_local() and _local_target(tree),
    ]
    yield from (t for t in found if t)


def url_user(url: str) -> str:
    """The user name of a connection URL ("" when it has none)."""
    return urlsplit(url).username or ""


def url_password(url: str) -> str:
    """The password of a connection URL ("" when it has none)."""
    return urlsplit(url).password or ""


def minio_roots(ctx: Context) -> Iterator[tuple[str, dict[str, str], str, str]]:
    """(target, root env, where, the init script text) of every MinIO in scope."""
    tree = ctx.static_tree()
    if ctx.has_compose():
        services = tree.services()
        for name, svc in services.items():
            if "minio" in str((svc or {}).get("image", "")) and "init" not in name:
                script = " ".join(
                    str(s.get("command")) for n, s in services.items() if "minio" in n and "init" in n
                )
                yield "compose", service_env(tree, svc or {}), tree.compose_origin("services", name), script
    if ctx.has_kubernetes():
        files = k8s_secret_files(tree)
        minio = [m for m in ctx.manifests() if m.kind in ("StatefulSet", "Tenant") and "minio" in m.name]
        if minio:
            env, where = k8s_env(tree, files, ["minio-secrets"])
            if tree.exists("kubernetes/secrets/minio-tenant.env") and minio[0].kind == "Tenant":
                env = env_file(tree, "kubernetes/secrets/minio-tenant.env")
                where = "kubernetes/secrets/minio-tenant.env"
            script = " ".join(str(m.doc) for m in ctx.manifests() if m.kind == "Job" and "minio" in m.name)
            yield "kubernetes", env, where or minio[0].file, script
