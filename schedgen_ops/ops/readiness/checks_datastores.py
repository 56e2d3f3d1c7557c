"""Static checks of the data stores' settings: the queue Redis never evicts and persists, and Postgres
max_connections covers every connection pool at maximum scale (compose, Kubernetes and local)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.evidence import (
    local_programs,
    manifest_evidence,
    program_evidence,
    service_evidence,
    templates,
)
from schedgen_ops.ops.readiness.inspect import (
    LONG_RUNNING_KINDS,
    PodTemplate,
    as_int,
    autoscale_max,
    configmaps,
    container_argv,
    container_env,
    containers,
    is_one_shot,
    pod_template,
    role,
    service_command,
    service_default,
    service_env,
    service_role,
    workload_role,
)
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable, check
from schedgen_ops.ops.readiness.tree import Manifest, RenderedTree

_REDIS_KEYS = ("maxmemory-policy", "appendonly")

# --- queue Redis -----------------------------------------------------------------------------------


def parse_redis_conf(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key.lower()] = value.strip().strip("'\"")
    return out


def _redis_args(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for index, arg in enumerate(args):
        if arg.startswith("--") and index + 1 < len(args):
            out[arg[2:].lower()] = args[index + 1].strip("'\"")
    return out


def _is_queue(name: str) -> bool:
    return "cache" not in name.lower()


def _redis_verdict(where: str, conf: dict[str, str], evidence: Evidence) -> list[Finding]:
    policy = conf.get("maxmemory-policy", "noeviction (default)")
    aof = conf.get("appendonly", "no (default)")
    return [
        Finding(policy.startswith("noeviction"), f"{where} maxmemory-policy {policy}", evidence),
        Finding(aof == "yes", f"{where} appendonly {aof}", evidence),
    ]


@check(
    "queue-redis-durable",
    title="Queue Redis never evicts and persists with AOF",
    category="reliability",
    severity="danger",
    kind="static",
    why="An evicting (allkeys-lru) or non-persistent queue Redis silently drops queued jobs under memory "
    "pressure or restart.",
    fix="Set `maxmemory-policy noeviction` and `appendonly yes` for the queue Redis "
    "(redis.maxmemory_policy).",
    needs="any-runtime",
)
def check_queue_redis(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    if ctx.has_compose():
        out += _compose_redis(ctx.static_tree())
    if ctx.has_kubernetes():
        out += _k8s_redis(ctx)
    for program in local_programs(ctx):
        if role(program.name) == "redis" and _is_queue(program.name):
            conf = _redis_args(program.argv)
            ev = program_evidence(program, "command", _shown(conf))
            out += _redis_verdict(f"local {program.name}", conf, ev)
    if not out:
        raise NotApplicable("no queue Redis in the rendered output")
    return out


def _shown(conf: dict[str, str]) -> dict[str, Any]:
    """The two settings the verdict rests on, as evidence."""
    return {k: conf.get(k) for k in _REDIS_KEYS}


def _compose_redis(tree: RenderedTree) -> list[Finding]:
    """Each queue Redis service: the config file it mounts, then its command-line overrides."""
    out: list[Finding] = []
    files = {rel: parse_redis_conf(tree.text(rel)) for rel in tree.scoped("redis", "**/*.conf")}
    for name, svc in tree.services().items():
        svc = svc or {}
        if service_role(name, svc) != "redis" or not _is_queue(name):
            continue
        conf: dict[str, str] = {}
        source = tree.compose_origin("services", name, "command")
        mounts = " ".join(
            str(v.get("source", "")) if isinstance(v, dict) else str(v) for v in svc.get("volumes") or []
        )
        for rel, values in files.items():
            if Path(rel).name in mounts:
                conf.update(values)
                source = rel
        overrides = _redis_args(service_command(svc))
        conf.update(overrides)
        if overrides:
            source = tree.compose_origin("services", name, "command")
        out += _redis_verdict(name, conf, Evidence(source, f"services.{name}", _shown(conf)))
    return out


def _k8s_redis(ctx: Context) -> list[Finding]:
    """Each queue Redis workload (mounted ConfigMaps, then arguments) and each Redis operator resource."""
    out: list[Finding] = []
    maps = configmaps(ctx.static_tree())
    for manifest in ctx.manifests():
        tmpl = pod_template(manifest)
        if tmpl is not None and workload_role(manifest) == "redis" and _is_queue(manifest.name):
            if "sentinel" in manifest.name.lower():
                continue
            conf: dict[str, str] = {}
            for volume in tmpl.spec.get("volumes") or []:
                for text in (maps.get(str((volume.get("configMap") or {}).get("name"))) or {}).values():
                    if "appendonly" in text or "maxmemory" in text:
                        conf.update(parse_redis_conf(text))
            for _, container in containers(tmpl, init=False):
                if role(str(container.get("name", "")), str(container.get("image", ""))) == "redis":
                    conf.update(_redis_args(container_argv(container)))
            out += _redis_verdict(manifest.ref, conf, manifest_evidence(manifest, tmpl.path, _shown(conf)))
        elif (
            manifest.kind.startswith("Redis") and "Sentinel" not in manifest.kind and manifest.doc.get("spec")
        ):
            # Operator resources: spotahome RedisFailover (spec.redis.customConfig lines) or
            # OT-container-kit Redis/RedisReplication (additionalRedisConfig names a ConfigMap).
            spec = manifest.doc.get("spec") or {}
            custom = (spec.get("redis") or {}).get("customConfig") or []
            conf = parse_redis_conf("\n".join(str(line) for line in custom))
            path = "spec.redis.customConfig"
            extra = (spec.get("redisConfig") or {}).get("additionalRedisConfig")
            if extra:
                for text in (maps.get(str(extra)) or {}).values():
                    conf.update(parse_redis_conf(text))
                path = f"spec.redisConfig.additionalRedisConfig ({extra})"
            out += _redis_verdict(manifest.ref, conf, manifest_evidence(manifest, path, _shown(conf)))
    return out


# --- Postgres connection budget --------------------------------------------------------------------


def _pg_settings(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, _, value = line.partition("=")
            out[key.strip().lower()] = value.strip().strip("'\"")
    return out


def _pg_args(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for index, arg in enumerate(args):
        value = None
        if arg == "-c" and index + 1 < len(args):
            value = args[index + 1]
        elif (arg.startswith("-c") and "=" in arg) or (arg.startswith("--") and "=" in arg):
            value = arg[2:]
        if value and "=" in value:
            key, _, val = value.partition("=")
            out[key.strip().lower().replace("-", "_")] = val.strip()
    return out


def _pool_demand(env: dict[str, str], who: str) -> tuple[int, int, int]:
    """(processes per replica, pool max per process, connections per replica)."""
    pool = as_int(env.get("SCHEDGEN_DB_POOL_MAX")) or int(service_default("db_pool_max"))
    if who == "api":
        procs = as_int(env.get("SCHEDGEN_API_WORKERS")) or int(service_default("api_workers"))
    elif who == "worker":
        procs = as_int(env.get("SCHEDGEN_WORKER_PROCESSES")) or int(service_default("worker_processes"))
    else:
        procs = 1
    return procs, pool, procs * pool


def _uses_db(env: dict[str, str]) -> bool:
    return (
        "SCHEDGEN_DATABASE_URL" in env or "SCHEDGEN_DB_POOL_MAX" in env or "SCHEDGEN_DATABASE_URL_FILE" in env
    )


def _budget_finding(
    where: str, demand: list[tuple[str, int, int]], conf: dict[str, str], evidence: Evidence
) -> Finding:
    max_conn = as_int(conf.get("max_connections")) or 100
    reserved = as_int(conf.get("superuser_reserved_connections"))
    reserved = 3 if reserved is None else reserved
    need = sum(replicas * per for _, replicas, per in demand)
    breakdown = ", ".join(f"{n} {r}x{p}" for n, r, p in demand)
    ok = need <= max_conn - reserved
    msg = f"{where}: pools need {need} ({breakdown}) of max_connections {max_conn} - {reserved} reserved"
    return Finding(
        ok,
        msg,
        Evidence(
            evidence.file, evidence.path, {"max_connections": max_conn, "reserved": reserved, "demand": need}
        ),
    )


def _scale_ceiling(ctx: Context, who: str) -> int:
    """The most replicas `schedgen scale` allows for api/worker (the config's max_replicas), else 0."""
    if ctx.config is None or who not in ("api", "worker"):
        return 0
    return (ctx.config.api if who == "api" else ctx.config.worker).max_replicas


@check(
    "postgres-connection-budget",
    title="Postgres max_connections covers every pool at maximum scale",
    category="scalability",
    severity="danger",
    kind="static",
    why="When autoscaling adds replicas past the budget, new pools fail to connect exactly when load peaks.",
    fix="Raise postgres max_connections (or lower db_pool_max / maximum replicas) so the sum fits with a "
    "reserve.",
    needs="any-runtime",
)
def check_postgres_budget(ctx: Context) -> list[Finding]:
    out = []
    if ctx.has_compose():
        out += _compose_budget(ctx)
    if ctx.has_kubernetes():
        out.append(_k8s_budget(ctx))
    local = local_programs(ctx)
    local_pg = [p for p in local if role(p.name) == "postgres"]
    if local_pg:
        conf = _pg_args(local_pg[0].argv)
        # One program slot per possible replica (api-1..api-N): the slots are the maximum scale.
        slots: dict[tuple[str, int], int] = {}
        for p in local:
            # Blue/green slots (api-blue-N, api-green-N): the second colour only overlaps during a deploy.
            if _uses_db(p.env) and "-green-" not in p.name:
                key = (re.sub(r"-\d+$", "", p.name), _pool_demand(p.env, role(p.name))[2])
                slots[key] = slots.get(key, 0) + 1
        demand = [(name, count, per) for (name, per), count in slots.items()]
        out.append(_budget_finding("local", demand, conf, program_evidence(local_pg[0], "command")))
    if not out:
        raise NotApplicable("no Postgres in the rendered output")
    return out


def _compose_budget(ctx: Context) -> list[Finding]:
    """The first Postgres service's settings against every long-running service with a pool."""
    tree = ctx.static_tree()
    services = tree.services()
    pg = [(n, s or {}) for n, s in services.items() if service_role(n, s or {}) == "postgres"]
    if not pg:
        return []
    name, svc = pg[0]
    conf = {**_conf_files(tree, "compose"), **_pg_args(service_command(svc))}
    demand = []
    for sname, s in services.items():
        s = s or {}
        env = service_env(tree, s)
        if not _uses_db(env) or is_one_shot(s):
            continue
        replicas = as_int((s.get("deploy") or {}).get("replicas")) or 1
        # `schedgen scale` may go up to the profile's max_replicas on compose too.
        replicas = max(replicas, _scale_ceiling(ctx, service_role(sname, s)))
        _, _, per = _pool_demand(env, service_role(sname, s))
        demand.append((sname, replicas, per))
    return [_budget_finding("compose", demand, conf, service_evidence(tree, name, "command", value=None))]


def _k8s_budget(ctx: Context) -> Finding:
    """Postgres settings (files, a CloudNativePG Cluster, mounted ConfigMaps, arguments) against every
    long-running container with a pool, at its autoscaler's maximum."""
    tree = ctx.static_tree()
    manifests = ctx.manifests()
    scalers = autoscale_max(manifests)
    conf = _conf_files(tree, "kubernetes")
    maps = configmaps(tree)
    source: Manifest | None = None
    for m in manifests:
        params = ((m.doc.get("spec") or {}).get("postgresql") or {}).get("parameters") or {}
        if m.kind == "Cluster" and params:
            conf.update({str(k).lower(): str(v) for k, v in params.items()})
            source = m
        tmpl = pod_template(m)
        if tmpl is not None and workload_role(m) == "postgres":
            conf.update(_template_pg_settings(tmpl, maps))
            source = source or m
    if source is None:
        raise NotApplicable("no Postgres in the Kubernetes output")
    demand = []
    for tmpl in templates(ctx, *LONG_RUNNING_KINDS):
        m = tmpl.manifest
        for _, container in containers(tmpl, init=False):
            env = container_env(tree, container)
            if not _uses_db(env):
                continue
            k8s_replicas: int | None = (
                scalers[m.name][1]
                if m.name in scalers
                else as_int((m.doc.get("spec") or {}).get("replicas")) or 1
            )
            _, _, per = _pool_demand(env, workload_role(m))
            demand.append((m.name, k8s_replicas or 1, per))
    return _budget_finding("kubernetes", demand, conf, manifest_evidence(source, "max_connections"))


def _conf_files(tree: RenderedTree, scope: str) -> dict[str, str]:
    """The settings of the postgres/*.conf files rendered for one runtime."""
    conf: dict[str, str] = {}
    for rel in tree.scoped("postgres", "**/*.conf", scope=scope):
        conf.update(_pg_settings(tree.text(rel)))
    return conf


def _template_pg_settings(tmpl: PodTemplate, maps: dict[str, dict[str, str]]) -> dict[str, str]:
    """A Postgres pod's settings: the ConfigMaps it mounts, then its containers' ``-c`` arguments."""
    conf: dict[str, str] = {}
    for volume in tmpl.spec.get("volumes") or []:
        for text in (maps.get(str((volume.get("configMap") or {}).get("name"))) or {}).values():
            conf.update(_pg_settings(text))
    for _, container in containers(tmpl, init=False):
        conf.update(_pg_args(container_argv(container)))
    return conf
