"""Static checks of least privilege: the database roles, the Redis ACL users, the MinIO users and the webhook
URLs (secrets) of every runtime in the rendered tree (compose, Kubernetes, local)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from schedgen_ops.config.roles import REDIS_APP_DENIED, acl_allows, parse_acl_line
from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.inspect import (
    configmaps,
    containers,
    parse_env_file,
    pod_template,
    service_env,
    service_role,
    workload_role,
)
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable
from schedgen_ops.ops.readiness.registry import check
from schedgen_ops.ops.readiness.supervisor import programs
from schedgen_ops.ops.readiness.tree import RenderedTree

_SET = re.compile(r"^\\set\s+(\w+)\s+'((?:[^']|'')*)'\s*$", re.M)
_APP_DENY = ("NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS")


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


def _env_file(tree: RenderedTree, rel: str) -> dict[str, str]:
    return parse_env_file(tree.text(rel)) if tree.exists(rel) else {}


def _k8s_secret_files(tree: RenderedTree) -> dict[str, list[str]]:
    """secretGenerator name -> its env files (relative to the tree)."""
    out: dict[str, list[str]] = {}
    for rel, kustomization in tree.kustomizations():
        base = Path(rel).parent
        for gen in kustomization.get("secretGenerator") or []:
            out[str(gen.get("name"))] = [(base / str(e)).as_posix() for e in gen.get("envs") or []]
    return out


def _k8s_env(tree: RenderedTree, files: dict[str, list[str]], names: list[str]) -> tuple[dict[str, str], str]:
    env: dict[str, str] = {}
    where = ""
    for name in names:
        for rel in files.get(name, []):
            if tree.exists(rel):
                env.update(_env_file(tree, rel))
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
    files = _k8s_secret_files(tree)
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
                app_env, app_file = _k8s_env(tree, files, refs)
            if "postgres-exporter" in manifest.name:
                exporter = _k8s_env(tree, files, refs)
            if manifest.kind == "CronJob" and "backup" in manifest.name:
                backup = _k8s_env(tree, files, refs)
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
    app_env = _env_file(tree, "local/secrets/app.env")
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
        _env_file(tree, "local/secrets/ops.env"),
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


def _user(url: str) -> str:
    return urlsplit(url).username or ""


def _password(url: str) -> str:
    return urlsplit(url).password or ""


def script_vars(text: str) -> dict[str, str]:
    """The ``\\set name 'value'`` variables of a roles script."""
    return {m.group(1): m.group(2).replace("''", "'") for m in _SET.finditer(text)}


def _statements(text: str) -> list[str]:
    return [s for s in re.split(r"\\gexec|;\s*$", text, flags=re.M) if s.strip()]


def script_grants(text: str, var: str, *words: str) -> bool:
    """Whether one statement of the script applies every word to the role in variable ``var``."""
    ref = f":'{var}'"
    return any(ref in s and all(re.search(rf"\b{w}\b", s) for w in words) for s in _statements(text))


def _need(ctx: Context, found: list[Target], what: str) -> None:
    if not found:
        raise NotApplicable(f"no {what} credentials in the rendered output")


# --- Postgres ----------------------------------------------------------------------------------------


@check(
    "postgres-app-role",
    title="The service's database role is no superuser and owns only its schema",
    category="security",
    severity="danger",
    kind="static",
    why="A superuser (or the database owner) can run programs on the server (COPY ... PROGRAM), create "
    "roles and drop the database: one SQL injection or stolen app password would own the machine and "
    "every backup's source.",
    fix="Render with this toolkit: the service connects as <postgres.user>_app, created NOSUPERUSER "
    "NOCREATEDB NOCREATEROLE by postgres/roles.sql (compose postgres-init, Kubernetes Job, local "
    "bootstrap); the local superuser has its own POSTGRES_SUPERUSER_PASSWORD.",
)
def check_postgres_app_role(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    found = [t for t in targets(ctx) if t.app_env.get("SCHEDGEN_DATABASE_URL")]
    _need(ctx, found, "service database")
    out: list[Finding] = []
    for t in found:
        url = t.app_env["SCHEDGEN_DATABASE_URL"]
        user = _user(url)
        ev = Evidence(t.app_file, "SCHEDGEN_DATABASE_URL", user)
        out.append(Finding(user != t.superuser, f"{t.name}: the service connects as {user!r}", ev))
        if t.script is None:
            out.append(
                Finding(False, f"{t.name}: no roles script creates a restricted role for {user!r}", ev)
            )
            continue
        text = tree.text(t.script)
        names = script_vars(text)
        sev = Evidence(t.script, "\\set app", names.get("app"))
        out.append(
            Finding(
                names.get("app") == user and names.get("app") not in (names.get("owner"), t.superuser),
                f"{t.name}: {t.script} declares the app role {names.get('app')!r} "
                f"(owner {names.get('owner')!r}, superuser {t.superuser!r})",
                sev,
            )
        )
        out.append(
            Finding(
                script_grants(text, "app", *_APP_DENY)
                and script_grants(text, "app", "SCHEMA", "AUTHORIZATION"),
                f"{t.name}: the app role is {' '.join(_APP_DENY)} and owns its schema",
                sev,
            )
        )
        out.append(
            Finding(
                t.script_applied is not None,
                f"{t.name}: {t.script} is applied by {t.script_applied or 'nothing'}",
                Evidence(t.script, None, t.script_applied),
            )
        )
        if t.name == "local":
            init = _env_file(tree, "local/secrets/postgres-init.env")
            superuser_pw = init.get("PGPASSWORD", "")
            others = {_password(url), init.get("SCHEDGEN_PG_OWNER_PASSWORD", "")}
            out.append(
                Finding(
                    bool(superuser_pw) and superuser_pw not in others,
                    "local: the superuser's password differs from the app's and the owner's",
                    Evidence("local/secrets/postgres-init.env", "PGPASSWORD", "<redacted>"),
                )
            )
    return out


@check(
    "postgres-ops-roles",
    title="The exporter and backups use their own database roles",
    category="security",
    severity="warning",
    kind="static",
    why="An exporter that logs in as the app can read every upload's result; backups that need a superuser "
    "hand it to a cron job. pg_monitor is all an exporter needs; pg_dump, pg_restore and a scratch restore "
    "need the database owner with CREATEDB.",
    fix="Render with this toolkit: postgres-exporter connects as <postgres.user>_exporter (pg_monitor); "
    "backups as <postgres.user>, the owner (CREATEDB, member of the app role).",
)
def check_postgres_ops_roles(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    out: list[Finding] = []
    for t in targets(ctx):
        if t.script is None:
            continue
        text = tree.text(t.script)
        names = script_vars(text)
        app = _user(t.app_env.get("SCHEDGEN_DATABASE_URL", ""))
        if t.exporter_file:
            user = _user(t.exporter_env.get("DATA_SOURCE_NAME", ""))
            ok = (
                user == names.get("exporter")
                and user not in (app, names.get("owner"), t.superuser)
                and script_grants(text, "exporter", "pg_monitor")
                and script_grants(text, "exporter", *_APP_DENY)
            )
            out.append(
                Finding(
                    ok,
                    f"{t.name}: the exporter connects as {user!r} (pg_monitor only)",
                    Evidence(t.exporter_file, "DATA_SOURCE_NAME", user),
                )
            )
        if t.backup_file:
            user = _user(t.backup_env.get("SCHEDGEN_DATABASE_URL", ""))
            ok = (
                user == names.get("owner")
                and user not in (app, t.superuser)
                and script_grants(text, "owner", "NOSUPERUSER", "NOCREATEROLE", "CREATEDB")
            )
            out.append(
                Finding(
                    ok,
                    f"{t.name}: backups connect as {user!r} (the owner: CREATEDB, no superuser)",
                    Evidence(t.backup_file, "SCHEDGEN_DATABASE_URL", user),
                )
            )
    if not out:
        raise NotApplicable("no exporter or backup credentials in the rendered output")
    return out


# --- Redis -------------------------------------------------------------------------------------------


def _acl_users(text: str) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for line in text.splitlines():
        parsed = parse_acl_line(line.strip())
        if parsed:
            users[parsed[0]] = parsed[1]
    return users


def _redis_confs(ctx: Context, t: Target) -> list[tuple[str, str]]:
    """(where, text) of every Redis config of one runtime (files, or ConfigMaps a Redis pod mounts)."""
    tree = ctx.static_tree()
    if t.name == "local":
        rels = [
            f"local/{Path(a).name}"
            for program in programs(tree)
            if "redis" in program.name
            for a in program.argv[1:]
            if a.endswith(".conf")
        ]
        return [(rel, tree.text(rel)) for rel in rels if tree.exists(rel)]
    if t.name == "compose":
        return [(rel, tree.text(rel)) for rel in tree.scoped("redis", "*.conf", "compose")]
    maps = configmaps(tree)
    out = [(rel, tree.text(rel)) for rel in tree.files("kubernetes/redis/*.conf")]
    for manifest in ctx.manifests():
        tmpl = pod_template(manifest)
        if tmpl is None or workload_role(manifest) != "redis":
            continue
        for volume in tmpl.spec.get("volumes") or []:
            name = str((volume.get("configMap") or {}).get("name"))
            out += [(f"ConfigMap/{name}", text) for text in (maps.get(name) or {}).values()]
    return out


def _requirepass(ctx: Context, t: Target, text: str) -> bool:
    if re.search(r"^\s*requirepass\b", text, re.M):
        return True
    if t.name == "compose":
        services = ctx.static_tree().services().values()
        return any("--requirepass" in str((svc or {}).get("command")) for svc in services)
    return False


@check(
    "redis-acl-users",
    title="Redis has ACL users; the service's cannot FLUSHALL or CONFIG SET",
    category="security",
    severity="danger",
    kind="static",
    why="With one requirepass every client is the all-powerful default user: an api could FLUSHALL the "
    "queue (every accepted upload lost), rewrite the config or replicate the data elsewhere.",
    fix="Render with this toolkit: redis.conf defines `default` (backups), `app`, `exporter` and `admin` "
    "users with password hashes; the service's URL names `app`, which has no @dangerous commands.",
)
def check_redis_acl_users(ctx: Context) -> list[Finding]:
    found = [t for t in targets(ctx) if t.app_env.get("SCHEDGEN_REDIS_URL")]
    _need(ctx, found, "service Redis")
    out: list[Finding] = []
    for t in found:
        url = t.app_env["SCHEDGEN_REDIS_URL"]
        user = _user(url) or "default"
        confs = _redis_confs(ctx, t)
        users: dict[str, list[str]] = {}
        for _, text in confs:
            users.update(_acl_users(text))
        where = confs[0][0] if confs else t.app_file
        if not users:
            out.append(
                Finding(
                    False,
                    f"{t.name}: no ACL users (one password for every client)",
                    Evidence(where, "user", None),
                )
            )
            continue
        default = users.get("default", ["off"])
        ok_default = "nopass" not in default and ("off" in default or any(r[0] in "#>" for r in default))
        out.append(
            Finding(
                ok_default,
                f"{t.name}: the default user has a password or is off",
                Evidence(where, "user default", "nopass" if not ok_default else "password"),
            )
        )
        rules = users.get(user)
        denied = rules is not None and not any(acl_allows(rules, c) for c in REDIS_APP_DENIED)
        out.append(
            Finding(
                denied and user != "default",
                f"{t.name}: the service logs in as {user!r}, "
                + (
                    "which has no " + "/".join(REDIS_APP_DENIED)
                    if denied
                    else "which may run dangerous commands"
                ),
                Evidence(t.app_file, "SCHEDGEN_REDIS_URL", user),
            )
        )
        out.append(
            Finding(
                not any(_requirepass(ctx, t, text) for _, text in confs),
                f"{t.name}: no requirepass next to the ACL users",
                Evidence(where, "requirepass", None),
            )
        )
    return out


# --- MinIO -------------------------------------------------------------------------------------------


def _minio(ctx: Context) -> Iterator[tuple[str, dict[str, str], str, str]]:
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
        files = _k8s_secret_files(tree)
        minio = [m for m in ctx.manifests() if m.kind in ("StatefulSet", "Tenant") and "minio" in m.name]
        if minio:
            env, where = _k8s_env(tree, files, ["minio-secrets"])
            if tree.exists("kubernetes/secrets/minio-tenant.env") and minio[0].kind == "Tenant":
                env = _env_file(tree, "kubernetes/secrets/minio-tenant.env")
                where = "kubernetes/secrets/minio-tenant.env"
            script = " ".join(str(m.doc) for m in ctx.manifests() if m.kind == "Job" and "minio" in m.name)
            yield "kubernetes", env, where or minio[0].file, script


@check(
    "minio-app-user",
    title="The service's MinIO user is limited to its bucket",
    category="security",
    severity="danger",
    kind="static",
    why="The MinIO root user can read, delete and replicate every bucket and change every policy; an api "
    "holding it turns one leak into the loss of all stored uploads.",
    fix="Render with this toolkit: minio-init creates the app user with a policy on the uploads bucket "
    "only; the root credentials (MINIO_ROOT_*) stay with MinIO and that one-shot.",
)
def check_minio_app_user(ctx: Context) -> list[Finding]:
    apps = {t.name: t for t in targets(ctx)}
    out: list[Finding] = []
    for name, root, where, script in _minio(ctx):
        app = apps.get(name)
        key = app.app_env.get("SCHEDGEN_S3_ACCESS_KEY", "") if app else ""
        out.append(
            Finding(
                bool(key) and key != root.get("MINIO_ROOT_USER"),
                f"{name}: the service's access key is not MinIO's root user",
                Evidence(where, "MINIO_ROOT_USER", "<redacted>"),
            )
        )
        limited = "admin policy attach" in script and "admin user add" in script
        out.append(
            Finding(
                limited,
                f"{name}: an init job creates the app user with a bucket policy",
                Evidence(where, "minio-init", limited),
            )
        )
    if not out:
        raise NotApplicable("no MinIO in the rendered output")
    return out


# --- webhooks ----------------------------------------------------------------------------------------


@check(
    "webhook-urls-secret",
    title="Webhook URLs are not written into rendered files",
    category="security",
    severity="danger",
    kind="static",
    why="A Slack or Mattermost hook's URL is its credential: anyone who reads a rendered file, a ConfigMap "
    "or a unit could post as the on-call channel (or read what it receives).",
    fix="Keep them in .schedgen/secrets.env (`schedgen secrets set ALERT_WEBHOOK_URL` / BACKUP_WEBHOOK_URL): "
    "Alertmanager reads a url_file, units and CronJobs read them from secrets.",
)
def check_webhook_urls_secret(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    out: list[Finding] = []
    scanned = 0
    for rel in tree.files("**/alertmanager*.y*ml"):
        if "secret" in rel:
            continue
        scanned += 1
        for doc in tree.docs(rel):
            for receiver in (doc or {}).get("receivers") or []:
                for index, hook in enumerate(receiver.get("webhook_configs") or []):
                    literal = "url" in hook
                    out.append(
                        Finding(
                            not literal,
                            f"{rel}: receiver {receiver.get('name')} "
                            + ("writes its URL" if literal else "reads url_file"),
                            Evidence(
                                rel,
                                f"receivers.{receiver.get('name')}.webhook_configs[{index}]",
                                "<redacted>" if literal else hook.get("url_file"),
                            ),
                        )
                    )
    literal_env = re.compile(r"WEBHOOK_URL\s*[=:]\s*\"?(https?://\S+)", re.I)
    for rel in [*tree.files("systemd/*"), *tree.files("kubernetes/*.y*ml"), *tree.files("compose/*.y*ml")]:
        scanned += 1
        match = literal_env.search(tree.text(rel))
        if match:
            line = tree.text(rel)[: match.start()].count("\n") + 1
            out.append(
                Finding(
                    False, f"{rel} sets a webhook URL literally", Evidence(rel, f"line {line}", "<redacted>")
                )
            )
    if not out:
        if not scanned:
            raise NotApplicable("no Alertmanager config, units or manifests rendered")
        out.append(
            Finding(True, f"no webhook URL in {scanned} rendered files", Evidence(None, None, scanned))
        )
    return out
