"""Static checks of least privilege: the database roles, the Redis ACL users and the MinIO users of every
runtime in the rendered tree (compose, Kubernetes, local), as `credentials` finds them."""

from __future__ import annotations

import re
from pathlib import Path

from schedgen_ops.config.roles import REDIS_APP_DENIED, acl_allows, parse_acl_line
from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.credentials import (
    Target,
    env_file,
    minio_roots,
    targets,
    url_password,
    url_user,
)
from schedgen_ops.ops.readiness.inspect import configmaps, pod_template, workload_role
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable, check
from schedgen_ops.ops.readiness.supervisor import programs

_SET = re.compile(r"^\\set\s+(\w+)\s+'((?:[^']|'')*)'\s*$", re.M)
_APP_DENY = ("NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS")


# --- the roles script ----------------------------------------------------------------------------------


def script_vars(text: str) -> dict[str, str]:
    """The ``\\set name 'value'`` variables of a roles script."""
    return {m.group(1): m.group(2).replace("''", "'") for m in _SET.finditer(text)}


def _statements(text: str) -> list[str]:
    return [s for s in re.split(r"\\gexec|;\s*$", text, flags=re.M) if s.strip()]


def script_grants(text: str, var: str, *words: str) -> bool:
    """Whether one statement of the script applies every word to the role in variable ``var``."""
    ref = f":'{var}'"
    return any(ref in s and all(re.search(rf"\b{w}\b", s) for w in words) for s in _statements(text))


def _need(found: list[Target], what: str) -> None:
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
    _need(found, "service database")
    out: list[Finding] = []
    for t in found:
        url = t.app_env["SCHEDGEN_DATABASE_URL"]
        user = url_user(url)
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
            init = env_file(tree, "local/secrets/postgres-init.env")
            superuser_pw = init.get("PGPASSWORD", "")
            others = {url_password(url), init.get("SCHEDGEN_PG_OWNER_PASSWORD", "")}
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
        app = url_user(t.app_env.get("SCHEDGEN_DATABASE_URL", ""))
        if t.exporter_file:
            user = url_user(t.exporter_env.get("DATA_SOURCE_NAME", ""))
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
            user = url_user(t.backup_env.get("SCHEDGEN_DATABASE_URL", ""))
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
    _need(found, "service Redis")
    out: list[Finding] = []
    for t in found:
        url = t.app_env["SCHEDGEN_REDIS_URL"]
        user = url_user(url) or "default"
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
    for name, root, where, script in minio_roots(ctx):
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
